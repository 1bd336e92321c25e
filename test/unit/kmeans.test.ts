// The codebook builder on the real CPU backend: determinism, the Lloyd guarantees, the
// utilization regularizer's effect on real image patches, input checks and cancellation.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Matrix } from '../../native-gpu/backend.js';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import { kmeans, updateCentroids, type KMeansProgress } from '../../extension/engine/build/kmeans.js';
import { CancelledError, UserError } from '../../common/errors.js';
import { seededRandom } from '../../extension/engine/core/sampling.js';
import { FIXTURE_PHOTOS, dctFeatures, stackRows } from '../helpers/dct-features.js';

const backendPromise = createCpuBackend();
after(async () => (await backendPromise).dispose());

/** `blobs` tight Gaussian-ish clusters, far apart, `perBlob` points each, in d dimensions */
function blobs(blobCount: number, perBlob: number, d: number, seed: number): { points: Matrix; centers: Float32Array } {
  const random = seededRandom(seed);
  const centers = Float32Array.from({ length: blobCount * d }, () => (random() * 2 - 1) * 100);
  const data = new Float32Array(blobCount * perBlob * d);
  for (let i = 0; i < blobCount * perBlob; i++) {
    const b = i % blobCount;
    for (let j = 0; j < d; j++) data[i * d + j] = centers[b * d + j] + (random() + random() + random() - 1.5);
  }
  return { points: { rows: blobCount * perBlob, cols: d, data }, centers };
}

const photos = (async () => {
  const backend = await backendPromise;
  const features = await Promise.all(FIXTURE_PHOTOS.map((f) => dctFeatures(backend, f, 128, 8)));
  return {
    train: stackRows(features.filter((_, i) => i % 3 !== 0)), // 7 photos, 1792 patches
    heldOut: stackRows(features.filter((_, i) => i % 3 === 0)), // 4 other photos, 1024 patches
  };
})();

test('the same seed gives bitwise identical centroids, another seed different ones', async () => {
  const backend = await backendPromise;
  const { train } = await photos;
  const opts = { k: 32, iterations: 5, seed: 11 };
  const a = await kmeans(train, opts, backend);
  const b = await kmeans(train, opts, backend);
  const c = await kmeans(train, { ...opts, seed: 12 }, backend);
  assert.deepEqual(Buffer.from(a.centroids.data.buffer), Buffer.from(b.centroids.data.buffer));
  assert.deepEqual(a.ids, b.ids);
  assert.notDeepEqual(Buffer.from(a.centroids.data.buffer), Buffer.from(c.centroids.data.buffer));
  // also through random init, a k-means++ sample smaller than the corpus and fewer k-means++ rounds
  for (const extra of [{ init: 'random' as const }, { initSample: 500 }, { initRounds: 4 }]) {
    const x = await kmeans(train, { ...opts, ...extra }, backend);
    const y = await kmeans(train, { ...opts, ...extra }, backend);
    assert.deepEqual(Buffer.from(x.centroids.data.buffer), Buffer.from(y.centroids.data.buffer));
  }
});

test('lambda = 0: inertia never increases, and the result is consistent with its centroids', async () => {
  const backend = await backendPromise;
  const { train } = await photos;
  const seen: KMeansProgress[] = [];
  const result = await kmeans(train, { k: 48, iterations: 15, tolerance: 0, seed: 1 }, backend, { onProgress: (p) => seen.push(p) });
  const inertias = seen.filter((p) => p.phase === 'iterate').map((p) => p.inertia!);
  assert.equal(result.iterations, 15);
  assert.equal(inertias.length, 16); // the initial assignment, then one per update
  for (let i = 1; i < inertias.length; i++) {
    assert.ok(inertias[i] <= inertias[i - 1] * (1 + 1e-6), `iteration ${i}: ${inertias[i]} > ${inertias[i - 1]}`);
  }
  assert.ok(inertias.at(-1)! < inertias[0]);
  assert.ok(seen.some((p) => p.phase === 'init'));

  // counts, ids and inertia describe the assignment to the returned centroids
  const d = train.cols;
  const counts = new Float64Array(48);
  let inertia = 0;
  for (let i = 0; i < train.rows; i++) {
    const id = result.ids[i];
    counts[id]++;
    let best = Infinity;
    for (let c = 0; c < 48; c++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += (train.data[i * d + j] - result.centroids.data[c * d + j]) ** 2;
      best = Math.min(best, s);
      if (c === id) inertia += s;
    }
    let own = 0;
    for (let j = 0; j < d; j++) own += (train.data[i * d + j] - result.centroids.data[id * d + j]) ** 2;
    assert.ok(own <= best * (1 + 1e-5) + 1e-6, `point ${i} is not at its nearest code`);
  }
  assert.deepEqual(Array.from(result.counts), Array.from(counts));
  assert.ok(Math.abs(result.inertia - inertia) <= 1e-5 * inertia);
});

test('k-means++ finds well separated clusters', async () => {
  const backend = await backendPromise;
  const { points, centers } = blobs(6, 50, 4, 5);
  const result = await kmeans(points, { k: 6, iterations: 10, seed: 2 }, backend);
  assert.deepEqual(Array.from(result.counts).sort(), [50, 50, 50, 50, 50, 50]);
  for (let b = 0; b < 6; b++) {
    const nearest = Math.min(...Array.from({ length: 6 }, (_, c) => {
      let s = 0;
      for (let j = 0; j < 4; j++) s += (centers[b * 4 + j] - result.centroids.data[c * 4 + j]) ** 2;
      return s;
    }));
    assert.ok(nearest < 0.1, `blob ${b} has no centroid near its centre (${nearest})`);
  }
});

test('lambda > 0 leaves fewer codes dead on held-out photos than plain k-means', async () => {
  // Measured on these patches: lambda around 0.07 x (points per code) helps; much larger lambda
  // drags rarely used codes onto the shared mean, where they tie and die.
  const backend = await backendPromise;
  const { train, heldOut } = await photos;
  const deadOnHeldOut = async (lambda: number): Promise<number> => {
    const { centroids } = await kmeans(train, { k: 64, iterations: 20, lambda, seed: 3 }, backend);
    const handle = await backend.loadCodebook(centroids);
    const { ids } = await backend.nearest(handle, heldOut);
    handle.dispose();
    return (await backend.histogram(ids, 64)).filter((n) => n === 0).length;
  };
  const plain = await deadOnHeldOut(0);
  const regularized = await deadOnHeldOut(2);
  assert.ok(plain > 0, 'plain k-means should leave some codes unused on other photos');
  assert.ok(regularized < plain, `lambda=2: ${regularized} dead codes, lambda=0: ${plain}`);
});

test('bad k, NaN points and bad parameters are UserErrors', async () => {
  const backend = await backendPromise;
  const { points } = blobs(2, 5, 3, 1);
  await assert.rejects(kmeans(points, { k: 0 }, backend), UserError);
  await assert.rejects(kmeans(points, { k: 2.5 }, backend), UserError);
  await assert.rejects(kmeans(points, { k: 11 }, backend), (e: unknown) => e instanceof UserError && /k=11 .* only 10/.test(e.message));
  await assert.rejects(kmeans(points, { k: 2, lambda: -1 }, backend), UserError);
  const bad = { ...points, data: points.data.slice() };
  bad.data[3 * 7 + 1] = NaN;
  await assert.rejects(kmeans(bad, { k: 2 }, backend), (e: unknown) => e instanceof UserError && /point 7 .*NaN.* dimension 1/.test(e.message));
});

test('an AbortSignal cancels during init and during iterations', async () => {
  const backend = await backendPromise;
  const { train } = await photos;
  for (const when of ['init', 'iterate'] as const) {
    const controller = new AbortController();
    let after = 0;
    await assert.rejects(kmeans(train, { k: 128, iterations: 50, tolerance: 0, seed: 4 }, backend, {
      signal: controller.signal,
      onProgress: (p) => {
        if (p.phase === when && ++after === 2) controller.abort();
      },
    }), CancelledError);
  }
});

test('k = number of points puts one code on each distinct point', async () => {
  const backend = await backendPromise;
  const { points } = blobs(3, 4, 2, 9);
  const result = await kmeans(points, { k: 12, seed: 0 }, backend);
  assert.equal(result.inertia, 0);
  assert.deepEqual(Array.from(result.counts), new Array(12).fill(1));
});

test('one update step equals c_k = (S_k + lambda c_bar) / (n_k + lambda) on numbers worked by hand', async () => {
  const backend = await backendPromise;
  // Codes c0 = (0, 0), c1 = (10, 0), c2 = (0, 10); points 1-2 are nearest c0, points 3-5 c1, none c2.
  const codes: Matrix = { rows: 3, cols: 2, data: Float32Array.of(0, 0, 10, 0, 0, 10) };
  const points: Matrix = { rows: 5, cols: 2, data: Float32Array.of(1, 0, -1, 2, 9, 1, 11, -1, 10, 3) };
  const handle = await backend.loadCodebook(codes);
  const step = await backend.kmeansStep(handle, points);
  handle.dispose();
  assert.deepEqual([...step.ids], [0, 0, 1, 1, 1]);
  assert.deepEqual([...step.counts], [2, 3, 0]); // n_k
  assert.deepEqual([...step.sums], [0, 2, 30, 3, 0, 0]); // S_k: (1-1, 0+2), (9+11+10, 1-1+3), nothing
  assert.equal(step.inertia, 1 + 5 + 2 + 2 + 9); // squared distances 1, 1+4, 1+1, 1+1, 0+9
  const close = (got: Float32Array, want: number[]) => want.forEach((w, i) => assert.ok(Math.abs(got[i]! - w) < 1e-5, `coordinate ${i}: ${got[i]} vs ${w}`));

  // lambda = 2, c_bar = the mean of the current codes = (10/3, 10/3):
  //   c0 = ((0 + 20/3) / 4, (2 + 20/3) / 4)  = (5/3, 13/6)
  //   c1 = ((30 + 20/3) / 5, (3 + 20/3) / 5) = (22/3, 29/15)
  //   c2 = ((0 + 20/3) / 2, (0 + 20/3) / 2)  = (10/3, 10/3): an unused code moves to c_bar
  close(updateCentroids(codes, step, 2).data, [5 / 3, 13 / 6, 22 / 3, 29 / 15, 10 / 3, 10 / 3]);
  // lambda = 0: plain means, and the unused code stays where it was (re-seeding is a separate step)
  close(updateCentroids(codes, step, 0).data, [0, 1, 10, 1, 0, 10]);
});

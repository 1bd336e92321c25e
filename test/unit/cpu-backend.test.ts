// The CPU backend against plain brute force: random data and DCT features of real photos, codebooks
// that are not a multiple of the search chunk, K = 1, one query, more queries than one batch.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Matrix } from '../../native-gpu/backend.js';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import { CHUNK_ROWS } from '../../native-gpu/cpu/nearest.js';
import { f32ToF16, f16ToF32 } from '../../common/half.js';
import { CancelledError, UserError } from '../../common/errors.js';
import { seededRandom } from '../../extension/engine/core/sampling.js';
import { dctFeatures } from '../helpers/dct-features.js';

const backendPromise = createCpuBackend();
after(async () => (await backendPromise).dispose());

function randomMatrix(rows: number, cols: number, seed: number): Matrix {
  const random = seededRandom(seed);
  return { rows, cols, data: Float32Array.from({ length: rows * cols }, () => random() * 2 - 1) };
}

function squaredDistance(a: Float32Array, ai: number, b: Float32Array, bi: number, d: number): number {
  let s = 0;
  for (let j = 0; j < d; j++) s += (a[ai * d + j] - b[bi * d + j]) ** 2;
  return s;
}

/** Every id must be the brute-force nearest code, or tie with it to f32 precision. */
function assertNearest(codes: Matrix, queries: Matrix, ids: Int32Array, distances: Float32Array): void {
  const d = codes.cols;
  assert.equal(ids.length, queries.rows);
  assert.equal(distances.length, queries.rows);
  for (let i = 0; i < queries.rows; i++) {
    let best = 0, bestDist = Infinity;
    for (let c = 0; c < codes.rows; c++) {
      const dist = squaredDistance(queries.data, i, codes.data, c, d);
      if (dist < bestDist) { bestDist = dist; best = c; }
    }
    if (ids[i] !== best) {
      const got = squaredDistance(queries.data, i, codes.data, ids[i], d);
      assert.ok(got - bestDist <= 1e-5 * (1 + bestDist), `query ${i}: got code ${ids[i]} (${got}), nearest is ${best} (${bestDist})`);
    }
    assert.ok(Math.abs(distances[i] - bestDist) <= 1e-5 * (1 + bestDist), `query ${i}: distance ${distances[i]} vs ${bestDist}`);
  }
}

test('device string names onnxruntime and its thread count', async () => {
  const backend = await backendPromise;
  assert.equal(backend.name, 'cpu');
  assert.match(backend.device, /^cpu \(onnxruntime \d+\.\d+\.\d+, \d+ threads\)$/);
});

test('nearest equals brute force for K = 1, small K, and K not a multiple of the chunk', async () => {
  const backend = await backendPromise;
  for (const [k, n, d] of [[1, 5, 7], [37, 1, 7], [37, 200, 7], [CHUNK_ROWS + 3, 40, 6]]) {
    const codes = randomMatrix(k, d, k);
    const queries = randomMatrix(n, d, 1000 + n);
    const handle = await backend.loadCodebook(codes);
    assert.equal(handle.k, k);
    assert.equal(handle.d, d);
    const { ids, distances } = await backend.nearest(handle, queries);
    assertNearest(codes, queries, ids, distances);
    if (k === 1) assert.deepEqual(Array.from(ids), [0, 0, 0, 0, 0]);
    handle.dispose();
  }
});

test('more queries than one batch, across two codebook chunks', async () => {
  const backend = await backendPromise;
  const codes = randomMatrix(CHUNK_ROWS + 101, 4, 1);
  const queries = randomMatrix(1100, 4, 2); // the batch is 2^24 / CHUNK_ROWS = 1024 queries
  // plant exact copies of codes in both chunks: their ids are known without any search
  const planted = [3, CHUNK_ROWS - 1, CHUNK_ROWS, CHUNK_ROWS + 100];
  planted.forEach((code, i) => queries.data.set(codes.data.subarray(code * 4, code * 4 + 4), (1024 + i) * 4));
  const handle = await backend.loadCodebook(codes);
  const { ids, distances } = await backend.nearest(handle, queries);
  assertNearest(codes, queries, ids, distances);
  assert.deepEqual(Array.from(ids.subarray(1024, 1028)), planted);
  assert.deepEqual(Array.from(distances.subarray(1024, 1028)), [0, 0, 0, 0]);
});

test('an f16 codebook (its chunks widened in the graph) searches as its decoded f32 values, ties to the lowest index across chunks', async () => {
  const backend = await backendPromise;
  const d = 5, k = CHUNK_ROWS + 3; // three f16 chunks (they are half as long), the last one short
  const half = f32ToF16(randomMatrix(k, d, 11).data);
  const queries = randomMatrix(300, d, 12);
  // a query equal to three codes, one per chunk: the lowest index wins
  const planted = [5, CHUNK_ROWS / 2 + 1, CHUNK_ROWS + 2];
  for (const code of planted) half.set(half.subarray(0, d), code * d);
  queries.data.set(f16ToF32(half.subarray(0, d)), 7 * d);
  const handle = await backend.loadCodebook({ rows: k, cols: d, half });
  const { ids, distances } = await backend.nearest(handle, queries);
  assertNearest({ rows: k, cols: d, data: f16ToF32(half) }, queries, ids, distances);
  assert.equal(ids[7], 0);
  handle.dispose();
});

test('ties go to the lowest code index, also across chunks', async () => {
  const backend = await backendPromise;
  const d = 3;
  const codes: Matrix = { rows: CHUNK_ROWS + 2, cols: d, data: new Float32Array((CHUNK_ROWS + 2) * d).fill(5) };
  // codes 7 and CHUNK_ROWS+1 are both exactly the query
  codes.data.set([1, 2, 3], 7 * d);
  codes.data.set([1, 2, 3], (CHUNK_ROWS + 1) * d);
  const handle = await backend.loadCodebook(codes);
  const { ids } = await backend.nearest(handle, { rows: 1, cols: d, data: new Float32Array([1, 2, 3]) });
  assert.equal(ids[0], 7);
});

test('nearest equals brute force on DCT features of real photos, f32 and f16 codebooks', async () => {
  const backend = await backendPromise;
  const codes = await dctFeatures(backend, 'chelsea.png', 96, 8); // 144 codes x 192 dims
  const queries = await dctFeatures(backend, 'coffee.jpg', 96, 8);
  assert.equal(codes.rows, 144);
  assert.equal(codes.cols, 192);
  const f32 = await backend.loadCodebook(codes);
  const exact = await backend.nearest(f32, queries);
  assertNearest(codes, queries, exact.ids, exact.distances);

  // an f16 codebook searches exactly like the f32 codebook of its decoded values
  const half = f32ToF16(codes.data);
  const viaHalf = await backend.nearest(await backend.loadCodebook({ rows: codes.rows, cols: codes.cols, half }), queries);
  const decoded = { rows: codes.rows, cols: codes.cols, data: f16ToF32(half) };
  assertNearest(decoded, queries, viaHalf.ids, viaHalf.distances);
});

test('kmeansStep returns the assignment, per-code sums, counts and inertia', async () => {
  const backend = await backendPromise;
  const d = 5;
  const centroids = randomMatrix(9, d, 3);
  const points = randomMatrix(500, d, 4);
  const step = await backend.kmeansStep(await backend.loadCodebook(centroids), points);
  assertNearest(centroids, points, step.ids, step.distances);
  const sums = new Float64Array(9 * d), counts = new Float64Array(9);
  let inertia = 0;
  for (let i = 0; i < points.rows; i++) {
    counts[step.ids[i]]++;
    inertia += squaredDistance(points.data, i, centroids.data, step.ids[i], d);
    for (let j = 0; j < d; j++) sums[step.ids[i] * d + j] += points.data[i * d + j];
  }
  assert.deepEqual(Array.from(step.counts), Array.from(counts));
  assert.equal(counts.reduce((a, b) => a + b), 500);
  for (let i = 0; i < sums.length; i++) assert.ok(Math.abs(step.sums[i] - sums[i]) < 1e-9);
  assert.ok(Math.abs(step.inertia - inertia) <= 1e-5 * inertia);
});

test('histogram counts ids and refuses ids outside the codebook', async () => {
  const backend = await backendPromise;
  assert.deepEqual(Array.from(await backend.histogram(new Int32Array([2, 0, 2, 2, 4]), 5)), [1, 0, 3, 0, 1]);
  await assert.rejects(backend.histogram(new Int32Array([1, 5]), 5), (e: unknown) =>
    e instanceof UserError && /token id 5 at position 1/.test(e.message));
  await assert.rejects(backend.histogram(new Int32Array([-1]), 5), UserError);
});

test('mismatched dimensions are a UserError; an aborted signal cancels', async () => {
  const backend = await backendPromise;
  const handle = await backend.loadCodebook(randomMatrix(10, 8, 5));
  await assert.rejects(backend.nearest(handle, randomMatrix(3, 7, 6)), (e: unknown) =>
    e instanceof UserError && /7 dimensions but the codebook has 8/.test(e.message));
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(backend.nearest(handle, randomMatrix(3, 8, 6), { signal: controller.signal }), CancelledError);
  await assert.rejects(backend.kmeansStep(handle, randomMatrix(3, 8, 6), { signal: controller.signal }), CancelledError);
});

test('DCT patches round-trip through idctPatches and a mosaic of identity patches rebuilds the image', async () => {
  const backend = await backendPromise;
  const size = 32, p = 8;
  const image = randomMatrix(1, 3 * size * size, 9).data.map((v) => (v + 1) / 2);
  const coefficients = await backend.dctPatches(image, size, size, p);
  assert.equal(coefficients.rows, 16);
  assert.equal(coefficients.cols, 3 * p * p);
  const back = await backend.idctPatches(coefficients, 4, 4, p);
  for (let i = 0; i < image.length; i++) assert.ok(Math.abs(back[i] - image[i]) < 1e-5);

  // The atlas is each patch's pixels (idct of its coefficients): tiling ids 0..15 in order rebuilds the image.
  const atlas: Matrix = { rows: 16, cols: 3 * p * p, data: new Float32Array(16 * 3 * p * p) };
  for (let t = 0; t < 16; t++) {
    const one: Matrix = { rows: 1, cols: 3 * p * p, data: coefficients.data.slice(t * 3 * p * p, (t + 1) * 3 * p * p) };
    atlas.data.set(await backend.idctPatches(one, 1, 1, p), t * 3 * p * p);
  }
  const tiled = await backend.mosaic(atlas, Int32Array.from({ length: 16 }, (_, i) => i), 4, 4, p);
  for (let i = 0; i < image.length; i++) assert.ok(Math.abs(tiled[i] - image[i]) < 1e-5);
});

// Every WebGPU kernel against the CPU backend on the same inputs.
import assert from 'node:assert/strict';
import type { ComputeBackend, HalfMatrix, Matrix } from '../../native-gpu/backend.js';
import { HARDWARE_TILE } from '../../native-gpu/webgpu/kernels/nearest.js';
import { UserError } from '../../common/errors.js';
import * as path from 'node:path';
import { loadImage } from '../../extension/engine/embed/image.js';
import { f16ToF32, f32ToF16 } from '../../common/half.js';
import { assertSameNearest, matrix, maxAbsDiff, normals, openGpu, suiteBackends, test } from './harness.js';

const suite = suiteBackends();

async function compareNearest(backend: ComputeBackend, codes: Matrix, queries: Matrix): Promise<void> {
  const [g, c] = [await backend.loadCodebook(codes), await suite.cpu.loadCodebook(codes)];
  const mine = await backend.nearest(g, queries);
  const ref = await suite.cpu.nearest(c, queries);
  assertSameNearest(mine.ids, ref.ids, codes.data, queries);
  for (let i = 0; i < queries.rows; i++) {
    if (mine.ids[i] === ref.ids[i]) assert.ok(Math.abs(mine.distances[i] - ref.distances[i]) <= 1e-5 * Math.max(1, ref.distances[i]), `distance ${i}`);
  }
  g.dispose();
  c.dispose();
}

test('nearest code equals the CPU backend (K not a multiple of the tile, d not a multiple of 4)', async () => {
  await compareNearest(suite.gpu, matrix(301, 37, 1), matrix(70, 37, 2));
});

test('nearest code for a single query and a single code', async () => {
  await compareNearest(suite.gpu, matrix(1, 5, 3), matrix(1, 5, 4));
  await compareNearest(suite.gpu, matrix(97, 8, 5), matrix(1, 8, 6));
});

test('nearest code across many codebook buffers and query batches (tiny chunks forced)', async () => {
  // d = 12 -> 48-byte rows: 1 KiB chunks hold 21 codes, so K = 200 spans 10 buffers; 10 queries a batch.
  const small = await openGpu({ maxChunkBytes: 1024, maxBatchBytes: 480 });
  try {
    await compareNearest(small, matrix(200, 12, 7), matrix(33, 12, 8));
  } finally {
    await small.dispose();
  }
});

test('nearest code with the hardware tile (16x16 threads, 8x8 per thread) compiles and agrees', async () => {
  const big = await openGpu({ tile: HARDWARE_TILE, targetWorkgroups: 4 });
  try {
    await compareNearest(big, matrix(260, 20, 9), matrix(130, 20, 10));
  } finally {
    await big.dispose();
  }
});

test('f16 codebook: same ids as the CPU backend on the same halves', async () => {
  const f32 = matrix(150, 26, 11);
  const half: HalfMatrix = { rows: 150, cols: 26, half: f32ToF16(f32.data) };
  const queries = matrix(40, 26, 12);
  const [g, c] = [await suite.gpu.loadCodebook(half), await suite.cpu.loadCodebook(half)];
  const mine = await suite.gpu.nearest(g, queries);
  const ref = await suite.cpu.nearest(c, queries);
  assertSameNearest(mine.ids, ref.ids, f16ToF32(half.half), queries);
  assert.ok(maxAbsDiff(mine.distances, ref.distances) < 1e-3);
  g.dispose();
  c.dispose();
});

test('k-means step: ids, counts, inertia and per-code sums equal the CPU backend', async () => {
  const codes = matrix(24, 19, 13);
  const points = matrix(500, 19, 14);
  const small = await openGpu({ maxChunkBytes: 256, maxBatchBytes: 100 * 80 }); // 80-byte rows: 8 chunks of 3 codes, 5 batches
  try {
    for (const backend of [suite.gpu, small]) {
      const [g, c] = [await backend.loadCodebook(codes), await suite.cpu.loadCodebook(codes)];
      const mine = await backend.kmeansStep(g, points);
      const ref = await suite.cpu.kmeansStep(c, points);
      assertSameNearest(mine.ids, ref.ids, codes.data, points);
      assert.deepEqual(Array.from(mine.counts), Array.from(ref.counts));
      assert.ok(Math.abs(mine.inertia - ref.inertia) <= 1e-6 * ref.inertia, `inertia ${mine.inertia} vs ${ref.inertia}`);
      // f32 sums of <= ~40 points of magnitude ~1: a few ulps of the sum's size.
      assert.ok(maxAbsDiff(mine.sums, ref.sums) < 1e-4, `sums differ by ${maxAbsDiff(mine.sums, ref.sums)}`);
      assert.ok(mine.sums.some((v) => v !== 0));
      g.dispose();
      c.dispose();
    }
  } finally {
    await small.dispose();
  }
});

test('histogram equals the CPU backend, and an id outside the codebook is a UserError', async () => {
  const k = 37;
  const ids = Int32Array.from(normals(2000, 15), (v) => Math.min(k - 1, Math.floor(Math.abs(v) * 10)));
  const mine = await suite.gpu.histogram(ids, k);
  assert.deepEqual(Array.from(mine), Array.from(await suite.cpu.histogram(ids, k)));
  assert.equal(mine.reduce((a, b) => a + b, 0), ids.length);
  await assert.rejects(suite.gpu.histogram(Int32Array.from([1, 2, k]), k), (err: Error) => err instanceof UserError && /outside the codebook/.test(err.message));
});

test('mosaic equals the CPU backend pixel for pixel', async () => {
  const p = 5, k = 9;
  const atlas: Matrix = { rows: k, cols: 3 * p * p, data: Float32Array.from(normals(k * 3 * p * p, 16), (v) => Math.abs(v) % 1) };
  const ids = Int32Array.from({ length: 3 * 4 }, (_, i) => (i * 5) % k);
  const mine = await suite.gpu.mosaic(atlas, ids, 3, 4, p);
  assert.equal(mine.length, 3 * 15 * 20);
  assert.deepEqual(mine, await suite.cpu.mosaic(atlas, ids, 3, 4, p));
  await assert.rejects(suite.gpu.mosaic(atlas, Int32Array.from([0, 1]), 3, 4, p), UserError);
});

test('DCT and inverse DCT equal the CPU backend and invert each other (p = 16 and odd p = 3)', async () => {
  for (const [p, gridH, gridW] of [[16, 2, 3], [3, 4, 5]]) {
    const h = gridH * p, w = gridW * p;
    const image = Float32Array.from(normals(3 * h * w, 17 + p), (v) => Math.abs(v) % 1);
    const mine = await suite.gpu.dctPatches(image, h, w, p);
    const ref = await suite.cpu.dctPatches(image, h, w, p);
    assert.equal(mine.rows, ref.rows);
    assert.equal(mine.cols, ref.cols);
    assert.ok(maxAbsDiff(mine.data, ref.data) < 1e-5, `p=${p}: coefficients differ by ${maxAbsDiff(mine.data, ref.data)}`);
    const back = await suite.gpu.idctPatches(mine, gridH, gridW, p);
    assert.ok(maxAbsDiff(back, image) < 1e-5, `p=${p}: round trip off by ${maxAbsDiff(back, image)}`);
    assert.ok(maxAbsDiff(back, await suite.cpu.idctPatches(ref, gridH, gridW, p)) < 1e-5);
  }
  await assert.rejects(suite.gpu.dctPatches(new Float32Array(3 * 10 * 10), 10, 10, 16), UserError);
  // A real photo at its own shape: the 640 x 400 fixture as the DCT encoder loads it, 352 x 224 (14 x 22 patches)
  const photo = await loadImage(path.join(__dirname, '../fixtures/wide/china-640x400.png'), { shortSide: 224, multiple: 16, maxLongSide: 896 });
  assert.deepEqual([photo.width, photo.height], [352, 224]);
  const coefficients = await suite.gpu.dctPatches(photo.data, 224, 352, 16);
  assert.equal(coefficients.rows, 14 * 22);
  assert.ok(maxAbsDiff(coefficients.data, (await suite.cpu.dctPatches(photo.data, 224, 352, 16)).data) < 1e-4);
  assert.ok(maxAbsDiff(await suite.gpu.idctPatches(coefficients, 14, 22, 16), photo.data) < 1e-5);
});

test('queries of the wrong width are a UserError', async () => {
  const g = await suite.gpu.loadCodebook(matrix(10, 8, 18));
  await assert.rejects(suite.gpu.nearest(g, matrix(3, 9, 19)), (err: Error) => err instanceof UserError && /dimensions/.test(err.message));
  g.dispose();
});

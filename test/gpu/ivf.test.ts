// IVF search on WebGPU (the grouped nearest kernel) against the CPU backend: every cell probed is
// exact search; fewer cells give the CPU's IVF ids; more queries in a cell than one tile (first
// test: ~200 per cell, 32-row software tiles), cells straddling codebook buffers and several
// query batches (second), f16 codes.
import assert from 'node:assert/strict';
import type { HalfMatrix } from '../../native-gpu/backend.js';
import { UserError } from '../../common/errors.js';
import { f16ToF32, f32ToF16 } from '../../common/half.js';
import { coarseLevel, sortedByCell } from '../helpers/nearest.js';
import { assertSameNearest, matrix, maxAbsDiff, openGpu, suiteBackends, test } from './harness.js';

const suite = suiteBackends();

test('nprobe = every cell equals exact search on the CPU (d not a multiple of 4, unsorted codes)', async () => {
  const codes = matrix(300, 21, 1);
  const queries = matrix(200, 21, 2);
  const coarse = coarseLevel(codes, 9, 3);
  const exact = await suite.cpu.nearest(await suite.cpu.loadCodebook(codes), queries);
  const index = await suite.gpu.loadIvf(codes, coarse);
  const mine = await suite.gpu.nearestIvf(index, queries, { nprobe: 9 });
  assertSameNearest(mine.ids, exact.ids, codes.data, queries);
  assert.ok(maxAbsDiff(mine.distances, exact.distances) < 1e-4);
  index.dispose();
});

test('cells straddling codebook buffers, several query batches and tiles: still exact at every cell', async () => {
  // d = 12 -> 48-byte rows: 1 KiB buffers hold 21 codes, so cells of ~25 codes cross buffers;
  // 4 KiB batches hold 85 gathered rows, so 6 cells x nprobe needs many batches.
  const small = await openGpu({ maxChunkBytes: 1024, maxBatchBytes: 4096 });
  try {
    const codes = matrix(150, 12, 4);
    const queries = matrix(120, 12, 5);
    const { codes: grouped, coarse } = sortedByCell(codes, coarseLevel(codes, 6, 6));
    const exact = await suite.cpu.nearest(await suite.cpu.loadCodebook(grouped), queries);
    const index = await small.loadIvf(grouped, coarse);
    assertSameNearest((await small.nearestIvf(index, queries, { nprobe: 6 })).ids, exact.ids, grouped.data, queries);
    // and with fewer cells, the CPU's IVF answer (both probe through the same coarse step)
    const cpuIndex = await suite.cpu.loadIvf(grouped, coarse);
    for (const nprobe of [1, 2]) {
      const ref = await suite.cpu.nearestIvf(cpuIndex, queries, { nprobe });
      assertSameNearest((await small.nearestIvf(index, queries, { nprobe })).ids, ref.ids, grouped.data, queries);
    }
  } finally {
    await small.dispose();
  }
});

test('f16 codes: same ids as the CPU backend\'s IVF on the same halves', async () => {
  const f32 = matrix(240, 26, 7);
  const half: HalfMatrix = { rows: 240, cols: 26, half: f32ToF16(f32.data) };
  const queries = matrix(90, 26, 8);
  const coarse = coarseLevel(f32, 8, 9);
  const [g, c] = [await suite.gpu.loadIvf(half, coarse), await suite.cpu.loadIvf(half, coarse)];
  for (const nprobe of [2, 8]) {
    const mine = await suite.gpu.nearestIvf(g, queries, { nprobe });
    const ref = await suite.cpu.nearestIvf(c, queries, { nprobe });
    assertSameNearest(mine.ids, ref.ids, f16ToF32(half.half), queries);
  }
  g.dispose();
  c.dispose();
});

test('device lost: an index loaded on the GPU answers from the CPU, with the CPU\'s IVF ids', async () => {
  const warnings: string[] = [];
  const lost = await openGpu(undefined, warnings);
  try {
    const codes = matrix(160, 10, 13), queries = matrix(50, 10, 14);
    const coarse = coarseLevel(codes, 5, 15);
    const index = await lost.loadIvf(codes, coarse);
    const ref = await suite.cpu.nearestIvf(await suite.cpu.loadIvf(codes, coarse), queries, { nprobe: 2 });
    lost.gpuDevice.destroy();
    const after = await lost.nearestIvf(index, queries, { nprobe: 2 });
    assertSameNearest(after.ids, ref.ids, codes.data, queries);
    assert.match(warnings.join('\n'), /device lost.*IVF search.*CPU backend/);
  } finally {
    await lost.dispose();
  }
});

test('bad nprobe is a UserError', async () => {
  const codes = matrix(40, 8, 10);
  const index = await suite.gpu.loadIvf(codes, coarseLevel(codes, 4, 11));
  await assert.rejects(suite.gpu.nearestIvf(index, matrix(3, 8, 12), { nprobe: 5 }), (e: Error) => e instanceof UserError && /nprobe must be a whole number from 1 to 4/.test(e.message));
  index.dispose();
});

// IVF search on the CPU backend: probing every cell is exact search; fewer cells trade recall for
// speed, monotonically; the codes are grouped correctly whether or not they arrive sorted by cell;
// empty cells, f16 codes and bad arguments.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Matrix } from '../../native-gpu/backend.js';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import { groupByCell, queriesByCell } from '../../native-gpu/ivf.js';
import { CpuIvf, createIvfSession, searchIvf } from '../../native-gpu/cpu/ivf.js';
import { isHalf } from '../../native-gpu/tables.js';
import { f16ToF32, f32ToF16 } from '../../common/half.js';
import { CancelledError, UserError } from '../../common/errors.js';
import { seededRandom } from '../../extension/engine/core/sampling.js';
import { EmbeddingMixture } from '../../bench/embedding-data.js';
import { bruteNearest, coarseLevel, sortedByCell, squaredDistance } from '../helpers/nearest.js';

const backendPromise = createCpuBackend();
after(async () => (await backendPromise).dispose());

function normalMatrix(rows: number, cols: number, seed: number): Matrix {
  const random = seededRandom(seed);
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  return { rows, cols, data };
}

function recall(ids: Int32Array, exact: Int32Array): number {
  let same = 0;
  for (let i = 0; i < ids.length; i++) if (ids[i] === exact[i]) same++;
  return same / ids.length;
}

test('groupByCell: a stable counting sort by cell; no copy when the codes are already grouped', () => {
  const codes: Matrix = { rows: 6, cols: 2, data: Float32Array.from({ length: 12 }, (_, i) => i) };
  const centroids: Matrix = { rows: 4, cols: 2, data: new Float32Array(8) };
  const layout = groupByCell(codes, { centroids, assign: Int32Array.of(2, 0, 2, 3, 0, 2) });
  assert.deepEqual(Array.from(layout.order), [1, 4, 0, 2, 5, 3]);
  assert.deepEqual(Array.from(layout.cellStart), [0, 2, 2, 5, 6]);
  assert.deepEqual(Array.from(layout.nonEmpty), [0, 2, 3]); // cell 1 is empty
  assert.deepEqual(Array.from((layout.grouped as Matrix).data), [2, 3, 8, 9, 0, 1, 4, 5, 10, 11, 6, 7]);

  const sorted = groupByCell(codes, { centroids, assign: Int32Array.of(0, 0, 1, 3, 3, 3) });
  assert.equal(sorted.grouped, codes);
  assert.deepEqual(Array.from(sorted.order), [0, 1, 2, 3, 4, 5]);

  const lists = queriesByCell(Int32Array.of(2, 0, 0, 3, 2, 3), 2, 4); // 3 queries x nprobe 2
  assert.deepEqual(Array.from(lists.start), [0, 2, 2, 4, 6]);
  assert.deepEqual(Array.from(lists.members), [0, 1, 0, 2, 1, 2]);
});

test('nprobe = every cell gives exact search\'s ids and distances (codes unsorted and sorted by cell, f32 and f16)', async () => {
  const backend = await backendPromise;
  const codes = normalMatrix(700, 24, 1);
  const queries = normalMatrix(1500, 24, 2); // more than one fine block (1,024 rows) in big cells
  const coarse = coarseLevel(codes, 20, 3);
  const grouped = sortedByCell(codes, coarse);
  const half = { rows: codes.rows, cols: codes.cols, half: f32ToF16(codes.data) };
  const cases = [
    { name: 'f32, unsorted', codes, coarse, ids: null },
    { name: 'f32, grouped', codes: grouped.codes, coarse: grouped.coarse, ids: grouped.ids },
    { name: 'f16, unsorted', codes: half, coarse, ids: null },
  ];
  for (const c of cases) {
    const exact = await backend.nearest(await backend.loadCodebook(c.codes), queries);
    const index = await backend.loadIvf(c.codes, c.coarse);
    assert.equal(index.cells, 20);
    assert.equal(index.k, 700);
    const ivf = await backend.nearestIvf(index, queries, { nprobe: 20 });
    assert.deepEqual(ivf.ids, exact.ids, c.name);
    assert.deepEqual(ivf.distances, exact.distances, c.name);
    index.dispose();
  }
  // f16 codes too large to widen at load stay f16, each cell decoded at search time: same answer
  const halfIndex = await CpuIvf.create(half, coarse, 0);
  assert.ok(halfIndex.cellCodebooks.every((cb) => !cb || isHalf(cb.source)));
  const exactHalf = await backend.nearest(await backend.loadCodebook(half), queries);
  const session = await createIvfSession();
  assert.deepEqual((await searchIvf(session, halfIndex, queries, { nprobe: 20 })).ids, exactHalf.ids);
  await session.release();
  halfIndex.dispose();
  // Grouping never changes which code wins: the grouped codebook's ids map back to the original ones.
  const flat = await backend.nearest(await backend.loadCodebook(codes), queries);
  const viaGrouped = await backend.nearestIvf(await backend.loadIvf(grouped.codes, grouped.coarse), queries, { nprobe: 20 });
  assert.deepEqual(Int32Array.from(viaGrouped.ids, (p) => grouped.ids[p]), flat.ids);
  // and f16 codes search as their decoded values
  const decoded = { rows: codes.rows, cols: codes.cols, data: f16ToF32(half.half) };
  const viaHalf = await backend.nearestIvf(await backend.loadIvf(half, coarse), queries, { nprobe: 20 });
  for (let i = 0; i < 50; i++) assert.equal(viaHalf.ids[i], bruteNearest(queries, i, decoded));
});

test('with fewer cells, each id is the nearest code among the probed cells\' codes', async () => {
  const backend = await backendPromise;
  const codes = normalMatrix(400, 16, 4);
  const queries = normalMatrix(60, 16, 5);
  const coarse = coarseLevel(codes, 16, 6);
  const nprobe = 3;
  const { ids, distances } = await backend.nearestIvf(await backend.loadIvf(codes, coarse), queries, { nprobe });
  for (let i = 0; i < queries.rows; i++) {
    // the nprobe nearest centroids, by brute force
    const byDistance = Array.from({ length: 16 }, (_, c) => c)
      .sort((a, b) => squaredDistance(queries.data, i, coarse.centroids.data, a, 16) - squaredDistance(queries.data, i, coarse.centroids.data, b, 16));
    const probed = new Set(byDistance.slice(0, nprobe));
    let best = -1, bestDist = Infinity;
    for (let c = 0; c < codes.rows; c++) {
      if (!probed.has(coarse.assign[c])) continue;
      const dist = squaredDistance(queries.data, i, codes.data, c, 16);
      if (dist < bestDist) {
        bestDist = dist;
        best = c;
      }
    }
    assert.equal(ids[i], best, `query ${i}`);
    assert.ok(Math.abs(distances[i] - bestDist) <= 1e-5 * (1 + bestDist));
  }
});

test('recall@1 grows with nprobe on embedding-like data and reaches 1 at every cell', async () => {
  const backend = await backendPromise;
  const mixture = new EmbeddingMixture({ d: 32, components: 400, seed: 11 });
  const codes: Matrix = { rows: 2000, cols: 32, data: mixture.rows(0, 2000) };
  const queries: Matrix = { rows: 1000, cols: 32, data: mixture.rows(100_000, 1000) };
  const coarse = coarseLevel(codes, 40, 12);
  const exact = await backend.nearest(await backend.loadCodebook(codes), queries);
  const index = await backend.loadIvf(codes, coarse);
  const curve: number[] = [];
  for (const nprobe of [1, 2, 4, 8, 16, 40]) curve.push(recall((await backend.nearestIvf(index, queries, { nprobe })).ids, exact.ids));
  for (let i = 1; i < curve.length; i++) assert.ok(curve[i] >= curve[i - 1], `recall fell: ${curve.join(', ')}`);
  assert.ok(curve[0] < 0.9, `one cell should miss some: ${curve.join(', ')}`);
  assert.ok(curve[3] > curve[0], `more cells should find more: ${curve.join(', ')}`);
  assert.equal(curve.at(-1), 1);
});

test('empty cells are never probed: every query gets a code even when its nearest cell is empty', async () => {
  const backend = await backendPromise;
  const codes = normalMatrix(50, 8, 7);
  const coarse = coarseLevel(codes, 5, 8);
  // Three extra cells with no codes, one exactly at each query: the nearest cell of every query is empty.
  const queries = normalMatrix(3, 8, 9);
  const centroids: Matrix = { rows: 8, cols: 8, data: Float32Array.from([...coarse.centroids.data, ...queries.data]) };
  const index = await backend.loadIvf(codes, { centroids, assign: coarse.assign });
  assert.equal(index.cells, 8);
  const exact = await backend.nearest(await backend.loadCodebook(codes), queries);
  const all = await backend.nearestIvf(index, queries, { nprobe: 8 });
  assert.deepEqual(all.ids, exact.ids);
  const one = await backend.nearestIvf(index, queries, { nprobe: 1 });
  for (const id of one.ids) assert.ok(id >= 0 && id < 50);
});

test('bad nprobe, mismatched dimensions and bad coarse levels are UserErrors; an aborted signal cancels', async () => {
  const backend = await backendPromise;
  const codes = normalMatrix(30, 4, 10);
  const coarse = coarseLevel(codes, 6, 11);
  const index = await backend.loadIvf(codes, coarse);
  const queries = normalMatrix(5, 4, 12);
  for (const nprobe of [0, -1, 1.5, 7, NaN]) {
    await assert.rejects(backend.nearestIvf(index, queries, { nprobe }), (e: unknown) =>
      e instanceof UserError && /nprobe must be a whole number from 1 to 6 \(the coarse cells\)/.test(e.message), String(nprobe));
  }
  await assert.rejects(backend.nearestIvf(index, normalMatrix(5, 3, 13), { nprobe: 2 }), (e: unknown) =>
    e instanceof UserError && /3 dimensions but the codebook has 4/.test(e.message));
  await assert.rejects(backend.loadIvf(codes, { centroids: coarse.centroids, assign: coarse.assign.subarray(1) }), (e: unknown) =>
    e instanceof UserError && /lists 29 codes but the codebook has 30/.test(e.message));
  await assert.rejects(backend.loadIvf(codes, { centroids: coarse.centroids, assign: coarse.assign.map((c, i) => (i === 4 ? 6 : c)) }), (e: unknown) =>
    e instanceof UserError && /code 4 is assigned to coarse cell 6, outside \[0, 6\)/.test(e.message));
  await assert.rejects(backend.loadIvf(codes, { centroids: normalMatrix(6, 5, 14), assign: coarse.assign }), (e: unknown) =>
    e instanceof UserError && /coarse centroids have 5 dimensions but the codes have 4/.test(e.message));
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(backend.nearestIvf(index, queries, { nprobe: 2, signal: controller.signal }), CancelledError);
  index.dispose();
  await assert.rejects(backend.nearestIvf(index, queries, { nprobe: 2 }), /disposed/);
});

test('an f16 codebook finds the f32 codebook\'s codes, except near-ties within f16 rounding (exact and IVF)', async () => {
  const backend = await backendPromise;
  const mixture = new EmbeddingMixture({ d: 48, components: 300, seed: 21 });
  const codes: Matrix = { rows: 3000, cols: 48, data: mixture.rows(0, 3000) };
  const queries: Matrix = { rows: 2000, cols: 48, data: mixture.rows(1_000_000, 2000) };
  const coarse = coarseLevel(codes, 30, 22);
  const half = { rows: codes.rows, cols: codes.cols, half: f32ToF16(codes.data) };
  const searches = [
    { name: 'exact', f32: await backend.nearest(await backend.loadCodebook(codes), queries), f16: await backend.nearest(await backend.loadCodebook(half), queries) },
    { name: 'ivf', f32: await backend.nearestIvf(await backend.loadIvf(codes, coarse), queries, { nprobe: 6 }), f16: await backend.nearestIvf(await backend.loadIvf(half, coarse), queries, { nprobe: 6 }) },
  ];
  const d = 48;
  const norm = (m: Float32Array, i: number) => Math.sqrt(squaredDistance(m, i, new Float32Array(d), 0, d));
  for (const { name, f32, f16 } of searches) {
    let differ = 0;
    for (let i = 0; i < queries.rows; i++) {
      const a = f32.ids[i]!, b = f16.ids[i]!;
      if (a === b) continue;
      differ++;
      // Each f16 value is within 2^-11 relative of the f32 one, so a code's distance moves by at
      // most about 2 x 2^-11 x |q - c| |c|: codes closer than the two codes' bounds together may swap.
      const da = squaredDistance(queries.data, i, codes.data, a, d), db = squaredDistance(queries.data, i, codes.data, b, d);
      const bound = 2 * 2 ** -11 * (Math.sqrt(da) * norm(codes.data, a) + Math.sqrt(db) * norm(codes.data, b));
      assert.ok(db - da <= bound, `${name} query ${i}: f16 picked code ${b} (${db}) over ${a} (${da}), gap beyond the f16 bound ${bound}`);
    }
    assert.ok(differ <= queries.rows / 50, `${name}: ${differ} of ${queries.rows} ids differ`);
  }
});

// The engine's choice of search (extension/engine/search/search.ts): IVF when the codebook has a coarse
// level, exact otherwise or when asked; nprobe checked and capped at the cells; recall@1 against
// exact search, near-ties of the f32 scores counted as found.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Matrix } from '../../native-gpu/backend.js';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import type { Codebook } from '../../extension/engine/codebook/codebook.js';
import { calibrateCodebook, foundNearest, measureRecall, nprobeLadder, openSearch, tieTolerance } from '../../extension/engine/search/search.js';
import { UNCALIBRATED_NPROBE } from '../../extension/engine/core/defaults.js';
import { UserError } from '../../common/errors.js';
import { seededRandom } from '../../extension/engine/core/sampling.js';
import { coarseLevel, ivfRecallOf, memoryCodebook, sortedByCell } from '../helpers/nearest.js';

const backendPromise = createCpuBackend();
after(async () => (await backendPromise).dispose());

function uniform(rows: number, cols: number, seed: number): Matrix {
  const random = seededRandom(seed);
  return { rows, cols, data: Float32Array.from({ length: rows * cols }, () => random() * 2 - 1) };
}

test('openSearch: exact without a coarse level or when asked, IVF with one; nprobe capped at the cells and checked', async () => {
  const backend = await backendPromise;
  const codes = uniform(200, 6, 1);
  const grouped = sortedByCell(codes, coarseLevel(codes, 10, 2));
  const flat = memoryCodebook(codes);
  const ivf = memoryCodebook(grouped.codes, grouped.coarse);
  const info = async (cb: Codebook, options?: Parameters<typeof openSearch>[2]) => {
    const s = await openSearch(cb, backend, options);
    s.dispose();
    return s.info;
  };
  assert.deepEqual(await info(flat), { method: 'exact', nprobe: null });
  assert.deepEqual(await info(flat, { nprobe: 3 }), { method: 'exact', nprobe: null });
  // no calibrated nprobe: the fallback (capped at the cells); a calibrated one: that; asked for: that
  assert.deepEqual(await info(ivf), { method: 'ivf', nprobe: Math.min(UNCALIBRATED_NPROBE, 10) });
  const calibrated = { ...ivf, meta: { ...ivf.meta, nprobe: 4 } };
  assert.deepEqual(await info(calibrated), { method: 'ivf', nprobe: 4 });
  assert.deepEqual(await info(calibrated, { nprobe: 0 }), { method: 'ivf', nprobe: 4 });
  assert.deepEqual(await info(calibrated, { nprobe: 7 }), { method: 'ivf', nprobe: 7 });
  assert.deepEqual(await info(ivf, { nprobe: 3 }), { method: 'ivf', nprobe: 3 });
  assert.deepEqual(await info(ivf, { nprobe: 500 }), { method: 'ivf', nprobe: 10 });
  assert.deepEqual(await info(ivf, { search: 'exact', nprobe: 3 }), { method: 'exact', nprobe: null });
  for (const nprobe of [-2, 1.5, NaN]) {
    await assert.rejects(openSearch(ivf, backend, { nprobe }), (e: Error) => e instanceof UserError && /nprobe must be a whole number of at least 0 \(0: the codebook's calibrated nprobe\)/.test(e.message));
  }
  await assert.rejects(openSearch(ivf, backend, { search: 'fast' as 'auto' }), (e: Error) => e instanceof UserError && /search must be 'auto' or 'exact'; got 'fast'/.test(e.message));

  // and the searches answer: IVF over every cell gives exact search's ids
  const queries = uniform(50, 6, 3);
  const exact = await openSearch(ivf, backend, { search: 'exact' });
  const all = await openSearch(ivf, backend, { nprobe: 10 });
  assert.deepEqual((await all.nearest(queries)).ids, (await exact.nearest(queries)).ids);
  exact.dispose();
  all.dispose();
});

test('foundNearest: the same distance or a near-tie within the scores\' rounding counts, a farther code does not', () => {
  const q = Float32Array.of(10, 0, 0, 0), c = Float32Array.of(10, 0.1, 0, 0); // ||q||^2 + ||c||^2 ~ 200, d = 4
  assert.equal(tieTolerance(4), 2 ** -21);
  assert.ok(foundNearest(q, c, 0.01, 0.01));
  assert.ok(foundNearest(q, c, 0.0099, 0.01));
  assert.ok(foundNearest(q, c, 0.01 + 5e-5, 0.01)); // < 2^-21 x 200 = 9.5e-5
  assert.ok(!foundNearest(q, c, 0.01 + 2e-4, 0.01));
});

test('measureRecall: exact search on a seeded sample, the share found', async () => {
  const backend = await backendPromise;
  const codes = uniform(300, 8, 4);
  const grouped = sortedByCell(codes, coarseLevel(codes, 12, 5));
  const cb = memoryCodebook(grouped.codes, grouped.coarse);
  const queries = uniform(400, 8, 6);
  const one = await openSearch(cb, backend, { nprobe: 1 });
  const answer = await one.nearest(queries);
  one.dispose();
  const exact = await openSearch(cb, backend, { search: 'exact' });
  const truth = await exact.nearest(queries);
  exact.dispose();
  // every query sampled: the share whose id is exact's (uniform data has no near-ties)
  let same = 0;
  for (let i = 0; i < 400; i++) if (answer.ids[i] === truth.ids[i]) same++;
  assert.deepEqual(await measureRecall(cb, backend, queries, answer, 1000), { recall: same / 400, sampled: 400 });
  assert.ok(same < 400);
  const sampled = await measureRecall(cb, backend, queries, answer, 100);
  assert.equal(sampled.sampled, 100);
  assert.deepEqual(await measureRecall(cb, backend, queries, answer, 100), sampled); // seeded
  assert.equal((await measureRecall(cb, backend, queries, truth, 100)).recall, 1);
});

test('nprobeLadder: 1, 2, 4, 8, then x1.5 and x4/3 steps, ending with every cell', () => {
  assert.deepEqual(nprobeLadder(1), [1]);
  assert.deepEqual(nprobeLadder(4), [1, 2, 4]);
  assert.deepEqual(nprobeLadder(10), [1, 2, 4, 8, 10]);
  assert.deepEqual(nprobeLadder(128), [1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128]);
  assert.deepEqual(nprobeLadder(362).slice(-4), [128, 192, 256, 362]);
});

test('calibrateCodebook: the smallest rung whose recall@1 reaches the target, every rung below it short of it', async () => {
  const backend = await backendPromise;
  const codes = uniform(400, 8, 7);
  const grouped = sortedByCell(codes, coarseLevel(codes, 16, 8));
  const cb = memoryCodebook(grouped.codes, grouped.coarse);
  const queries = uniform(3000, 8, 9);
  const recallAt = await ivfRecallOf(cb, backend, queries);
  for (const target of [0.5, 0.95, 1]) {
    const c = await calibrateCodebook(cb, backend, queries, { target });
    assert.equal(c.queries, 3000);
    assert.ok(c.recall >= target, `target ${target}: ${JSON.stringify(c)}`);
    assert.equal(c.recall, await recallAt(c.nprobe));
    // the climb stopped at the first rung that reached it
    assert.deepEqual(c.curve.map((p) => p.nprobe), nprobeLadder(16).slice(0, c.curve.length));
    for (const p of c.curve.slice(0, -1)) assert.ok(p.recall < target, `target ${target}: ${JSON.stringify(c.curve)}`);
  }
  // uniform data in 8 dimensions needs more than one cell for 0.95, and all of them for 1
  assert.ok((await calibrateCodebook(cb, backend, queries)).nprobe > 1);
  // a seeded sample of the queries
  assert.equal((await calibrateCodebook(cb, backend, queries, { sample: 500 })).queries, 500);
  await assert.rejects(calibrateCodebook(memoryCodebook(codes), backend, queries), (e: Error) => e instanceof UserError && /no coarse level/.test(e.message));
  await assert.rejects(calibrateCodebook(cb, backend, uniform(5, 3, 1)), (e: Error) => e instanceof UserError && /the queries have d=3 but the codebook has d=8/.test(e.message));
});

// The CPU backend's int8 prefilter (native-gpu/cpu/prefilter.ts) must return the EXACT nearest
// code (ties to the lowest index) whatever the data: held to an f64 brute force id for id, on
// embedding-like data and on DCT features of real photos (skewed coordinates: a weak prefilter),
// across a chunk boundary, at odd sizes, with both int8 ranges, and on codes the int8 GEMM cannot
// tell apart (every list must widen to its whole chunk).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Matrix } from '../../native-gpu/backend.js';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import { CpuCodebook, PREFILTER_AFTER_ROWS, PREFILTER_MIN_CODES, createSearchSession, searchNearest } from '../../native-gpu/cpu/nearest.js';
import { PREFILTER_CHUNK_ROWS, PREFILTER_SESSION_ROWS, int8CodeLevels } from '../../native-gpu/cpu/prefilter.js';
import { f16ToF32, f32ToF16 } from '../../common/half.js';
import { CancelledError, UserError } from '../../common/errors.js';
import { seededRandom } from '../../extension/engine/core/sampling.js';
import { EmbeddingMixture } from '../../bench/embedding-data.js';
import { bruteNearest, squaredDistance } from '../helpers/nearest.js';
import { dctFeatures, stackRows } from '../helpers/dct-features.js';

const sessionPromise = createSearchSession();
after(async () => (await sessionPromise).release());

function randomMatrix(rows: number, cols: number, seed: number, scale = 1): Matrix {
  const random = seededRandom(seed);
  return { rows, cols, data: Float32Array.from({ length: rows * cols }, () => (random() * 2 - 1) * scale) };
}

function mixture(d: number, start: number, rows: number): Matrix {
  return { rows, cols: d, data: new EmbeddingMixture({ d, components: 500 }).rows(start, rows) };
}

/** Searches with the int8 prefilter from the first query on, whether it pays or not. */
async function prefiltered(codes: Matrix | { rows: number; cols: number; half: Uint16Array }, queries: Matrix, levels?: 127 | 63) {
  const cb = new CpuCodebook(codes, { prefilter: 'always', prefilterLevels: levels });
  try {
    return await searchNearest(await sessionPromise, cb, queries);
  } finally {
    cb.dispose();
  }
}

/** ids against brute force (f64, ties to the lowest index) for every `stride`-th query; `f32`:
 *  the f32 GEMM's ids, which may differ where two codes tie to f32 precision */
function assertExact(codes: Matrix, queries: Matrix, ids: Int32Array, what: string, stride = 1, f32 = false): void {
  assert.equal(ids.length, queries.rows);
  for (let i = 0; i < queries.rows; i += stride) {
    const expected = bruteNearest(queries, i, codes);
    if (ids[i] !== expected) {
      const got = squaredDistance(queries.data, i, codes.data, ids[i], codes.cols);
      const want = squaredDistance(queries.data, i, codes.data, expected, codes.cols);
      if (f32 && got - want <= 1e-5 * (1 + want)) continue;
      assert.fail(`${what}: query ${i} got code ${ids[i]} at ${got}, the nearest is ${expected} at ${want}`);
    }
  }
}

test('int8 prefilter: exact ids on embedding-like data across a chunk boundary, in each int8 range this CPU can use', async (t) => {
  const codes = mixture(64, 0, PREFILTER_CHUNK_ROWS + 37);
  const queries = mixture(64, 1_000_000, 300);
  // ±127 only where the int8 GEMM sums in 32 bits (VNNI, AMX, arm64): on AVX2 alone MLAS's
  // vpmaddubsw saturates pairs of products at 16 bits, which is why the backend uses ±63 there
  // (with ±127 such a machine returns wrong codes: seen on a Zen 3 EPYC)
  const ranges = int8CodeLevels() === 127 ? [127, 63] as const : [63] as const;
  t.diagnostic(`int8 ranges tested on this CPU: ${ranges.map((l) => `±${l}`).join(', ')}`);
  for (const levels of ranges) {
    const { ids, scores } = await prefiltered(codes, queries, levels);
    assertExact(codes, queries, ids, `int8 range ±${levels}`);
    // the score is ||c||^2 - 2 q.c of the winner
    for (const i of [0, 150, 299]) {
      let qc = 0, cc = 0;
      for (let j = 0; j < 64; j++) {
        qc += queries.data[i * 64 + j] * codes.data[ids[i] * 64 + j];
        cc += codes.data[ids[i] * 64 + j] ** 2;
      }
      assert.ok(Math.abs(scores[i] - (cc - 2 * qc)) < 1e-6, `score of query ${i}`);
    }
  }
});

test('int8 prefilter: exact ids on DCT features of real photos, and the backend drops it there: it does not pay', async () => {
  const backend = await createCpuBackend();
  try {
    const photos = ['chelsea.png', 'brick.png', 'rocket.jpg', 'astronaut.jpg', 'grass.png', 'flower.jpg'];
    const codes = stackRows(await Promise.all(photos.map((f) => dctFeatures(backend, f, 224, 8))));
    assert.equal(codes.rows, 6 * 784);
    const few = await dctFeatures(backend, 'coffee.jpg', 160, 8);
    assertExact(codes, few, (await prefiltered(codes, few)).ids, 'DCT features');
    // One large coefficient per channel and many small ones: int8 resolves them poorly, the bound
    // is wide and nearly every code gets evaluated. 3,136 queries x 4,704 codes is enough work
    // for the backend to try the prefilter at once; it gives up within the first batch.
    const queries = await dctFeatures(backend, 'coffee.jpg', 448, 8);
    const handle = await backend.loadCodebook(codes);
    assert.ok(handle instanceof CpuCodebook);
    assertExact(codes, queries, (await backend.nearest(handle, queries)).ids, 'DCT features, backend', 7, true);
    assert.equal(handle.prefiltered, false);
    // on embedding-like data of the same size it pays and stays
    const embeddings = await backend.loadCodebook(mixture(192, 0, codes.rows));
    await backend.nearest(embeddings, mixture(192, 1_000_000, queries.rows));
    assert.equal((embeddings as CpuCodebook).prefiltered, true);
  } finally {
    await backend.dispose();
  }
});

test('int8 prefilter: odd sizes (K = 1, K below the list length, one query, d not a multiple of 4)', async () => {
  for (const [k, n, d] of [[1, 5, 7], [5, 1, 13], [37, 40, 3], [300, 1, 9]]) {
    const codes = randomMatrix(k, d, k + d), queries = randomMatrix(n, d, 100 + n);
    assertExact(codes, queries, (await prefiltered(codes, queries)).ids, `K=${k} Q=${n} d=${d}`);
  }
});

test('int8 prefilter: codes the int8 GEMM cannot tell apart widen every list to its whole chunk', async () => {
  // Every code is one base vector plus noise far below an int8 step: all quantize alike, all fall
  // inside the error bound, and only the exact f64 re-ranking can order them.
  const d = 8, k = PREFILTER_CHUNK_ROWS + 100;
  const base = randomMatrix(1, d, 1).data;
  const noise = randomMatrix(k, d, 2, 1e-5).data;
  const codes: Matrix = { rows: k, cols: d, data: Float32Array.from(noise, (v, i) => base[i % d] + v) };
  const queries: Matrix = { rows: 12, cols: d, data: Float32Array.from(randomMatrix(12, d, 3, 1e-5).data, (v, i) => base[i % d] + v) };
  assertExact(codes, queries, (await prefiltered(codes, queries)).ids, 'indistinguishable codes');
});

test('int8 prefilter: exact ties go to the lowest index, also across chunks and sessions', async () => {
  const d = 16;
  const codes = mixture(d, 0, PREFILTER_SESSION_ROWS + 10);
  const copy = PREFILTER_SESSION_ROWS + 5;
  codes.data.copyWithin(3 * d, copy * d, (copy + 1) * d); // code 3 == code copy
  codes.data.copyWithin((PREFILTER_CHUNK_ROWS + 7) * d, copy * d, (copy + 1) * d); // and a code of the next chunk
  const queries: Matrix = { rows: 2, cols: d, data: new Float32Array(2 * d) };
  queries.data.set(codes.data.subarray(copy * d, (copy + 1) * d)); // the code itself
  queries.data.set(codes.data.subarray(copy * d, (copy + 1) * d).map((v) => v * 1.01), d); // near it
  assert.deepEqual(Array.from((await prefiltered(codes, queries)).ids), [3, 3]);
});

test('f16 codebook: same ids as the f32 one except near-ties within the f16 rounding bound', async () => {
  // f16 rounds each value c to c' with |c' - c| <= 2^-11 |c| (normal range; 2^-25 absolute below
  // it), so ||c' - c|| <= r = 2^-11 ||c|| + 2^-25 sqrt(d), and for any query
  //   |D(q, c') - D(q, c)| = |2 (c - q).(c' - c) + ||c' - c||^2| <= 2 sqrt(D(q, c)) r + r^2.
  // Ids a (f32) and b (f16) can differ only if D(q, b) - D(q, a) is within the two codes' bounds.
  const d = 64;
  const codes = mixture(d, 0, 3000), queries = mixture(d, 1_000_000, 1500);
  const half = f32ToF16(codes.data);
  const decoded: Matrix = { rows: codes.rows, cols: d, data: f16ToF32(half) };
  const f32 = await prefiltered(codes, queries);
  for (const path of ['int8 prefilter', 'f32 GEMM'] as const) {
    const cb = new CpuCodebook({ rows: codes.rows, cols: d, half }, { prefilter: path === 'f32 GEMM' ? 'never' : 'always' });
    const { ids } = await searchNearest(await sessionPromise, cb, queries);
    cb.dispose();
    if (path === 'int8 prefilter') assertExact(decoded, queries, ids, 'f16 codebook, int8 prefilter');
    let differing = 0;
    for (let i = 0; i < queries.rows; i++) {
      const a = f32.ids[i], b = ids[i];
      if (a === b) continue;
      differing++;
      const bound = (c: number) => {
        let norm = 0;
        for (let j = 0; j < d; j++) norm += codes.data[c * d + j] ** 2;
        const r = 2 ** -11 * Math.sqrt(norm) + 2 ** -25 * Math.sqrt(d);
        return 2 * Math.sqrt(squaredDistance(queries.data, i, codes.data, c, d)) * r + r * r;
      };
      const gap = squaredDistance(queries.data, i, codes.data, b, d) - squaredDistance(queries.data, i, codes.data, a, d);
      assert.ok(gap <= bound(a) + bound(b), `${path}, query ${i}: f16 picked ${b}, f32 ${a}, f32 gap ${gap} > bound ${bound(a) + bound(b)}`);
    }
    assert.ok(differing < queries.rows / 20, `${path}: ${differing} of ${queries.rows} ids differ`);
  }
});

test('int8 prefilter: cancel mid-search throws CancelledError and the codebook stays usable', async () => {
  const codes = mixture(32, 0, 2 * PREFILTER_CHUNK_ROWS), queries = mixture(32, 1_000_000, 4000);
  const cb = new CpuCodebook(codes, { prefilter: 'always' });
  const session = await sessionPromise;
  const controller = new AbortController();
  const search = searchNearest(session, cb, queries, { signal: controller.signal });
  setImmediate(() => controller.abort()); // after the first onnxruntime run has started
  await assert.rejects(search, CancelledError);
  const few: Matrix = { rows: 50, cols: 32, data: queries.data.subarray(0, 50 * 32) };
  assertExact(codes, few, (await searchNearest(session, cb, few)).ids, 'after a cancelled search');
  cb.dispose();
});

test('non-finite values are a UserError naming where they are, on both search paths', async () => {
  const codes = randomMatrix(50, 6, 1), queries = randomMatrix(20, 6, 2);
  queries.data[13 * 6 + 4] = NaN;
  for (const prefilter of ['always', 'never'] as const) {
    const cb = new CpuCodebook(codes, { prefilter });
    await assert.rejects(searchNearest(await sessionPromise, cb, queries), (e: unknown) =>
      e instanceof UserError && /non-finite value \(NaN\) at row 13, column 4/.test(e.message));
    cb.dispose();
  }
  codes.data[17 * 6 + 2] = Infinity;
  assert.throws(() => new CpuCodebook(codes), (e: unknown) => e instanceof UserError && /code 17 of the codebook has a non-finite value/.test(e.message));
});

test('the backend switches a codebook to the int8 prefilter once it pays; ids stay exact', async () => {
  const backend = await createCpuBackend();
  try {
    // 1,024 query rows and 2^30 multiply-adds of f32 GEMM searched: 8,192 codes of d = 128
    const codes = mixture(128, 0, 8192);
    const handle = await backend.loadCodebook(codes);
    assert.ok(handle instanceof CpuCodebook);
    const first = mixture(128, 1_000_000, PREFILTER_AFTER_ROWS - 1);
    assertExact(codes, first, (await backend.nearest(handle, first)).ids, 'below the threshold', 16, true);
    assert.equal(handle.prefiltered, false);
    const second = mixture(128, 2_000_000, 100);
    assertExact(codes, second, (await backend.nearest(handle, second)).ids, 'after the threshold');
    assert.equal(handle.prefiltered, true);
    // a k-means step over as many points takes the prefilter at once
    const points = mixture(128, 3_000_000, PREFILTER_AFTER_ROWS);
    const step = await backend.kmeansStep(await backend.loadCodebook(codes), points);
    assertExact(codes, points, step.ids, 'k-means step', 16);
    // a small codebook never does: its queries would cost more in exact re-ranking than they save
    // (three searches of 1,024 rows: enough rows and work for a codebook one code larger)
    const small = await backend.loadCodebook(mixture(128, 0, PREFILTER_MIN_CODES - 1));
    for (let i = 0; i < 3; i++) await backend.nearest(small, points);
    assert.equal((small as CpuCodebook).prefiltered, false);
  } finally {
    await backend.dispose();
  }
});

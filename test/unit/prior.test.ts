// The token prior on real token data (tokens of the fixture photos), held to an independent
// reference implementation of interpolated Witten-Bell written out below with plain maps.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import type { ComputeBackend } from '../../native-gpu/backend.js';
import { buildCodebook } from '../../extension/engine/build/build.js';
import { readCodebook } from '../../extension/engine/codebook/codebook.js';
import { openEncoder } from '../../extension/engine/embed/encoders/index.js';
import { listImages } from '../../extension/engine/embed/image.js';
import { tokenizeImages } from '../../extension/engine/search/tokenize.js';
import type { TokenGrid } from '../../extension/engine/codebook/token-files.js';
import { seededRandom } from '../../extension/engine/core/sampling.js';
import {
  PRIOR_NEIGHBOURS, cellDistribution, fitPrior, inpaintGrid, readPrior, samplePriorGrid, scorePrior, variationMask, writePrior, type GridTokens,
} from '../../extension/engine/generate/prior/index.js';
import { UserError } from '../../common/errors.js';
import { pythonWithNumpy, readSafetensorsInPython } from '../helpers/python.js';

const K = 64;
let tmp: string;
let backend: ComputeBackend;
let grids: TokenGrid[];
let train: TokenGrid[];
let held: TokenGrid[];

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-prior-'));
  backend = await createCpuBackend();
  const images = path.join(__dirname, '../fixtures/images');
  const out = path.join(tmp, 'cb.safetensors');
  await buildCodebook({ images, encoder: 'dct', k: K, iterations: 8, out }, backend);
  const cb = await readCodebook(out);
  const encoder = await openEncoder('dct', backend);
  try {
    grids = (await tokenizeImages(cb, encoder, await listImages(images), backend)).results;
  } finally {
    await encoder.dispose();
  }
  train = grids.filter((_, i) => i % 3 !== 0);
  held = grids.filter((_, i) => i % 3 === 0);
});
const tokensIn = (set: TokenGrid[]) => set.reduce((n, g) => n + g.ids.length, 0);
after(async () => {
  await backend.dispose();
  await fs.rm(tmp, { recursive: true, force: true });
});

/** Interpolated Witten-Bell from its definition, contexts as strings: the reference. */
function reference(data: GridTokens[], k: number, order: number) {
  const counts = new Map<string, Map<number, number>>();
  const contextOf = (g: GridTokens, y: number, x: number, n: number) => {
    const [h, w] = g.grid;
    const parts: number[] = [];
    for (let i = 0; i < n; i++) {
      const [dy, dx] = PRIOR_NEIGHBOURS[i]!;
      const yy = y + dy, xx = x + dx;
      parts.push(yy < 0 || yy >= h || xx < 0 || xx >= w ? k : g.ids[yy * w + xx]!);
    }
    return `${n}:${parts.join(',')}`;
  };
  for (const g of data) {
    const [h, w] = g.grid;
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      for (let n = 0; n < order; n++) {
        const key = contextOf(g, y, x, n);
        const m = counts.get(key) ?? new Map<number, number>();
        m.set(g.ids[y * w + x]!, (m.get(g.ids[y * w + x]!) ?? 0) + 1);
        counts.set(key, m);
      }
    }
  }
  const prob = (g: GridTokens, y: number, x: number, code: number): number => {
    let p = 1 / k;
    for (let n = 0; n < order; n++) {
      const m = counts.get(contextOf(g, y, x, n));
      if (!m) break;
      const total = [...m.values()].reduce((a, b) => a + b, 0);
      p = ((m.get(code) ?? 0) + m.size * p) / (total + m.size);
    }
    return p;
  };
  return { prob };
}

test('held-out perplexity on real tokens is below the unigram perplexity, and equals the reference', () => {
  // The photos keep their shapes: the prior fits and scores grids of several shapes, each its own contexts.
  assert.ok(new Set(train.map((g) => g.grid.join('x'))).size > 2, 'train grids of several shapes');
  assert.ok(new Set(held.map((g) => g.grid.join('x'))).size > 1, 'held-out grids of several shapes');
  for (const order of [1, 2, 3, 4, 5]) {
    const prior = fitPrior(train, K, order, 'cb');
    const s = scorePrior(prior, held);
    const ref = reference(train, K, order);
    let nll = 0;
    for (const g of held) for (let i = 0; i < g.ids.length; i++) nll -= Math.log(ref.prob(g, Math.floor(i / g.grid[1]), i % g.grid[1], g.ids[i]!));
    assert.ok(Math.abs(s.nll - nll / s.tokens) < 1e-9, `order ${order}: ${s.nll} vs reference ${nll / s.tokens}`);
    assert.equal(s.tokens, tokensIn(held));
    assert.ok(Math.abs(s.perplexity - Math.exp(s.nll)) < 1e-9);
    if (order === 1) assert.ok(Math.abs(s.perplexity - s.unigramPerplexity) < 1e-9);
    else assert.ok(s.perplexity < s.unigramPerplexity, `order ${order}: perplexity ${s.perplexity} vs unigram ${s.unigramPerplexity}`);
  }
  // the reference is a distribution: it sums to 1 over the codes in every context, seen or not
  const ref = reference(train, K, 3);
  for (const [g, y, x] of [[held[0]!, 0, 0], [held[0]!, 5, 7], [{ grid: [2, 2], ids: [1, 2, 3, 4] }, 1, 1]] as const) {
    let sum = 0;
    for (let c = 0; c < K; c++) sum += ref.prob(g as GridTokens, y, x, c);
    assert.ok(Math.abs(sum - 1) < 1e-12, `sum ${sum}`);
  }
});

test('sampling draws from the model: its distribution equals the reference in every context, reshaped by temperature, top-k and top-p', () => {
  const prior = fitPrior(train, K, 3, 'cb');
  const ref = reference(train, K, 3);
  const g = held[1]!;
  const normalized = (v: Float64Array) => v.map((x) => x / v.reduce((a, b) => a + b, 0));
  for (const [y, x] of [[0, 0], [0, 5], [3, 0], [7, 9], [13, 13]]) {
    const p = Float64Array.from({ length: K }, (_, c) => ref.prob(g, y, x, c));
    const near = (actual: Float64Array, expected: Float64Array, what: string) => {
      for (let c = 0; c < K; c++) assert.ok(Math.abs(actual[c]! - expected[c]!) < 1e-12, `${what} at (${y}, ${x}) code ${c}: ${actual[c]} vs ${expected[c]}`);
    };
    near(cellDistribution(prior, g.ids, g.grid, y, x), p, 'temperature 1');
    near(cellDistribution(prior, g.ids, g.grid, y, x, { temperature: 0.5 }), normalized(p.map((v) => v * v)), 'temperature 0.5');
    const order = Array.from(p.keys()).sort((a, b) => p[b]! - p[a]! || a - b);
    const top5 = new Float64Array(K);
    for (const c of order.slice(0, 5)) top5[c] = p[c]!;
    near(cellDistribution(prior, g.ids, g.grid, y, x, { topK: 5 }), normalized(top5), 'top-k 5');
    // top-p 0.6: the smallest set of most probable codes whose mass reaches 0.6
    const kept = new Float64Array(K);
    let mass = 0;
    for (const c of order) {
      if (mass >= 0.6) break;
      kept[c] = p[c]!;
      mass += p[c]!;
    }
    near(cellDistribution(prior, g.ids, g.grid, y, x, { topP: 0.6 }), normalized(kept), 'top-p 0.6');
  }

  // and draws follow it: frequencies at one cell over many seeds
  const p = cellDistribution(prior, [0], [1, 1], 0, 0, { temperature: 0.7 });
  const draws = 4000;
  const seen = new Float64Array(K);
  for (let seed = 0; seed < draws; seed++) seen[samplePriorGrid(prior, [1, 1], { seed, temperature: 0.7 })[0]!]++;
  for (let c = 0; c < K; c++) {
    const sd = Math.sqrt(draws * p[c]! * (1 - p[c]!));
    assert.ok(Math.abs(seen[c]! - draws * p[c]!) <= 5 * sd + 2, `code ${c}: ${seen[c]} draws, expected ${draws * p[c]!}`);
  }

  const grid = samplePriorGrid(prior, [9, 11], { seed: 3, topK: 1 });
  const sampled: GridTokens = { grid: [9, 11], ids: grid };
  for (let i = 0; i < grid.length; i++) {
    const y = Math.floor(i / 11), x = i % 11;
    const best = Math.max(...Array.from({ length: K }, (_, c) => ref.prob(sampled, y, x, c)));
    assert.ok(Math.abs(ref.prob(sampled, y, x, grid[i]!) - best) < 1e-15, `cell ${i}`);
  }
  assert.deepEqual(samplePriorGrid(prior, [9, 11], { seed: 4, topP: 1e-9 }), grid, 'top-p that keeps one code is the argmax too');
});

test('the same seed gives the same grid; grids of any size; unmasked cells are never touched by inpainting or variations', () => {
  const prior = fitPrior(train, K, 3, 'cb');
  const a = samplePriorGrid(prior, [14, 14], { seed: 7, temperature: 0.9, topK: 20, topP: 0.95 });
  assert.deepEqual(samplePriorGrid(prior, [14, 14], { seed: 7, temperature: 0.9, topK: 20, topP: 0.95 }), a);
  assert.notDeepEqual(samplePriorGrid(prior, [14, 14], { seed: 8, temperature: 0.9, topK: 20, topP: 0.95 }), a);
  for (const size of [[1, 1], [3, 40], [40, 3]] as [number, number][]) {
    const g = samplePriorGrid(prior, size, { seed: 1 });
    assert.equal(g.length, size[0] * size[1]);
    assert.ok(g.every((id) => id >= 0 && id < K));
  }

  const source = held[0]!;
  const mask = new Uint8Array(196);
  for (let y = 4; y < 9; y++) mask.fill(1, y * 14 + 3, y * 14 + 10);
  for (const seed of [1, 2, 3]) {
    const edited = inpaintGrid(prior, source.ids, source.grid, mask, { seed });
    for (let i = 0; i < 196; i++) if (!mask[i]) assert.equal(edited[i], source.ids[i], `cell ${i}`);
    assert.deepEqual(inpaintGrid(prior, source.ids, source.grid, mask, { seed }), edited);
  }
  const changed = (m: Uint8Array, seed: number) => {
    const edited = inpaintGrid(prior, source.ids, source.grid, m, { seed });
    for (let i = 0; i < 196; i++) if (!m[i]) assert.equal(edited[i], source.ids[i]);
    return edited.filter((v, i) => v !== source.ids[i]).length;
  };
  assert.ok(changed(mask, 5) > 0, 'the masked region is drawn again');
  const variations = variationMask(196, 0.25, 11);
  assert.equal(variations.reduce((s, v) => s + v, 0), 49);
  assert.deepEqual(variationMask(196, 0.25, 11), variations);
  assert.notDeepEqual(variationMask(196, 0.25, 12), variations);
  changed(variations, 6);
});

test('a prior file round-trips, is a safetensors file NumPy reads as documented, and bad files say what is wrong', async () => {
  const prior = fitPrior(train, K, 3, 'cbfingerprint');
  const file = path.join(tmp, 'prior.safetensors');
  await writePrior(file, prior);
  const back = await readPrior(file);
  assert.deepEqual(scorePrior(back, held), scorePrior(prior, held));
  assert.deepEqual(samplePriorGrid(back, [6, 6], { seed: 2 }), samplePriorGrid(prior, [6, 6], { seed: 2 }));
  assert.equal(back.codebook, 'cbfingerprint');
  assert.deepEqual(back.grid, [14, 21]); // the most common grid of the training photos (3:2, short side 224)
  const python = pythonWithNumpy();
  if (python) {
    const [{ dump }] = readSafetensorsInPython(python, file);
    assert.equal(dump.meta.format, 'unicode2-token-prior');
    assert.equal(dump.meta.smoothing, 'interpolated Witten-Bell');
    assert.deepEqual(JSON.parse(dump.meta.neighbours!), ['left', 'up']);
    assert.deepEqual(dump.tensors.unigram![0], 'I64');
    assert.equal(dump.tensors.unigram![2].reduce((a, b) => a + b, 0), tokensIn(train));
    for (const n of [1, 2]) {
      const [, [contexts]] = dump.tensors[`context${n}.parent`]!;
      assert.deepEqual(dump.tensors[`context${n}.start`]![1], [contexts! + 1]);
      assert.equal(dump.tensors[`context${n}.count`]![2].reduce((a, b) => a + b, 0), tokensIn(train));
    }
  }
  const notPrior = path.join(tmp, 'cb.safetensors');
  await assert.rejects(readPrior(notPrior), (e) => e instanceof UserError && /not a UniCode² token prior/.test(e.message));
  assert.throws(() => fitPrior(train, K, 6), /prior order 6 is not supported: expected 1 \(unigram\) to 5/);
  assert.throws(() => fitPrior([{ grid: [1, 2], ids: [0, 70] }], K, 2), /token id 70 is outside the codebook's range 0\.\.63/);
  assert.throws(() => scorePrior(prior, [{ grid: [1, 1], ids: [64] }]), /token id 64 is outside the prior's codebook range/);
  assert.throws(() => samplePriorGrid(prior, [2, 2], { seed: 0, temperature: -1 }), /temperature must be a positive number/);
  assert.throws(() => samplePriorGrid(prior, [2, 2], { seed: 0, topP: 0 }), /top-p must be in \(0, 1\]/);
  assert.throws(() => inpaintGrid(prior, [1, 2, 3], [2, 2], new Uint8Array(4), { seed: 0 }), /a 2x2 grid needs 4 ids and mask cells, got 3 and 4/);
});

test('K = 500,000: the prior stays sparse, fits, samples and scores', async () => {
  const k = 500_000;
  const random = seededRandom(99);
  // Zipf-like ids with spatial runs, as real token grids have
  const data: GridTokens[] = Array.from({ length: 2000 }, () => {
    const ids = new Int32Array(196);
    for (let i = 0; i < 196; i++) ids[i] = i % 14 > 0 && random() < 0.5 ? ids[i - 1]! : Math.floor(k * random() ** 3);
    return { grid: [14, 14] as [number, number], ids };
  });
  const prior = fitPrior(data, k, 3);
  const contexts = prior.levels.reduce((s, l) => s + l.keys.length, 0);
  assert.ok(contexts <= 2 * 2000 * 196, `${contexts} contexts`);
  const file = path.join(tmp, 'big.safetensors');
  await writePrior(file, prior);
  assert.ok((await fs.stat(file)).size < 64 * 2000 * 196 + 8 * k + 4096, 'the file grows with the tokens, not with K squared');
  const back = await readPrior(file);
  const grid = samplePriorGrid(back, [14, 14], { seed: 1 });
  assert.ok(grid.every((id) => id >= 0 && id < k));
  const s = scorePrior(back, data.slice(0, 50));
  assert.ok(s.perplexity < s.unigramPerplexity);
});

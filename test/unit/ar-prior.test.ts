// The autoregressive prior (engine/generate/ar/) on a tiny causal transformer the test builds in
// the decoder-with-past layout (test/helpers/ar-model.ts), run by onnxruntime: greedy grids with
// and without guidance equal a NumPy recomputation, the KV-cached run equals the uncached one,
// seeded sampling repeats, inpainting keeps what it must, wrong layouts are refused in one line.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UserError } from '../../common/errors.js';
import {
  checkArMatchesCodebook, inpaintArGrid, openArModel, parseSidecar, readArFolder, sampleArGrid, scoreArGrids, type ArModel,
} from '../../extension/engine/generate/ar/index.js';
import { AR_REFERENCE, writeArFolder, writeWeights, type ArModelSpec } from '../helpers/ar-model.js';
import { pythonWithNumpy, runPythonJson } from '../helpers/python.js';

const SPEC: ArModelSpec = { vocab: 32, hidden: 16, heads: 2, layers: 2, maxPositions: 64, seed: 5 };
const OFFSET = 2;
const K = 24;
const SIDECAR = {
  image_token_offset: OFFSET,
  num_image_tokens: K,
  grid: [4, 5],
  codebook: 'feedfacecafebeef',
  condition: { type: 'class', token_offset: 26, num_classes: 4, null_token: 30 },
  class_names: ['cat', 'dog', 'ship', 'tree'],
};

let dir: string;
let cached: ArModel;
let uncached: ArModel;
const warnings: string[] = [];

async function open(name: string, spec: Partial<ArModelSpec>, sidecar: Record<string, unknown> = SIDECAR): Promise<ArModel> {
  const folder = path.join(dir, name);
  await writeArFolder(folder, { ...SPEC, ...spec }, sidecar);
  return openArModel(await readArFolder(folder), { device: 'cpu', onWarning: (m) => warnings.push(m) });
}

/** One-line UserError whose message matches. */
function refused(pattern: RegExp): (e: unknown) => boolean {
  return (e) => e instanceof UserError && pattern.test(e.message) && !e.message.includes('\n');
}

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-ar-'));
  cached = await open('cached', {});
  uncached = await open('uncached', { cache: false });
});
after(async () => {
  await cached.session.release();
  await uncached.session.release();
  await fs.rm(dir, { recursive: true, force: true });
});

test('the layout is read from the model: layers, heads, head size, cache, position ids', () => {
  assert.deepEqual(
    { ...cached.layout },
    { layers: 2, heads: 2, headDim: 8, cache: true, pastType: 'float32', positionIds: true, useCacheBranch: false, vocab: 32, maxPositions: 64 },
  );
  assert.equal(uncached.layout.cache, false);
  assert.ok(warnings.some((w) => /takes no past_key_values.*slower/.test(w)), warnings.join('\n'));
});

test('greedy grids with and without guidance equal the NumPy reference exactly', async (t) => {
  const python = pythonWithNumpy();
  if (!python) return t.skip('python3 with NumPy not installed');
  const weights = path.join(dir, 'weights');
  const built = await writeArFolder(path.join(dir, 'ref'), SPEC, SIDECAR);
  await writeWeights(weights, built.weights);
  for (const [classId, guidance] of [[2, 1], [1, 3.5], [3, 0]] as const) {
    const ids = await sampleArGrid(cached, [4, 5], { seed: 0, topK: 1, classId, guidance });
    const rows = guidance === 1 ? [[26 + classId]] : [[26 + classId], [30]];
    const ref: { ids: number[]; gap: number } = runPythonJson<{ ids: number[]; gap: number }>(python, AR_REFERENCE, [weights, JSON.stringify({ heads: 2, layers: 2, offset: OFFSET, k: K, cells: 20, guidance, rows })]);
    assert.ok(ref.gap > 1e-4, `top-1 / top-2 margin ${ref.gap} too small for an exact comparison`);
    assert.deepEqual(Array.from(ids), ref.ids, `class ${classId}, guidance ${guidance}`);
  }
});

test('the KV-cached run equals the uncached run: greedy, sampled and scored', async () => {
  for (const opts of [{ seed: 0, topK: 1, classId: 0 }, { seed: 7, classId: 1, guidance: 2 }, { seed: 8, temperature: 0.7, topP: 0.9 }]) {
    assert.deepEqual(Array.from(await sampleArGrid(cached, [4, 5], opts)), Array.from(await sampleArGrid(uncached, [4, 5], opts)), JSON.stringify(opts));
  }
  const grids = [{ ids: Array.from({ length: 20 }, (_, i) => (i * 7) % K) }, { ids: Array.from({ length: 6 }, (_, i) => (i * 5 + 3) % K) }];
  const a = await scoreArGrids(cached, grids);
  const b = await scoreArGrids(uncached, grids);
  assert.equal(a.tokens, 26);
  assert.ok(Math.abs(a.nll - b.nll) < 1e-5, `${a.nll} vs ${b.nll}`);
  assert.ok(a.perplexity > 1 && Number.isFinite(a.perplexity), String(a.perplexity));
});

test('past 256 known tokens (fed in chunks with a cache): scoring and inpainting still equal the uncached run', async () => {
  const long = await open('long', { maxPositions: 400 });
  const longPlain = await open('long-uncached', { maxPositions: 400, cache: false });
  try {
    const grid: [number, number] = [15, 20];
    const ids = Array.from({ length: 300 }, (_, i) => (i * 11 + (i >> 3)) % K);
    const [a, b] = [await scoreArGrids(long, [{ ids }]), await scoreArGrids(longPlain, [{ ids }])];
    assert.equal(a.tokens, 300);
    assert.ok(Math.abs(a.nll - b.nll) < 1e-5, `${a.nll} vs ${b.nll}`);
    const mask = new Uint8Array(300);
    mask.fill(1, 290, 295);
    const opts = { seed: 1, classId: 2, guidance: 2, topK: 1 };
    const x = await inpaintArGrid(long, ids, grid, mask, opts);
    assert.deepEqual(x, await inpaintArGrid(longPlain, ids, grid, mask, opts));
    assert.notDeepEqual(Array.from(x.subarray(290, 295)), ids.slice(290, 295));
  } finally {
    await long.session.release();
    await longPlain.session.release();
  }
});

test('a merged-decoder layout: decoder_model_merged.onnx, f16 cache, use_cache_branch, no position_ids', async () => {
  const spec = { ...SPEC, positionIds: false };
  const merged = path.join(dir, 'merged');
  await writeArFolder(merged, { ...spec, halfCache: true, useCacheBranch: true }, SIDECAR, 'decoder_model_merged.onnx');
  const half = await openArModel(await readArFolder(merged), { device: 'cpu' });
  const full = await open('no-positions', spec);
  const plain = await open('no-positions-uncached', { ...spec, cache: false });
  try {
    assert.deepEqual([half.layout.pastType, half.layout.useCacheBranch, half.layout.positionIds], ['float16', true, false]);
    const greedy = { seed: 0, topK: 1, classId: 3 };
    assert.deepEqual(await sampleArGrid(full, [4, 5], greedy), await sampleArGrid(plain, [4, 5], greedy));
    const grids = [{ ids: Array.from(await sampleArGrid(full, [4, 5], { seed: 6, classId: 0 })) }];
    // the f16 cache rounds keys and values: the same model within f16 precision
    const [a, b] = [await scoreArGrids(half, grids), await scoreArGrids(full, grids)];
    assert.ok(Math.abs(a.nll - b.nll) < 0.02 * Math.max(1, b.nll), `${a.nll} vs ${b.nll}`);
    const opts = { seed: 2, classId: 1, guidance: 2 };
    assert.deepEqual(await sampleArGrid(half, [4, 5], opts), await sampleArGrid(half, [4, 5], opts));
  } finally {
    await Promise.all([half, full, plain].map((m) => m.session.release()));
  }
});

test('on the webgpu backend: onnxruntime\'s WebGPU provider, or the CPU with one warning when it cannot start; the same greedy grid', async () => {
  const seen: string[] = [];
  const gpu = await openArModel(await readArFolder(path.join(dir, 'cached')), { device: 'webgpu', onWarning: (m) => seen.push(m) });
  try {
    const greedy = { seed: 0, topK: 1, classId: 1, guidance: 2 };
    assert.deepEqual(await sampleArGrid(gpu, [4, 5], greedy), await sampleArGrid(cached, [4, 5], greedy));
    if (gpu.session.device.startsWith('cpu')) assert.ok(seen.length === 1 && /WebGPU provider could not run .*model\.onnx.*; it runs on the CPU/.test(seen[0]!), seen.join('\n'));
    else assert.match(gpu.session.device, /^webgpu/);
  } finally {
    await gpu.session.release();
  }
});

test('the logits depend on the whole cache: changing the first cell changes a late one', async () => {
  const base = await sampleArGrid(cached, [4, 5], { seed: 0, topK: 1, classId: 0 });
  const mask = new Uint8Array(20);
  mask[19] = 1;
  const seen = new Set<number>();
  for (let first = 0; first < K; first += 3) {
    const ids = Array.from(base);
    ids[0] = first;
    seen.add((await inpaintArGrid(cached, ids, [4, 5], mask, { seed: 0, topK: 1, classId: 0 }))[19]!);
  }
  assert.ok(seen.size > 1, 'the last cell never changed with the first');
});

test('seeded sampling repeats; another seed draws another grid', async () => {
  const opts = { seed: 11, temperature: 1.5, classId: 2, guidance: 1.5 };
  const a = await sampleArGrid(cached, [4, 5], opts);
  assert.deepEqual(a, await sampleArGrid(cached, [4, 5], opts));
  assert.notDeepEqual(a, await sampleArGrid(cached, [4, 5], { ...opts, seed: 12 }));
  const topK = await sampleArGrid(cached, [3, 3], { seed: 3, topK: 2, temperature: 5 });
  assert.ok(topK.every((c) => c >= 0 && c < K));
});

test('inpainting keeps the cells outside the mask and redraws greedily what greedy drew', async () => {
  const greedy = await sampleArGrid(cached, [4, 5], { seed: 0, topK: 1, classId: 1 });
  const mask = new Uint8Array(20);
  for (const i of [6, 7, 11, 12]) mask[i] = 1;
  const source = Array.from(greedy, (c, i) => (mask[i] ? (c + 1) % K : c));
  assert.deepEqual(await inpaintArGrid(cached, source, [4, 5], mask, { seed: 0, topK: 1, classId: 1 }), greedy);
  const sampled = await inpaintArGrid(cached, source, [4, 5], mask, { seed: 4, temperature: 2, classId: 1 });
  sampled.forEach((c, i) => { if (!mask[i]) assert.equal(c, source[i]); });
  await assert.rejects(inpaintArGrid(cached, [...source.slice(0, 19), K], [4, 5], mask, { seed: 0 }), refused(/token id 24 is outside the model's image tokens 0\.\.23/));
});

test('wrong layouts are refused in one line', async () => {
  await assert.rejects(open('no-present', { noPresent: true }), refused(/output 'present\.0\.key' missing/));
  await assert.rejects(open('small-vocab', {}, { ...SIDECAR, num_image_tokens: 40, condition: { type: 'none' }, prefix: [0], class_names: undefined }), refused(/vocabulary of 32 is smaller than the image tokens 2\.\.41/));
  const f = await readArFolder(path.join(dir, 'cached'));
  assert.throws(() => checkArMatchesCodebook(f, { k: 32, fingerprint: 'feedfacecafebeef' }, 'cb.safetensors'), refused(/says 24 image tokens, but codebook cb\.safetensors has K = 32/));
  assert.throws(() => checkArMatchesCodebook(f, { k: 24, fingerprint: '0123456789abcdef' }, 'cb.safetensors'), refused(/trained on codebook feedfacecafebeef, not on cb\.safetensors/));
  checkArMatchesCodebook(f, { k: 24, fingerprint: 'feedfacecafebeef' }, 'cb.safetensors');
  await fs.mkdir(path.join(dir, 'empty'));
  await assert.rejects(readArFolder(path.join(dir, 'empty')), refused(/not an autoregressive prior folder: onnx\/model\.onnx or .* missing/));
});

test('non-finite logits are an error naming the model and the step, never a token', async () => {
  const poisoned = await open('poisoned', { lmScale: Number.NaN });
  try {
    await assert.rejects(sampleArGrid(poisoned, [2, 2], { seed: 0, classId: 0 }), refused(/onnx\/model\.onnx: the logits at cell 0 hold NaN/));
  } finally {
    await poisoned.session.release();
  }
});

test('a grid longer than the model positions allow is refused before the first step', async () => {
  let drawn = 0;
  await assert.rejects(sampleArGrid(cached, [70, 1], { seed: 0, onToken: () => drawn++ }), refused(/sequence of 70 tokens exceeds the model's max_position_embeddings \(64\)/));
  assert.equal(drawn, 0);
});

test('the sidecar: hostile numbers and overlapping ranges refused before anything is sized by them', () => {
  const f = 'unicode2.json';
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ ...SIDECAR, num_image_tokens: 1e12 }, /"num_image_tokens" must be a whole number in 1\.\.\d+/],
    [{ ...SIDECAR, image_token_offset: -1 }, /"image_token_offset" must be a whole number/],
    [{ ...SIDECAR, grid: [100000, 1] }, /exceeds the limit of 128 x 128/],
    [{ ...SIDECAR, condition: { type: 'class', token_offset: 20, num_classes: 4, null_token: 30 } }, /must not overlap/],
    [{ ...SIDECAR, condition: { type: 'class', token_offset: 26, num_classes: 4, null_token: 27 } }, /must not overlap/],
    [{ ...SIDECAR, condition: { type: 'class', token_offset: 26, num_classes: 1e9, null_token: 1 } }, /"num_classes" must be a whole number/],
    [{ ...SIDECAR, condition: { type: 'none' } }, /needs "prefix"/],
    [{ ...SIDECAR, prefix: new Array(5000).fill(0) }, /"prefix" must be a list of at most 1024/],
    [{ ...SIDECAR, class_names: ['a', 'b', 'c', 'd', 'e'] }, /"class_names" must be a list of at most "num_classes" \(4\)/],
  ];
  for (const [doc, pattern] of bad) assert.throws(() => parseSidecar(doc, f), refused(pattern), JSON.stringify(doc).slice(0, 120));
  assert.equal(parseSidecar(SIDECAR, f).classNames?.[1], 'dog');
});

test('guidance and classes are checked against the condition', async () => {
  await assert.rejects(sampleArGrid(cached, [2, 2], { seed: 0, guidance: 3 }), refused(/guidance needs a class/));
  await assert.rejects(sampleArGrid(cached, [2, 2], { seed: 0, classId: 4 }), refused(/class 4 is outside the model's classes 0\.\.3/));
  await assert.rejects(sampleArGrid(cached, [2, 2], { seed: 0, classId: 0, guidance: Number.NaN }), refused(/guidance must be a number/));
  await assert.rejects(sampleArGrid(cached, [2, 2], { seed: 0, temperature: 0 }), refused(/temperature must be a positive number/));
});

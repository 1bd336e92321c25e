// The Generation panel's AR prior code (extension/panels/generation-ar.ts, what the panel host runs)
// on a tiny causal model the test builds (test/helpers/ar-model.ts), run by onnxruntime: the folder
// as the prior list shows it, the codebook check, one session per folder until the device changes,
// a sample and an edit reported token by token in raster order, and Cancel between tokens.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CancelledError, UserError } from '../../common/errors.js';
import { sampleArGrid } from '../../extension/engine/index.js';
import { ArPriors, drawArGrid, type ArRun } from '../../extension/panels/generation-ar.js';
import { writeArFolder } from '../helpers/ar-model.js';

const SIDECAR = {
  image_token_offset: 2, num_image_tokens: 24, grid: [4, 5], codebook: 'feedfacecafebeef',
  condition: { type: 'class', token_offset: 26, num_classes: 4, null_token: 30 }, class_names: ['cat', 'dog'],
};
const CODEBOOK = { k: 24, fingerprint: 'feedfacecafebeef', name: 'codebook.safetensors' };
const SAMPLING = { seed: 4, temperature: 1, topK: 0, topP: 1 };

let dir: string;
let folder: string;
let uncond: string;
const priors = new ArPriors(async () => 'cpu', () => undefined);

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-gen-ar-'));
  folder = path.join(dir, 'llamagen-tiny');
  await writeArFolder(folder, { vocab: 32, hidden: 16, heads: 2, layers: 2, seed: 9 }, SIDECAR);
  uncond = path.join(dir, 'uncond');
  await writeArFolder(uncond, { vocab: 32, hidden: 16, heads: 2, layers: 1, seed: 2 }, { image_token_offset: 0, num_image_tokens: 24, grid: [3, 3], prefix: [31] });
});
after(async () => {
  priors.close();
  await fs.rm(dir, { recursive: true, force: true });
});

function run(extra: Partial<ArRun> = {}): ArRun {
  return { grid: [4, 5], edit: null, sampling: SAMPLING, classId: 1, guidance: 2.5, signal: new AbortController().signal, ...extra };
}

test('a folder as the prior list shows it: K, grid, classes with their names', async () => {
  assert.deepEqual(await priors.add(folder), {
    id: `ar:${folder}`, label: 'llamagen-tiny · autoregressive, 4 classes', k: 24, grid: [4, 5], kind: 'ar', classes: { count: 4, names: ['cat', 'dog'] },
  });
  const info = await priors.add(uncond);
  assert.equal(info.label, 'uncond · autoregressive, unconditional');
  assert.equal(info.classes, undefined);
});

test('the codebook must be the one the model was trained on: refused by name otherwise', async () => {
  await priors.add(folder);
  priors.check(folder, CODEBOOK);
  assert.throws(() => priors.check(folder, { ...CODEBOOK, k: 256 }), (e) => e instanceof UserError && /24 image tokens, but codebook codebook\.safetensors has K = 256/.test(e.message));
  assert.throws(() => priors.check(folder, { ...CODEBOOK, fingerprint: '0123' }), (e) => e instanceof UserError && /trained on codebook feedfacecafebeef, not on codebook\.safetensors \(0123\)/.test(e.message));
  assert.throws(() => priors.check(path.join(dir, 'never-opened'), CODEBOOK), (e) => e instanceof UserError && /is not open: open its folder again/.test(e.message));
});

test('a wrong layout is refused in one line when the folder is chosen, and the folder is not listed', async () => {
  const broken = path.join(dir, 'no-present');
  await writeArFolder(broken, { vocab: 32, hidden: 16, heads: 2, layers: 1, noPresent: true }, SIDECAR);
  await assert.rejects(priors.add(broken), (e) => e instanceof UserError && /output 'present\.0\.key' missing/.test(e.message) && !e.message.includes('\n'));
  assert.throws(() => priors.check(broken, CODEBOOK), /is not open/);
  const small = path.join(dir, 'small-vocab');
  await writeArFolder(small, { vocab: 20, hidden: 16, heads: 2, layers: 1 }, SIDECAR);
  await assert.rejects(priors.add(small), (e) => e instanceof UserError && /a vocabulary of 20 is smaller than the image tokens 2\.\.25/.test(e.message));
});

test('one session per folder, opened again after the device changes', async () => {
  await priors.add(folder);
  const first = priors.model(folder);
  assert.equal(priors.model(folder), first, 'kept between runs');
  priors.close();
  const second = priors.model(folder);
  assert.notEqual(second, first);
  assert.deepEqual(Array.from(await drawArGrid(await second, run())), Array.from(await sampleArGrid(await second, [4, 5], { ...SAMPLING, classId: 1, guidance: 2.5 })));
});

test('a sample reports every cell in raster order; the grid is the engine’s for those settings', async () => {
  await priors.add(folder);
  const model = await priors.model(folder);
  const started: { ids: number[]; cells: number[] }[] = [];
  const seen: number[][] = [];
  const ids = await drawArGrid(model, run({ onStart: (i, cells) => started.push({ ids: Array.from(i), cells }), onToken: (...t) => seen.push(t) }));
  assert.deepEqual(started, [{ ids: new Array(20).fill(0), cells: Array.from({ length: 20 }, (_, i) => i) }]);
  assert.deepEqual(seen, Array.from(ids, (code, cell) => [cell, code, cell + 1, 20]));
  assert.deepEqual(Array.from(ids), Array.from(await sampleArGrid(model, [4, 5], { ...SAMPLING, classId: 1, guidance: 2.5 })));
});

test('an edit redraws only the masked cells, reported in raster order', async () => {
  await priors.add(folder);
  const model = await priors.model(folder);
  const source = Array.from({ length: 20 }, (_, i) => (i * 7) % 24);
  const mask = new Uint8Array(20);
  for (const i of [13, 3, 9]) mask[i] = 1;
  const seen: number[] = [];
  let start: number[] = [];
  const ids = await drawArGrid(model, run({ edit: { ids: source, mask }, onStart: (i) => (start = Array.from(i)), onToken: (cell, _code, done, total) => seen.push(cell, done, total) }));
  assert.deepEqual(start, source);
  assert.deepEqual(seen, [3, 1, 3, 9, 2, 3, 13, 3, 3]);
  source.forEach((id, i) => mask[i] || assert.equal(ids[i], id, `kept cell ${i}`));
});

test('Cancel stops between tokens: no token after it, CancelledError', async () => {
  await priors.add(folder);
  const model = await priors.model(folder);
  const abort = new AbortController();
  const seen: number[] = [];
  const drawing = drawArGrid(model, run({ signal: abort.signal, onToken: (cell) => (seen.push(cell), cell === 6 && abort.abort()) }));
  await assert.rejects(drawing, CancelledError);
  assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6]);
});

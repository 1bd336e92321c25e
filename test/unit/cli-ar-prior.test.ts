// `--prior DIR` (an autoregressive model folder) in `unicode2 generate`, `prior sample` and
// `prior eval`, run as a user would: a codebook built from the fixture photos, a tiny causal model
// written for its K (test/helpers/ar-model.ts), the JSON printed, reproducibility, bad input.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readCodebook } from '../../extension/engine/codebook/codebook.js';
import { cliRunner } from '../helpers/cli.js';
import { writeArFolder, type ArModelSpec } from '../helpers/ar-model.js';

const ROOT = path.join(__dirname, '../..');
const IMAGES = path.join(ROOT, 'test/fixtures/images');
const K = 32;
let dir: string;
let codebook: string;
let tokens: string;
let model: string;
let ngram: string;
const { cliJson, assertUserError } = cliRunner(() => dir);

const SPEC: ArModelSpec = { vocab: 40, hidden: 16, heads: 2, layers: 2, maxPositions: 512, seed: 9 };
const sidecar = (fingerprint: string, k = K) => ({
  image_token_offset: 2,
  num_image_tokens: k,
  grid: [4, 5],
  codebook: fingerprint,
  condition: { type: 'class', token_offset: 34, num_classes: 4, null_token: 38 },
  class_names: ['cat', 'dog', 'ship', 'tree'],
});

before(async () => {
  execFileSync(process.execPath, ['scripts/build.mjs', '--quiet'], { cwd: ROOT, stdio: 'inherit' });
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-cli-ar-'));
  codebook = path.join(dir, 'cb.safetensors');
  tokens = path.join(dir, 'tokens.npy');
  await cliJson(['build', '--images', IMAGES, '--k', String(K), '--iters', '3', '--out', codebook]);
  await cliJson(['tokenize', '--codebook', codebook, IMAGES, '--out', tokens]);
  model = path.join(dir, 'ar');
  await writeArFolder(model, SPEC, sidecar((await readCodebook(codebook)).fingerprint));
  ngram = path.join(dir, 'prior.safetensors');
  await cliJson(['prior', 'fit', '--tokens', tokens, '--codebook', codebook, '--out', ngram, '--order', '2']);
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

test('generate --prior DIR: class by name, guidance, greedy; byte-identical reruns', async () => {
  const args = ['generate', '--codebook', codebook, '--prior', model, '--class', 'dog', '--prior-guidance', '2.5', '--seed', '4', '--temperature', '0.9', '--top-p', '0.95'];
  const a = await cliJson([...args, '--out', path.join(dir, 'a.png')]);
  assert.deepEqual(a.grid, [4, 5]);
  assert.equal(a.ids.length, 20);
  assert.ok(a.ids.every((c: number) => Number.isInteger(c) && c >= 0 && c < K));
  const b = await cliJson([...args, '--out', path.join(dir, 'b.png')]);
  assert.deepEqual(b.ids, a.ids);
  assert.deepEqual(await fs.readFile(path.join(dir, 'a.png')), await fs.readFile(path.join(dir, 'b.png')));
  const greedy = await cliJson(['generate', '--codebook', codebook, '--prior', model, '--class', '1', '--top-k', '1', '--grid', '3x3', '--out', path.join(dir, 'g.png')]);
  assert.deepEqual(greedy.grid, [3, 3]);
});

test('prior sample --prior DIR draws a grid and redraws a region, keeping the rest', async () => {
  const out = path.join(dir, 's.json');
  const s = await cliJson(['prior', 'sample', '--prior', model, '--class', 'ship', '--seed', '2', '--out', out]);
  assert.deepEqual(s.grid, [4, 5]);
  const edited = await cliJson(['prior', 'sample', '--prior', model, '--tokens', out, '--region', '1,1,3,3', '--temperature', '3', '--seed', '5', '--out', path.join(dir, 'e.json')]);
  assert.equal(edited.redrawn, 4);
  edited.ids.forEach((c: number, i: number) => {
    const [y, x] = [Math.floor(i / 5), i % 5];
    if (!(y >= 1 && y < 3 && x >= 1 && x < 3)) assert.equal(c, s.ids[i], `cell ${i}`);
  });
});

test('prior eval --prior DIR: the model beside the n-gram (fitted in-sample, or given) and the unigram', async () => {
  const e = await cliJson(['prior', 'eval', '--prior', model, '--tokens', tokens]);
  assert.deepEqual(Object.keys(e).sort(), ['device', 'model', 'ngram', 'nll', 'perplexity', 'tokens', 'unigramPerplexity']);
  assert.match(e.ngram.source, /in-sample/);
  assert.ok(e.perplexity > 1 && e.ngram.perplexity > 1 && e.unigramPerplexity > 1);
  const given = await cliJson(['prior', 'eval', '--prior', model, '--tokens', tokens, '--ngram', ngram]);
  assert.equal(given.ngram.source, ngram);
  assert.equal(given.ngram.order, 2);
  assert.equal(given.perplexity, e.perplexity);
});

test('bad input: a codebook of another K, AR options with an n-gram file, an unknown class', async () => {
  const other = path.join(dir, 'ar24');
  await writeArFolder(other, { ...SPEC, vocab: 40 }, sidecar('', 24));
  const out = path.join(dir, 'x.png');
  await assertUserError(['generate', '--codebook', codebook, '--prior', other, '--out', out], /says 24 image tokens, but codebook .*cb\.safetensors has K = 32/);
  await assertUserError(['generate', '--codebook', codebook, '--prior', ngram, '--class', '1', '--out', out], /--class is for an autoregressive prior folder/);
  await assertUserError(['generate', '--codebook', codebook, '--prior', model, '--class', 'zebra', '--out', out], /class 'zebra' is neither a class number nor one of the model's class_names/);
  await assertUserError(['prior', 'eval', '--prior', ngram, '--tokens', tokens, '--ngram', ngram], /--ngram is for an autoregressive prior folder/);
});

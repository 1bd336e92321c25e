// Codebooks side by side: the name a build is offered, the names refused (an existing codebook, a
// build still writing one, a path), the next free name of a re-run, and the workspace's list — on
// real files in a temporary folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  codebookLabel, codebookLabels, codebookName, codebooksDir, encoderTag, isHeldOut, listCodebookFiles, madeFile, nameProblem, newCodebookFile, suggestedName, tokensFile, uniqueName,
} from '../../extension/state/codebook-names.js';
import { UserError } from '../../extension/engine/index.js';

async function withDataDir(fn: (dataDir: string, dir: string) => Promise<void>): Promise<void> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'unicode2-names-'));
  try {
    const dir = codebooksDir(dataDir);
    await mkdir(dir, { recursive: true });
    await fn(dataDir, dir);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

test('the offered name says K, the encoder and a method chosen by hand', () => {
  assert.equal(suggestedName({ k: 1024, encoder: 'dct', method: 'auto' }), 'k1024-dct');
  assert.equal(suggestedName({ k: 64, encoder: 'dct:256:square', method: 'two-level' }), 'k64-dct-two-level');
  assert.equal(suggestedName({ k: 16, encoder: '/work/models/tiny-siglip/', method: 'flat' }), 'k16-tiny-siglip-flat');
  assert.equal(encoderTag('google/siglip-base-patch16-224'), 'siglip-base-patch16-224');
  assert.equal(encoderTag('C:\\models\\Vision Tower.onnx'), 'vision-tower');
  assert.equal(codebookName('/w/.unicode2/codebooks/k64-dct.safetensors'), 'k64-dct');
});

test('a name never points at an existing codebook nor at one a build is writing; a re-run gets the next free name', async () => {
  await withDataDir(async (_dataDir, dir) => {
    assert.equal(nameProblem(dir, 'k64-dct'), null);
    assert.equal(newCodebookFile(dir, ' k64-dct '), path.join(dir, 'k64-dct.safetensors'));
    await writeFile(path.join(dir, 'k64-dct.safetensors'), 'x');
    assert.match(nameProblem(dir, 'k64-dct')!, /k64-dct already exists: a build never replaces a codebook/);
    assert.match(nameProblem(dir, 'k64-dct.safetensors')!, /already exists/, 'the extension typed along is the same file');
    assert.throws(() => newCodebookFile(dir, 'k64-dct'), (err: unknown) => err instanceof UserError && /cannot name a codebook "k64-dct"/.test(err.message));
    assert.equal(uniqueName(dir, 'k64-dct'), 'k64-dct-2');
    await writeFile(path.join(dir, 'k64-dct-2.safetensors.lock'), '123');
    assert.match(nameProblem(dir, 'k64-dct-2')!, /a build into k64-dct-2 is running/);
    assert.equal(uniqueName(dir, 'k64-dct'), 'k64-dct-3');
    for (const bad of ['', '../k64', 'a/b', 'my codebook', '-k64']) assert.ok(nameProblem(dir, bad), `"${bad}" is refused`);
  });
});

test("the workspace's codebooks: every .safetensors of .unicode2/codebooks by name (numbers in order), then the legacy codebook.safetensors", async () => {
  await withDataDir(async (dataDir, dir) => {
    assert.deepEqual(await listCodebookFiles(dataDir), []);
    for (const name of ['k64-dct-10', 'k64-dct-2', 'k64-dct', 'k16-onnx']) await writeFile(path.join(dir, `${name}.safetensors`), 'x');
    await writeFile(path.join(dir, 'k16-onnx.safetensors.lock'), '1');
    await writeFile(path.join(dataDir, 'codebook.safetensors'), 'x');
    assert.deepEqual(await listCodebookFiles(dataDir), [
      ...['k16-onnx', 'k64-dct', 'k64-dct-2', 'k64-dct-10'].map((name) => path.join(dir, `${name}.safetensors`)), path.join(dataDir, 'codebook.safetensors'),
    ]);
  });
});

test("a token set's file carries its codebook's name: the same image tokenized with two codebooks keeps both", () => {
  const dir = path.join('/w', '.unicode2', 'tokens');
  const a = tokensFile(dir, 'chelsea', '/w/.unicode2/codebooks/k64-dct.safetensors', '.tokens.json');
  const b = tokensFile(dir, 'chelsea', '/w/.unicode2/codebooks/k1024-dct.safetensors', '.tokens.json');
  assert.equal(a, path.join(dir, 'chelsea.k64-dct.tokens.json'));
  assert.equal(b, path.join(dir, 'chelsea.k1024-dct.tokens.json'));
  assert.equal(tokensFile(dir, 'photos', '/w/.unicode2/codebook.safetensors', '.tokens.npy'), path.join(dir, 'photos.codebook.tokens.npy'));
});

test('codebooks of the same name are told apart by the fewest last folders that differ; unique names stay bare', () => {
  const legacy = '/w/.unicode2/codebook.safetensors';
  const demo = '/w/demo-out/codebook.safetensors';
  const other = '/w/.unicode2/codebooks/k64-dct.safetensors';
  const labels = codebookLabels([legacy, demo, other]);
  assert.equal(labels.get(legacy), 'codebook · .unicode2');
  assert.equal(labels.get(demo), 'codebook · demo-out');
  assert.equal(labels.get(other), 'k64-dct');
  // same last folder: one more folder up tells them apart
  const a = '/runs/a/out/codebook.safetensors';
  const b = '/runs/b/out/codebook.safetensors';
  assert.deepEqual([codebookLabel(a, [b]), codebookLabel(b, [a])], ['codebook · a/out', 'codebook · b/out']);
  // the same file named twice (as listed and as active) is one codebook, not two
  assert.equal(codebookLabel(other, [other, legacy]), 'k64-dct');
  assert.equal(codebookLabel(legacy, [legacy]), 'codebook');
});

test('decoded images are named per codebook, so two codebooks decode the same tokens side by side; a generation never replaces an earlier one', async () => {
  await withDataDir(async (dataDir) => {
    const decoded = path.join(dataDir, 'decoded');
    const a = madeFile(decoded, 'chelsea', '/w/.unicode2/codebooks/k64-dct.safetensors', '.png');
    const b = madeFile(decoded, 'chelsea', '/w/.unicode2/codebooks/k64-dct-2.safetensors', '.png');
    assert.deepEqual([path.basename(a), path.basename(b)], ['chelsea.k64-dct.png', 'chelsea.k64-dct-2.png']);
    await mkdir(decoded, { recursive: true });
    await writeFile(a, '');
    // without fresh: the same decode again is the same file
    assert.equal(madeFile(decoded, 'chelsea', '/w/k64-dct.safetensors', '.png'), a);
    // fresh: the next free number goes on the name, not on the codebook's
    assert.equal(path.basename(madeFile(decoded, 'chelsea', '/w/k64-dct.safetensors', '.png', true)), 'chelsea-2.k64-dct.png');
    await writeFile(path.join(decoded, 'chelsea-2.k64-dct.png'), '');
    assert.equal(path.basename(madeFile(decoded, 'chelsea', '/w/k64-dct.safetensors', '.png', true)), 'chelsea-3.k64-dct.png');
  });
});

test('a token set is held out when its name, its file or its images\' folder says so', () => {
  const set = (label: string, image: string, file?: string) => ({ label, grids: [{ image }], ...(file ? { file } : {}) });
  assert.equal(isHeldOut(set('images (6 images)', '/w/images/a.jpg')), false);
  assert.equal(isHeldOut(set('held-out (2 images)', '/w/held-out/a.jpg')), true);
  assert.equal(isHeldOut(set('a.jpg', '/w/photos-test/a.jpg')), true);
  assert.equal(isHeldOut(set('x', '/w/x/a.jpg', '/w/.unicode2/tokens/val.k64-dct.tokens.json')), true);
  assert.equal(isHeldOut(set('holdout', '/w/h/a.jpg')), true);
  // a word that only contains one is no mark
  assert.equal(isHeldOut(set('contest (3 images)', '/w/contest/a.jpg')), false);
  assert.equal(isHeldOut(set('intervals', '/w/intervals/a.jpg')), false);
});

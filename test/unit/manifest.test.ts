// package.json says what the code says: the Explorer menu offers "Tokenize Image…" on exactly the
// image files the engine reads (engine/embed/image.ts IMAGE_EXTENSIONS, which the file dialogs use too),
// the settings that name files to load or lines to run are restricted in untrusted workspaces, and the notebook
// renderer is declared for the mime type the code names (common/protocol/notebook.ts TOKENS_MIME).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { IMAGE_EXTENSIONS } from '../../extension/engine/embed/image.js';
import { TOKENS_MIME } from '../../common/protocol/notebook.js';

const root = path.resolve(__dirname, '../..');
const manifest = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));

/** The regular expression of a `when` clause `resourceExtname =~ /.../flags`. */
function extnameRegex(when: string): RegExp {
  const m = /resourceExtname =~ \/(.+)\/([a-z]*)$/.exec(when);
  assert.ok(m, `a resourceExtname regex in "${when}"`);
  return new RegExp(m[1]!, m[2]);
}

test("the Explorer's Tokenize Image… matches exactly the engine's image extensions", () => {
  const entry = (manifest.contributes.menus['explorer/context'] as { command: string; when: string }[]).find((m) => m.command === 'unicode2.tokenizeImage');
  assert.ok(entry, 'unicode2.tokenizeImage is in the Explorer context menu');
  const regex = extnameRegex(entry.when);
  for (const ext of IMAGE_EXTENSIONS) {
    assert.ok(regex.test(`.${ext}`), `.${ext} is offered`);
    assert.ok(regex.test(`.${ext.toUpperCase()}`), `.${ext.toUpperCase()} is offered`);
  }
  // Every extension of up to four letters, against the list: nothing beyond it is offered.
  const candidates: string[] = [];
  const grow = (prefix: string) => {
    if (prefix) candidates.push(prefix);
    if (prefix.length < 4) for (const c of 'abcdefghijklmnopqrstuvwxyz') grow(prefix + c);
  };
  grow('');
  const offered = candidates.filter((ext) => regex.test(`.${ext}`)).sort();
  assert.deepEqual(offered, [...IMAGE_EXTENSIONS].sort());
  for (const other of ['.npy', '.json', '.safetensors', '.bmp', '.svg', '.png.bak', '.jpgx']) assert.ok(!regex.test(other), `${other} is not offered`);
});

test('the settings that name files to load are restricted in untrusted workspaces', () => {
  const trust = manifest.capabilities?.untrustedWorkspaces;
  assert.equal(trust?.supported, 'limited');
  assert.ok(typeof trust.description === 'string' && trust.description.length > 0, 'limited support says what is limited');
  const restricted: string[] = trust.restrictedConfigurations;
  const settings = Object.keys(manifest.contributes.configuration.properties);
  for (const key of restricted) assert.ok(settings.includes(key), `${key} is a setting`);
  // the two that name a codebook file or a model folder / .onnx file, and the two that reach a
  // shell on the cluster (sbatch's options, the setup line each task runs)
  assert.deepEqual([...restricted].sort(), ['unicode2.codebook', 'unicode2.encoder', 'unicode2.slurm.sbatch', 'unicode2.slurm.setup']);
});

test("the notebook renderer is declared for exactly the code's TOKENS_MIME", () => {
  const renderers = manifest.contributes.notebookRenderer as { entrypoint: string; mimeTypes: string[] }[];
  const renderer = renderers.find((r) => r.entrypoint === './dist/webview/tokens-renderer.js');
  assert.ok(renderer, 'dist/webview/tokens-renderer.js is a notebook renderer');
  assert.deepEqual(renderer.mimeTypes, [TOKENS_MIME]);
});

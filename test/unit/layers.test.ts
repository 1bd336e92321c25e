// The layer rule (layers.config.json) holds for the code base, and the checker really catches an
// import that runs against it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, copyFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkLayers, importsOf, readLayerRules } from '../../scripts/check-layers.js';

const root = path.resolve(__dirname, '../..');

test('every import of the product follows the layer rules', () => {
  const violations = checkLayers(root, readLayerRules(root));
  assert.deepEqual(violations.map((v) => v.message), []);
});

test('an import against the layers is reported, one across layers and one of a forbidden module', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'layers-'));
  try {
    copyFileSync(path.join(root, 'layers.config.json'), path.join(dir, 'layers.config.json'));
    const put = (rel: string, text: string) => {
      mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
      writeFileSync(path.join(dir, rel), text);
    };
    put('extension/engine/search/tokenize.ts', "export const x = 1;\n");
    put('common/errors.ts', "export class UserError extends Error {}\n");
    // native-gpu may not reach up into the engine, and the engine may not know VS Code exists
    put('native-gpu/cpu/nearest.ts', "import { x } from '../../extension/engine/search/tokenize.js';\nimport { UserError } from '../../common/errors.js';\n");
    put('extension/engine/build/build.ts', "import * as vscode from 'vscode';\n// import { y } from '../panels/x'; (a comment is not an import)\nconst s = \"from '../panels/x'\";\n");
    const messages = checkLayers(dir, readLayerRules(dir)).map((v) => v.message);
    assert.equal(messages.length, 2, messages.join('\n'));
    assert.match(messages.find((m) => m.startsWith('native-gpu/'))!, /native-gpu\/cpu\/nearest\.ts \(native-gpu\) imports extension\/engine\/search\/tokenize\.ts \(engine\/search\)/);
    assert.match(messages.find((m) => m.startsWith('extension/engine/'))!, /imports 'vscode'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every import a rule forbids is reported: one scratch file per forbidden pair of layers', () => {
  // For each layer that is a folder, a file in it imports a file of each layer its rule leaves
  // out: search/ reaching build/, io/ reaching embed/, panels reaching past the engine's public
  // entry into a stage, and so on. Each must be reported, and nothing else.
  const rules = readLayerRules(root);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'layers-'));
  try {
    copyFileSync(path.join(root, 'layers.config.json'), path.join(dir, 'layers.config.json'));
    const fileIn = (p: string) => (p.endsWith('/') ? `${p}scratch-target.ts` : p);
    for (const rule of rules) {
      const target = path.join(dir, fileIn(rule.paths[0]!));
      mkdirSync(path.dirname(target), { recursive: true });
      writeFileSync(target, 'export const x = 1;\n');
    }
    const expected: string[] = [];
    for (const from of rules) {
      const folder = from.paths.find((p) => p.endsWith('/'));
      if (!folder) continue;
      mkdirSync(path.join(dir, folder), { recursive: true });
      for (const to of rules.filter((r) => r !== from && !from.imports.includes(r.name))) {
        const rel = `${folder}scratch-to-${to.name.replace(/\//g, '-')}.ts`;
        let specifier = path.relative(path.dirname(path.join(dir, rel)), path.join(dir, fileIn(to.paths[0]!))).replace(/\.ts$/, '.js');
        if (!specifier.startsWith('.')) specifier = `./${specifier}`;
        writeFileSync(path.join(dir, rel), `import { x } from '${specifier}';\n`);
        expected.push(`${rel} (${from.name}) imports ${fileIn(to.paths[0]!)} (${to.name})`);
      }
    }
    const messages = checkLayers(dir, rules).map((v) => v.message);
    for (const e of ['engine/search', 'engine/io', 'panels', 'cli']) {
      assert.ok(expected.some((x) => x.includes(`(${e}) imports`)), `no forbidden pair from ${e}`);
    }
    assert.ok(expected.some((x) => x.includes('(engine/search) imports extension/engine/build/')), 'search/ -> build/ is among the pairs');
    assert.ok(expected.some((x) => x.includes('(panels) imports extension/engine/embed/')), 'panels -> an engine stage is among the pairs');
    assert.equal(messages.length, expected.length, messages.join('\n'));
    for (const e of expected) assert.ok(messages.some((m) => m.startsWith(e)), `not reported: ${e}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('import forms: static, type-only, re-export, side effect, dynamic import and require', () => {
  const src = [
    "import a from './a';",
    "import type { B } from './b.js';",
    "export { c } from '../c';",
    "import './d.css';",
    "const e = await import('./e');",
    "const f = require('f-module');",
    "import {\n  g,\n  h,\n} from './gh';",
  ].join('\n');
  assert.deepEqual(importsOf(src), ['./a', './b.js', '../c', './d.css', './e', 'f-module', './gh']);
});

// The layer rule (layers.config.json) holds for the code base, and the checker really catches an
// import that runs against it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, copyFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkLayers, importsOf, readLayerRules } from '../../scripts/check-layers';

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
    put('extension/engine/tokenize.ts', "export const x = 1;\n");
    put('common/errors.ts', "export class UserError extends Error {}\n");
    // native-gpu may not reach up into the engine, and the engine may not know VS Code exists
    put('native-gpu/cpu/nearest.ts', "import { x } from '../../extension/engine/tokenize.js';\nimport { UserError } from '../../common/errors.js';\n");
    put('extension/engine/build.ts', "import * as vscode from 'vscode';\n// import { y } from '../panels/x'; (a comment is not an import)\nconst s = \"from '../panels/x'\";\n");
    const messages = checkLayers(dir, readLayerRules(dir)).map((v) => v.message);
    assert.equal(messages.length, 2, messages.join('\n'));
    assert.match(messages.find((m) => m.startsWith('native-gpu/'))!, /native-gpu\/cpu\/nearest\.ts \(native-gpu\) imports extension\/engine\/tokenize\.ts \(engine\)/);
    assert.match(messages.find((m) => m.startsWith('extension/engine/'))!, /imports 'vscode'/);
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

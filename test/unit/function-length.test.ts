// No function of the product longer than a screen without a written reason, and the checker
// really finds one: a body counted from `(...) {`, `(...): T {` and `=> {`, but not if/for/while.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { blanked, checkFunctionLength, longFunctions, MAX_FUNCTION_LINES } from '../../scripts/check-function-length.js';

const root = path.resolve(__dirname, '../..');

test(`no function of the product is over ${MAX_FUNCTION_LINES} lines without a '// long:' reason above it`, () => {
  const found = checkFunctionLength(root).map((f) => `${f.file}:${f.line} ${f.name}: ${f.lines} lines`);
  assert.deepEqual(found, []);
});

test('the checker finds long functions of every form, and only those without a reason', () => {
  const body = (n: number) => Array.from({ length: n }, (_, i) => `  const v${i} = ${i};`).join('\n');
  const src = [
    'export function plain(a: number): Promise<{ x: number }> {', body(70), '}',
    'const arrow = async (x: string) => {', body(70), '};',
    'class C {', '  method(a: string, b = "{"): void {', body(70), '  }', '}',
    '// What it does.', '// long: one state machine, clearest read top to bottom', 'function excused() {', body(70), '}',
    'function short() {', body(10), '}',
    'function withBlocks() {', '  if (x) {', body(70), '  }', '}',
    'const s = `${"{"} text { ${`nested ${1}`} }`;',
    'const r = /\\{[^}]*/;',
  ].join('\n');
  const found = longFunctions('x.ts', src, MAX_FUNCTION_LINES).map((f) => f.name);
  // withBlocks is long because of its if block: the function counts, the block does not
  assert.deepEqual(found, ['plain', 'arrow', 'method', 'withBlocks']);
});

test('strings, template literals, comments and regular expressions are blanked with their lines kept', () => {
  const src = "const a = '{'; // {\nconst b = `x${f({})}y{`; /* { */\nconst c = /}/g;\nconst d = a[i]! / n; if (!/{/.test(a)) {}\n";
  const code = blanked(src);
  assert.equal(code.split('\n').length, src.split('\n').length);
  // left: `${` and its `}`, f({}) inside it, and the if's body (`a[i]! / n` is a division, `!/{/` a regex)
  assert.equal([...code].filter((c) => c === '{').length, 3);
  assert.equal([...code].filter((c) => c === '}').length, 3);
});

// Shares of tokens as the panels print them: readable at every size, never in exponent notation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatShare } from '../../webview/common/dom.js';

test('a share reads as a plain percentage at every size, small ones with two significant digits', () => {
  const cases: [number, string][] = [
    [0, '0%'], [0.5, '50.00%'], [0.0123, '1.23%'], [0.001, '0.10%'],
    // the Codebook editor printed this one as "4.5e-2%"
    [0.00045, '0.045%'], [0.0000099, '0.00099%'], [0.0000012, '0.00012%'], [1e-7, '< 0.0001%'],
  ];
  for (const [x, text] of cases) assert.equal(formatShare(x), text, String(x));
});

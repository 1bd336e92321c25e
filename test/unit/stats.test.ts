import { test } from 'node:test';
import assert from 'node:assert/strict';
import { codeStats } from '../../extension/engine/codebook/stats.js';

test('two of four codes used equally: utilization 1/2, perplexity 2', () => {
  const s = codeStats([2, 0, 2, 0]);
  assert.deepEqual(
    { tokens: s.tokens, k: s.k, used: s.used, utilization: s.utilization, dead: s.dead, rankFrequency: s.rankFrequency },
    { tokens: 4, k: 4, used: 2, utilization: 0.5, dead: 2, rankFrequency: [2, 2, 0, 0] },
  );
  assert.ok(Math.abs(s.perplexity - 2) < 1e-12);
});

test('uniform use of all K codes gives perplexity K', () => {
  const s = codeStats(new Float64Array(8).fill(5));
  assert.equal(s.used, 8);
  assert.equal(s.utilization, 1);
  assert.ok(Math.abs(s.perplexity - 8) < 1e-12);
});

test('skewed counts: perplexity = 0.75^-0.75 * 0.25^-0.25 ~ 1.75477 (computed by hand)', () => {
  const s = codeStats(Uint32Array.of(1, 3));
  assert.ok(Math.abs(s.perplexity - 1.75477) < 1e-5, String(s.perplexity));
  assert.deepEqual(s.rankFrequency, [3, 1]);
});

test('one code takes everything: perplexity 1; nothing counted: perplexity 0', () => {
  assert.equal(codeStats([0, 9, 0]).perplexity, 1);
  const empty = codeStats([0, 0, 0]);
  assert.deepEqual([empty.tokens, empty.used, empty.dead, empty.perplexity, empty.utilization], [0, 0, 3, 0, 0]);
});

test('negative or non-finite counts are refused', () => {
  assert.throws(() => codeStats([1, -1]), /count -1 of code 1/);
  assert.throws(() => codeStats([NaN]), /count NaN of code 0/);
});

// The heatmap's similarity order (host side): a permutation of all codes that puts codewords
// close in the embedding space close on the heatmap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { similarityOrder } from '../../extension/engine/report/code-order.js';
import { heatmapColumns } from '../../common/colormap.js';

test('codewords along two directions come out as a grid ordered by both', () => {
  // K = 400 codewords in d = 16: code i sits at (u, v) = (i mod 20, floor(i / 20)) of a plane
  // spanned by two random-looking directions, codes shuffled, plus small noise.
  const k = 400;
  const d = 16;
  const a = Float32Array.from({ length: d }, (_, j) => Math.sin(j * 1.3 + 0.2));
  const b = Float32Array.from({ length: d }, (_, j) => Math.cos(j * 2.1 + 0.7));
  const ids = Array.from({ length: k }, (_, i) => (i * 137) % k); // a fixed shuffle (137 is coprime to 400)
  const data = new Float32Array(k * d);
  ids.forEach((place, code) => {
    const u = (place % 20) * 3; // the stronger direction: it must become the rows
    const v = Math.floor(place / 20);
    for (let j = 0; j < d; j++) data[code * d + j] = u * a[j]! + v * b[j]! + 0.01 * Math.sin(code * 7 + j);
  });
  const order = similarityOrder({ rows: k, cols: d, data });
  assert.deepEqual([...order].sort((x, y) => x - y), Array.from({ length: k }, (_, i) => i), 'a permutation of all codes');
  assert.equal(heatmapColumns(k), 20);
  // each heatmap row holds one value of u (the principal direction), sorted by v within the row
  for (let r = 0; r < 20; r++) {
    const row = order.slice(r * 20, r * 20 + 20).map((code) => ids[code]!);
    const us = new Set(row.map((place) => place % 20));
    assert.equal(us.size, 1, `row ${r} mixes ${[...us]}`);
    const vs = row.map((place) => Math.floor(place / 20));
    const ascending = vs.every((v, i) => i === 0 || v > vs[i - 1]!);
    const descending = vs.every((v, i) => i === 0 || v < vs[i - 1]!);
    assert.ok(ascending || descending, `row ${r} is not ordered by the second direction: ${vs}`);
  }
});

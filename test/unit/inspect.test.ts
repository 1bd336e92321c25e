// What the Codebook panel asks the engine about codes, against brute force.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import { coarseCells, nearestCodewords } from '../../extension/engine/search/inspect.js';
import type { CodebookData } from '../../native-gpu/backend.js';
import { rowsF32 } from '../../native-gpu/tables.js';
import { f32ToF16 } from '../../common/half.js';
import { UserError } from '../../common/errors.js';
import { memoryCodebook } from '../helpers/nearest.js';
import { seededRandom } from '../../extension/engine/core/sampling.js';

const backendPromise = createCpuBackend();
after(async () => (await backendPromise).dispose());

test('nearestCodewords: the closest codes by brute force, itself left out, across blocks and for f16 tables', async () => {
  const backend = await backendPromise;
  const k = 70_000, d = 3; // more codes than one block of 65,536
  const random = seededRandom(5);
  const data = Float32Array.from({ length: k * d }, () => random());
  for (const frozen of [{ rows: k, cols: d, data }, { rows: k, cols: d, half: f32ToF16(data) }] as CodebookData[]) {
    const values = rowsF32(frozen, 0, k);
    for (const code of [0, 69_999]) {
      const dist = (c: number) => {
        let s = 0;
        for (let j = 0; j < d; j++) s += (values[c * d + j] - values[code * d + j]) ** 2;
        return s;
      };
      const expected = Array.from({ length: k }, (_, c) => c).filter((c) => c !== code).sort((a, b) => dist(a) - dist(b) || a - b).slice(0, 5);
      const got = await nearestCodewords(memoryCodebook(frozen), code, 5, backend);
      assert.equal(got.length, 5);
      assert.deepEqual(got.map((g) => g.code), expected, `code ${code}, ${'half' in frozen ? 'f16' : 'f32'}`);
      got.forEach((g) => assert.ok(Math.abs(g.distance - dist(g.code)) < 1e-5));
    }
  }
  await assert.rejects(nearestCodewords(memoryCodebook({ rows: 2, cols: 1, data: Float32Array.of(0, 1) }), 2, 1, backend), UserError);
});

test('coarseCells: each cell\'s codes and their use; null without a coarse level', () => {
  const frozen = { rows: 6, cols: 2, data: new Float32Array(12) };
  const centroids = { rows: 3, cols: 2, data: new Float32Array(6) };
  assert.equal(coarseCells(memoryCodebook(frozen), new Float64Array(6)), null);
  const cb = memoryCodebook(frozen, { centroids, assign: Int32Array.of(2, 0, 2, 2, 0, 1) });
  const cells = coarseCells(cb, Float64Array.of(5, 0, 1, 0, 3, 0))!;
  assert.deepEqual(cells.map((c) => ({ ...c, codes: Array.from(c.codes) })), [
    { cell: 0, codes: [1, 4], tokens: 3, used: 1 },
    { cell: 1, codes: [5], tokens: 0, used: 0 },
    { cell: 2, codes: [0, 2, 3], tokens: 6, used: 2 },
  ]);
  assert.throws(() => coarseCells(cb, [1, 2]), UserError);
});

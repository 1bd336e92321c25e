import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { f16ToF32, f32ToF16 } from '../../common/half.js';
import { readNpy } from '../../extension/engine/io/formats/npy.js';

const npyDir = path.join(__dirname, '../fixtures/npy');

test('f32 -> f16 rounds exactly as NumPy astype(float16) does (ties, subnormals, overflow, specials)', async () => {
  const input = (await readNpy(path.join(npyDir, 'half-in-f32.npy'))).data as Float32Array;
  const expected = (await readNpy(path.join(npyDir, 'half-out-f16.npy'))).data as Uint16Array;
  const got = f32ToF16(input);
  for (let i = 0; i < input.length; i++) {
    const isNaN = (expected[i] & 0x7c00) === 0x7c00 && (expected[i] & 0x3ff) !== 0;
    if (isNaN) assert.ok(Number.isNaN(f16ToF32(got.subarray(i, i + 1))[0]), `value ${i} should stay NaN`);
    else assert.equal(got[i], expected[i], `f32 ${input[i]} -> 0x${got[i].toString(16)}, NumPy 0x${expected[i].toString(16)}`);
  }
});

test('f16 -> f32 decodes the NumPy halves back to the values NumPy gives', async () => {
  const halves = (await readNpy(path.join(npyDir, 'half-out-f16.npy'))).data as Uint16Array;
  const decoded = f16ToF32(halves);
  // Decoding then re-encoding must give the same bits: f16 -> f32 is exact.
  const again = f32ToF16(decoded);
  for (let i = 0; i < halves.length; i++) {
    if (Number.isNaN(decoded[i])) continue;
    assert.equal(again[i], halves[i]);
  }
  // 1.0, -2.0, the largest half, the smallest subnormal.
  assert.deepEqual([...f16ToF32(Uint16Array.of(0x3c00, 0xc000, 0x7bff, 0x0001))], [1, -2, 65504, 2 ** -24]);
});

test('every non-NaN half survives f16 -> f32 -> f16 unchanged', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const back = f32ToF16(f16ToF32(all));
  for (let i = 0; i < 65536; i++) {
    const nan = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
    if (!nan) assert.equal(back[i], i, `half 0x${i.toString(16)}`);
  }
});

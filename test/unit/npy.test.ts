import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UserError } from '../../common/errors.js';
import { encodeNpy, readEmbeddings, readNpy, writeNpy, type NpyArray } from '../../extension/engine/io/formats/npy.js';
import { f16ToF32 } from '../../common/half.js';
import { pythonWithNumpy, runPythonJson } from '../helpers/python.js';

const dir = path.join(__dirname, '../fixtures/npy');
const fixture = (name: string) => path.join(dir, name);
/** The values make.py writes: arange(12).reshape(3, 4) * 0.5 - 1 */
const base = Array.from({ length: 12 }, (_, i) => i * 0.5 - 1);

test('reads every supported dtype as NumPy wrote it', async () => {
  for (const [name, dtype] of [['f32.npy', 'float32'], ['f64.npy', 'float64'], ['v2.npy', 'float32']] as const) {
    const a = await readNpy(fixture(name));
    assert.equal(a.dtype, dtype, name);
    assert.deepEqual(a.shape, [3, 4], name);
    assert.deepEqual([...a.data], base, name);
  }
  const f16 = await readNpy(fixture('f16.npy'));
  assert.equal(f16.dtype, 'float16');
  assert.deepEqual([...f16ToF32(f16.data as Uint16Array)], base);

  const i4 = await readNpy(fixture('i4.npy'));
  assert.deepEqual([i4.dtype, i4.shape, [...i4.data]], ['int32', [2, 3], [-3, -2, -1, 0, 1, 2]]);
  const i8 = await readNpy(fixture('i8.npy'));
  assert.deepEqual([i8.dtype, i8.shape, [...i8.data]], ['int64', [4], [-(2n ** 40n), -1n, 0n, 2n ** 40n]]);
  const u1 = await readNpy(fixture('u1.npy'));
  assert.deepEqual([u1.dtype, u1.shape, [...u1.data]], ['uint8', [2, 3, 4], Array.from({ length: 24 }, (_, i) => i)]);
  const scalar = await readNpy(fixture('scalar.npy'));
  assert.deepEqual([scalar.shape, [...scalar.data]], [[], [7.25]]);
});

test('encodeNpy writes byte-for-byte what numpy.save writes', async () => {
  const cases: [string, NpyArray][] = [
    ['f32.npy', { dtype: 'float32', shape: [3, 4], data: Float32Array.from(base) }],
    ['f64.npy', { dtype: 'float64', shape: [3, 4], data: Float64Array.from(base) }],
    ['i4.npy', { dtype: 'int32', shape: [2, 3], data: Int32Array.of(-3, -2, -1, 0, 1, 2) }],
    ['i8.npy', { dtype: 'int64', shape: [4], data: BigInt64Array.of(-(2n ** 40n), -1n, 0n, 2n ** 40n) }],
    ['u1.npy', { dtype: 'uint8', shape: [2, 3, 4], data: Uint8Array.from({ length: 24 }, (_, i) => i) }],
    ['scalar.npy', { dtype: 'float32', shape: [], data: Float32Array.of(7.25) }],
  ];
  for (const [name, array] of cases) {
    assert.deepEqual(Buffer.from(encodeNpy(array)), await fs.readFile(fixture(name)), name);
  }
});

test('writeNpy output loads in NumPy with the same shape, dtype and values', async (t) => {
  const python = pythonWithNumpy();
  if (!python) return t.skip('no python3 with NumPy on this machine');
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'npy-'));
  t.after(() => fs.rm(tmp, { recursive: true, force: true }));
  const data = Float32Array.from({ length: 2 * 3 * 5 }, (_, i) => Math.sin(i));
  const file = path.join(tmp, 'out.npy');
  await writeNpy(file, { dtype: 'float32', shape: [2, 3, 5], data });
  const script = 'import sys, json, numpy as np; a = np.load(sys.argv[1]); print(json.dumps([a.dtype.str, list(a.shape), a.ravel().tolist()]))';
  const [dtype, shape, values] = runPythonJson<[string, number[], number[]]>(python, script, [file]);
  assert.equal(dtype, '<f4');
  assert.deepEqual(shape, [2, 3, 5]);
  assert.deepEqual(values, [...data]);
});

test('large headers switch to format 2.0 and read back', async () => {
  const shape = Array.from({ length: 25000 }, () => 1); // "1, " x 25000: a header over 65535 bytes
  const bytes = encodeNpy({ dtype: 'uint8', shape, data: Uint8Array.of(9) });
  assert.equal(bytes[6], 2);
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'npy-'));
  try {
    await fs.writeFile(path.join(tmp, 'a.npy'), bytes);
    const a = await readNpy(path.join(tmp, 'a.npy'));
    assert.equal(a.shape.length, 25000);
    assert.deepEqual([...a.data], [9]);
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
});

test('refuses what it cannot read faithfully, with a one-line UserError naming the file', async () => {
  const cases: [string, RegExp][] = [
    ['fortran.npy', /fortran\.npy: Fortran-order arrays are not supported/],
    ['big-endian.npy', /big-endian\.npy: big-endian data \('>f4'\)/],
    ['complex.npy', /complex\.npy: unsupported dtype '<c8'/],
    ['make.py', /make\.py: not a NumPy \.npy file/],
  ];
  for (const [name, message] of cases) {
    await assert.rejects(readNpy(fixture(name)), (err: Error) => err instanceof UserError && message.test(err.message) && !err.message.includes('\n'));
  }
  const truncated = (await fs.readFile(fixture('f32.npy'))).subarray(0, 150);
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'npy-'));
  try {
    await fs.writeFile(path.join(tmp, 'cut.npy'), truncated);
    await assert.rejects(readNpy(path.join(tmp, 'cut.npy')), /cut\.npy: truncated \.npy file/);
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
});

test('readEmbeddings concatenates a shard folder in name order, converting f16', async () => {
  const m = await readEmbeddings(fixture('shards'));
  assert.equal(m.rows, 5);
  assert.equal(m.cols, 8);
  // make.py: arange(40).reshape(5, 8) / 8, first 3 rows as f16 (exact for these values)
  assert.deepEqual([...m.data], Array.from({ length: 40 }, (_, i) => i / 8));
  const single = await readEmbeddings(fixture('f64.npy'));
  assert.deepEqual([single.rows, single.cols, [...single.data]], [3, 4, base]);
});

test('readEmbeddings rejects NaN rows, mixed d, non-2-D and non-float input', async () => {
  await assert.rejects(readEmbeddings(fixture('nan-row2.npy')), (e: Error) => e instanceof UserError && /nan-row2\.npy: row 2 holds a non-finite value/.test(e.message));
  await assert.rejects(readEmbeddings(fixture('mixed-d')), (e: Error) => e instanceof UserError && /b\.npy: has d = 6 but .*a\.npy has d = 8/.test(e.message));
  await assert.rejects(readEmbeddings(fixture('u1.npy')), /expected a 2-D array \[N, d\] of embeddings, found shape \(2, 3, 4\)/);
  await assert.rejects(readEmbeddings(fixture('i4.npy')), /expected float embeddings/);
  await assert.rejects(readEmbeddings(fixture('missing.npy')), /missing\.npy: cannot read embeddings: no such file or folder/);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UserError } from '../../common/errors.js';
import { encodeSafetensors, readSafetensors, writeSafetensors, type Tensor } from '../../extension/engine/io/formats/safetensors.js';
import { f16ToF32, f32ToF16 } from '../../common/half.js';
import { pythonWithNumpy, readSafetensorsInPython } from '../helpers/python.js';

const reference = path.join(__dirname, '../fixtures/safetensors/reference.safetensors');

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'st-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

const sample: Record<string, Tensor> = {
  frozen: { dtype: 'F32', shape: [2, 3], data: Float32Array.of(0.5, -1, 2, 3.25, 4, -5) },
  half: { dtype: 'F16', shape: [3], data: f32ToF16(Float32Array.of(1, -2, 0.5)) },
  counts: { dtype: 'I64', shape: [2], data: BigInt64Array.of(3n, 2n ** 40n) },
  ids: { dtype: 'I32', shape: [1, 2], data: Int32Array.of(-7, 7) },
  mean: { dtype: 'F64', shape: [], data: Float64Array.of(Math.PI) },
};


test('write -> read round-trips every dtype, shape and the metadata', async (t) => {
  const file = path.join(await tempDir(t), 'a.safetensors');
  await writeSafetensors(file, sample, { k: '2', note: 'ünïcødé' });
  const back = await readSafetensors(file);
  assert.deepEqual(back.metadata, { k: '2', note: 'ünïcødé' });
  assert.deepEqual(Object.keys(back.tensors).sort(), Object.keys(sample).sort());
  for (const [name, t0] of Object.entries(sample)) {
    assert.deepEqual(back.tensors[name], t0, name);
  }
});

test('the header is padded with spaces to 8 bytes and tensors are aligned to their size', () => {
  const bytes = encodeSafetensors(sample, { x: 'y' });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(n % 8, 0);
  const header = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  assert.match(header, /^\{.*\} *$/);
  const parsed = JSON.parse(header) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const size: Record<string, number> = { F64: 8, I64: 8, F32: 4, I32: 4, F16: 2 };
  for (const [name, entry] of Object.entries(parsed)) {
    if (name !== '__metadata__') assert.equal(entry.data_offsets[0] % size[entry.dtype], 0, name);
  }
});

test('files we write read back identically with a spec-only NumPy reader and with the reference safetensors package', async (t) => {
  const python = pythonWithNumpy();
  if (!python) return t.skip('no python3 with NumPy on this machine');
  const file = path.join(await tempDir(t), 'b.safetensors');
  await writeSafetensors(file, sample, { k: '2' });
  const expected = {
    frozen: ['F32', [2, 3], [0.5, -1, 2, 3.25, 4, -5]],
    half: ['F16', [3], [1, -2, 0.5]],
    counts: ['I64', [2], [3, 2 ** 40]],
    ids: ['I32', [1, 2], [-7, 7]],
    mean: ['F64', [], [Math.PI]],
  };
  const dumps = readSafetensorsInPython(python, file);
  if (dumps.length === 1) t.diagnostic('python safetensors package not installed: checked with the spec-only reader alone');
  for (const { reader, dump } of dumps) {
    assert.deepEqual(dump.meta, { k: '2' }, reader);
    assert.deepEqual(dump.tensors, expected, reader);
  }
});

test('reads a file written by the reference safetensors implementation', async () => {
  const { tensors, metadata } = await readSafetensors(reference);
  assert.deepEqual(metadata, { format: 'np', note: 'made by make.py' });
  assert.deepEqual(tensors.weights, { dtype: 'F32', shape: [2, 3], data: Float32Array.from([0, 1, 2, 3, 4, 5], (v) => v - 2.5) });
  assert.deepEqual([...f16ToF32(tensors.half.data as Uint16Array)], [1, -2, 0.5]);
  assert.deepEqual([...tensors.double.data], [Math.PI]);
  assert.deepEqual([...tensors.index.data], [-1n, 0n, 2n ** 40n]);
  assert.deepEqual([...tensors.small.data], [7, -7]);
});

test('malformed files are refused with one-line UserErrors naming the file', async (t) => {
  const dir = await tempDir(t);
  const good = encodeSafetensors({ a: { dtype: 'F32', shape: [2], data: Float32Array.of(1, 2) } });
  const withHeader = (json: string, data: Uint8Array) => {
    const h = new TextEncoder().encode(json);
    const out = new Uint8Array(8 + h.length + data.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
    out.set(h, 8);
    out.set(data, 8 + h.length);
    return out;
  };
  const cases: [string, Uint8Array, RegExp][] = [
    ['short.safetensors', good.subarray(0, 20), /header length \d+ does not fit/],
    ['notjson.safetensors', withHeader('{"a": nope}', new Uint8Array(8)), /header is not JSON/],
    ['f8.safetensors', withHeader('{"a":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}', new Uint8Array(2)), /tensor 'a' has dtype "F8_E4M3"; supported: .*BF16/],
    ['size.safetensors', withHeader('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', new Uint8Array(8)), /tensor 'a' \(F32 \[3\]\) does not match its data_offsets/],
    ['hole.safetensors', withHeader('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', new Uint8Array(8)), /tensor 'a' starts at byte 4, expected 0/],
    ['tail.safetensors', withHeader('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', new Uint8Array(8)), /data buffer is 8 bytes but the tensors cover 4/],
    ['meta.safetensors', withHeader('{"__metadata__":{"k":3}}', new Uint8Array(0)), /__metadata__ must map strings to strings/],
  ];
  for (const [name, bytes, message] of cases) {
    const file = path.join(dir, name);
    await fs.writeFile(file, bytes);
    await assert.rejects(readSafetensors(file), (e: Error) => e instanceof UserError && e.message.startsWith(file) && message.test(e.message) && !e.message.includes('\n'), name);
  }
  await assert.rejects(readSafetensors(path.join(dir, 'missing.safetensors')), /missing\.safetensors: cannot read a safetensors file: no such file or folder/);
  // A folder or a FIFO where the file should be: refused by type, the FIFO without blocking.
  await assert.rejects(readSafetensors(dir), (e: Error) => e instanceof UserError && e.message === `${dir}: expected a safetensors file (a regular file), found a folder`);
  const fifo = path.join(dir, 'pipe.safetensors');
  execFileSync('mkfifo', [fifo]);
  await assert.rejects(readSafetensors(fifo), (e: Error) => e instanceof UserError && e.message === `${fifo}: expected a safetensors file (a regular file), found a named pipe (FIFO)`);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkFinite, readCodebook, writeCodebook, codebookFingerprint, inMemory, type Codebook, type CodebookMeta } from '../../extension/engine/codebook/codebook.js';
import type { Matrix } from '../../native-gpu/backend.js';
import { createHash } from 'node:crypto';
import { UserError } from '../../common/errors.js';
import { writeSafetensors } from '../../extension/engine/io/formats/safetensors.js';
import { f16ToF32, f32ToF16 } from '../../common/half.js';
import { pythonWithNumpy, readSafetensorsInPython } from '../helpers/python.js';

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cb-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

function matrix(rows: number, cols: number, f: (i: number) => number) {
  return { rows, cols, data: Float32Array.from({ length: rows * cols }, (_, i) => f(i)) };
}

/** A small codebook in memory, with its tables as plain f32 matrices for comparisons. */
function sampleCodebook(): Omit<Codebook, 'fingerprint' | 'frozen'> & { frozen: Matrix; trainableValues: Matrix } {
  const k = 6;
  const d = 12;
  const meta: CodebookMeta = {
    formatVersion: 1,
    encoder: { kind: 'onnx', id: '/models/tiny-vit', patch: 2, inputSize: [32, 32], d, resize: 'stretch' },
    k,
    d,
    lambda: 0.5,
    iterations: 20,
    seed: 7,
    corpusFingerprint: '0123456789abcdef',
    atlas: 'dct',
    createdAt: '2025-01-01T00:00:00.000Z',
    source: 'test', // extra fields survive
  };
  const trainableValues = matrix(k, d, (i) => Math.cos(i));
  return {
    frozen: matrix(k, d, (i) => Math.sin(i) * 3),
    trainable: inMemory(trainableValues),
    trainableValues,
    counts: Float64Array.of(5, 0, 12, 1, 0, 3),
    coarse: { centroids: matrix(2, d, (i) => i / 7), assign: Int32Array.of(0, 1, 1, 0, 0, 1) },
    meta,
  };
}

test('write -> read round-trips all tensors and metadata; the fingerprint is the frozen bytes\' hash', async (t) => {
  const file = path.join(await tempDir(t), 'cb.safetensors');
  const cb = sampleCodebook();
  const fingerprint = await writeCodebook(file, cb);
  const back = await readCodebook(file);
  assert.equal(back.fingerprint, fingerprint);
  assert.match(fingerprint, /^[0-9a-f]{16}$/);
  assert.deepEqual(back.frozen, cb.frozen);
  assert.deepEqual(await back.trainable.load(), cb.trainableValues);
  assert.deepEqual(back.counts, cb.counts);
  assert.deepEqual(back.coarse, cb.coarse);
  assert.deepEqual(back.meta, cb.meta);
  // A different frozen codebook gets a different fingerprint.
  const moved = { ...cb.frozen, data: cb.frozen.data.map((v, i) => (i === 0 ? v + 1e-3 : v)) };
  assert.notEqual(codebookFingerprint(moved), fingerprint);
});

test('f16 storage: values come back rounded to half, and the returned fingerprint matches the file', async (t) => {
  const file = path.join(await tempDir(t), 'cb16.safetensors');
  const cb = sampleCodebook();
  const fingerprint = await writeCodebook(file, cb, { dtype: 'f16' });
  const back = await readCodebook(file);
  assert.equal(back.fingerprint, fingerprint);
  // frozen stays f16 in memory, as stored; the fingerprint is the hash of those f16 bytes
  assert.deepEqual(back.frozen, { rows: 6, cols: 12, half: f32ToF16(cb.frozen.data) });
  assert.equal(fingerprint, createHash('sha256').update(new Uint8Array(f32ToF16(cb.frozen.data).buffer)).digest('hex').slice(0, 16));
  assert.deepEqual(await back.trainable.load(), { rows: 6, cols: 12, half: f32ToF16(cb.trainableValues.data) });
  assert.deepEqual(back.coarse!.centroids.data, f16ToF32(f32ToF16(cb.coarse!.centroids.data)));
  const f16Size = (await fs.stat(file)).size;
  // Writing an f16 codebook back keeps it f16 (and its fingerprint) unless told otherwise.
  assert.equal(await writeCodebook(file, back), fingerprint);
  assert.equal((await fs.stat(file)).size, f16Size);
  await writeCodebook(file, cb);
  assert.ok(f16Size < (await fs.stat(file)).size);
});

test('a codebook without trainable starts trainable from frozen', async (t) => {
  const file = path.join(await tempDir(t), 'frozen-only.safetensors');
  const cb = sampleCodebook();
  const metadata = Object.fromEntries(Object.entries(cb.meta).map(([k, v]) => [k, JSON.stringify(v)]));
  await writeSafetensors(file, { frozen: { dtype: 'F32', shape: [6, 12], data: cb.frozen.data } }, metadata);
  const back = await readCodebook(file);
  const trainable = await back.trainable.load();
  assert.deepEqual(trainable, cb.frozen);
  assert.notEqual((trainable as Matrix).data, (back.frozen as Matrix).data); // a copy: refining T must not move C
  assert.equal(back.counts, null);
});

test('the file is what PyTorch-side tools expect: tensors, int64 counts, JSON metadata', async (t) => {
  const python = pythonWithNumpy();
  if (!python) return t.skip('no python3 with NumPy on this machine');
  const file = path.join(await tempDir(t), 'cb.safetensors');
  const cb = sampleCodebook();
  await writeCodebook(file, cb, { dtype: 'f16' });
  for (const { reader, dump } of readSafetensorsInPython(python, file)) {
    const shapes = Object.fromEntries(Object.entries(dump.tensors).map(([name, [dtype, shape]]) => [name, [dtype, shape]]));
    assert.deepEqual(shapes, {
      frozen: ['F16', [6, 12]],
      trainable: ['F16', [6, 12]],
      counts: ['I64', [6]],
      coarse: ['F16', [2, 12]],
      coarse_assign: ['I64', [6]],
    }, reader);
    assert.deepEqual(dump.tensors.counts[2], [...cb.counts!], reader);
    assert.deepEqual(dump.tensors.coarse_assign[2], [...cb.coarse!.assign], reader);
    assert.deepEqual(dump.tensors.frozen[2], [...f16ToF32(f32ToF16(cb.frozen.data))], reader);
    const meta = Object.fromEntries(Object.entries(dump.meta).map(([k, v]) => [k, JSON.parse(v)]));
    assert.deepEqual(meta, cb.meta, reader);
  }
});

test('inconsistent or damaged codebooks are refused with one-line UserErrors naming the file', async (t) => {
  const dir = await tempDir(t);
  const cb = sampleCodebook();
  const meta = (over: Partial<Record<string, unknown>>) =>
    Object.fromEntries(Object.entries({ ...cb.meta, ...over }).map(([k, v]) => [k, JSON.stringify(v)]));
  const frozen = { dtype: 'F32' as const, shape: [6, 12], data: cb.frozen.data };
  const nan = { ...frozen, data: cb.frozen.data.map((v, i) => (i === 30 ? NaN : v)) };
  const cases: [string, Parameters<typeof writeSafetensors>[1], Record<string, string>, RegExp][] = [
    ['no-frozen', { trainable: frozen }, meta({}), /missing tensor 'frozen'/],
    ['k-mismatch', { frozen }, meta({ k: 5 }), /tensor 'frozen' is \[6, 12\] but the metadata says k = 5, d = 12/],
    ['nan', { frozen: nan }, meta({}), /tensor 'frozen' row 2 holds a non-finite value/],
    ['short-trainable', { frozen, trainable: { dtype: 'F32', shape: [2, 12], data: cb.frozen.data.subarray(0, 24) } }, meta({}), /tensor 'trainable' has 2 rows, expected k = 6/],
    ['bad-counts', { frozen, counts: { dtype: 'I64', shape: [3], data: BigInt64Array.of(1n, 2n, 3n) } }, meta({}), /tensor 'counts' has 3 entries, expected k = 6/],
    ['not-ours', { frozen }, { note: 'x' }, /not a UniCode² codebook/],
    ['version', { frozen }, meta({ formatVersion: 2 }), /codebook format version 2 is not supported/],
    ['1d-frozen', { frozen: { dtype: 'F32', shape: [72], data: cb.frozen.data } }, meta({}), /tensor 'frozen' must be 2-D/],
  ];
  for (const [name, tensors, metadata, message] of cases) {
    const file = path.join(dir, `${name}.safetensors`);
    await writeSafetensors(file, tensors, metadata);
    await assert.rejects(readCodebook(file), (e: Error) => e instanceof UserError && e.message.startsWith(file) && message.test(e.message) && !e.message.includes('\n'), name);
  }
  // Writing validates too, and leaves nothing behind when it refuses.
  const target = path.join(dir, 'refused.safetensors');
  await assert.rejects(writeCodebook(target, { ...cb, meta: { ...cb.meta, k: 5 } }), /metadata says k = 5, d = 12/);
  await assert.rejects(fs.stat(target), { code: 'ENOENT' });
});

test('an f16 frozen table holding infinity or NaN is refused like an f32 one', async (t) => {
  const dir = await tempDir(t);
  const cb = sampleCodebook();
  const metadata = Object.fromEntries(Object.entries(cb.meta).map(([k, v]) => [k, JSON.stringify(v)]));
  const half = f32ToF16(cb.frozen.data);
  for (const [name, bits] of [['inf', 0x7c00], ['nan', 0x7e00]] as const) {
    const file = path.join(dir, `${name}.safetensors`);
    await writeSafetensors(file, { frozen: { dtype: 'F16', shape: [6, 12], data: half.map((h, i) => (i === 40 ? bits : h)) } }, metadata);
    await assert.rejects(readCodebook(file), (e: Error) => e instanceof UserError && /tensor 'frozen' row 3 holds a non-finite value/.test(e.message), name);
  }
});

/** bytes this process has read through read() calls so far (/proc/self/io rchar) */
async function bytesReadSoFar(): Promise<number> {
  const io = await fs.readFile('/proc/self/io', 'utf8');
  return Number(/^rchar: (\d+)$/m.exec(io)![1]);
}

test('a 500,000-code file is read without its trainable table, which loads on first use', async (t) => {
  const dir = await tempDir(t);
  const k = 500_000, d = 8, dt = 48;
  const meta = { ...sampleCodebook().meta, k, d, encoder: { kind: 'onnx', id: 'external', patch: 0, inputSize: [0, 0], d } };
  const metadata = Object.fromEntries(Object.entries(meta).map(([key, v]) => [key, JSON.stringify(v)]));
  const frozen = f32ToF16(Float32Array.from({ length: k * d }, (_, i) => ((i * 7919) % 1000) / 1000));
  const trainable = Float32Array.from({ length: k * dt }, (_, i) => (i % 97) / 97);
  trainable[dt * 123_456 + 5] = NaN; // only a read of trainable can notice this
  const file = path.join(dir, 'big.safetensors');
  await writeSafetensors(file, { frozen: { dtype: 'F16', shape: [k, d], data: frozen }, trainable: { dtype: 'F32', shape: [k, dt], data: trainable } }, metadata);

  const before = await bytesReadSoFar();
  const cb = await readCodebook(file);
  const read = (await bytesReadSoFar()) - before;
  assert.deepEqual([cb.frozen.rows, cb.frozen.cols, cb.trainable.rows, cb.trainable.cols], [k, d, k, dt]);
  assert.deepEqual(cb.frozen, { rows: k, cols: d, half: frozen });
  // the f16 frozen table is 8 MB, trainable 96 MB: reading went no further than frozen (and the header)
  assert.ok(read >= frozen.byteLength && read < frozen.byteLength + (1 << 20), `read ${read} bytes`);
  await assert.rejects(cb.trainable.load(), (e: Error) => e instanceof UserError && /tensor 'trainable' row 123456 holds a non-finite value/.test(e.message));

  trainable[dt * 123_456 + 5] = 0;
  await writeSafetensors(file, { frozen: { dtype: 'F16', shape: [k, d], data: frozen }, trainable: { dtype: 'F32', shape: [k, dt], data: trainable } }, metadata);
  const clean = await readCodebook(file);
  const loaded = await clean.trainable.load();
  assert.deepEqual(loaded, { rows: k, cols: dt, data: trainable });
  assert.equal(await clean.trainable.load(), loaded); // read once

  // Once the file is replaced, a table not yet loaded is refused rather than read from the new file.
  const stale = await readCodebook(file);
  await writeSafetensors(file, { frozen: { dtype: 'F16', shape: [k, d], data: frozen } }, metadata);
  await assert.rejects(stale.trainable.load(), (e: Error) => e instanceof UserError && /changed on disk since it was opened/.test(e.message));
});

test('checkFinite finds every infinity and NaN, f32 and f16, wherever it sits (word-at-a-time test)', () => {
  const rows = 5, cols = 7, n = rows * cols; // odd: an f16 table ends in half a word
  const finite = Float32Array.from({ length: n }, (_, i) => (i % 2 ? -1 : 1) * (65504 - i)); // the largest halves too
  assert.doesNotThrow(() => checkFinite('cb', 'frozen', { rows, cols, data: finite }));
  assert.doesNotThrow(() => checkFinite('cb', 'frozen', { rows, cols, half: f32ToF16(finite) }));
  for (const bad of [Infinity, -Infinity, NaN]) {
    for (let i = 0; i < n; i++) {
      const data = finite.slice();
      data[i] = bad;
      const want = new RegExp(`cb: tensor 'frozen' row ${Math.floor(i / cols)} holds a non-finite value \\(${bad}\\)`);
      assert.throws(() => checkFinite('cb', 'frozen', { rows, cols, data }), want);
      // f16, also as a view starting half a word in (one more leading half outside the words)
      const half = f32ToF16(data);
      assert.throws(() => checkFinite('cb', 'frozen', { rows, cols, half }), want);
      const shifted = new Uint16Array(n + 1);
      shifted.set(half, 1);
      assert.throws(() => checkFinite('cb', 'frozen', { rows, cols, half: shifted.subarray(1) }), want);
    }
  }
});

test('the fingerprint of a codebook read from a file is hashed when first asked for, and is the frozen bytes\' hash', async (t) => {
  const file = path.join(await tempDir(t), 'cb.safetensors');
  const written = await writeCodebook(file, sampleCodebook(), { dtype: 'f16' });
  const back = await readCodebook(file);
  assert.equal(back.fingerprint, written);
  assert.equal(back.fingerprint, codebookFingerprint(back.frozen));
  assert.equal({ ...back }.fingerprint, written); // copies carry it as a plain value
});

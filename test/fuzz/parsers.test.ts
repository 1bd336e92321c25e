// Property tests of the parsers, on thousands of seeded mutations of valid files (test/helpers/
// mutate.ts): for every input, parsing either succeeds with results consistent with the input
// (shapes that match the data, sizes within the file, grids and descriptors within the limits)
// or throws a one-line UserError. Any other exception, or a result that claims more data than
// the file holds, fails the property and names the seed and case to replay.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { validateEncoderDescriptor, type EncoderDescriptor } from '../../extension/engine/embed/encoders/index.js';
import { decodeNpy, encodeNpy, parseNpyHeader, readNpy, readNpyHeader, type NpyArray, type NpyDtype } from '../../extension/engine/io/formats/npy.js';
import { encodeSafetensors, parseSafetensorsHeader, readSafetensors, type Tensor } from '../../extension/engine/io/formats/safetensors.js';
import { MAX_GRID_SIDE, MAX_INPUT_SIDE } from '../../extension/engine/core/limits.js';
import { checkTokensMatchCodebook, readTokenGrids, type TokenGrid } from '../../extension/engine/codebook/token-files.js';
import type { Codebook } from '../../extension/engine/codebook/codebook.js';
import { Mutator, type Json } from '../helpers/mutate.js';
import { parsedOrRefused } from './harness.js';

const SEED = 20250614;
let dir: string;
before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-props-'));
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const product = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

// ---------------------------------------------------------------------------------------------
// .npy

const NPY_DTYPES: { dtype: NpyDtype; make: (n: number) => NpyArray['data']; bytes: number; type: Function }[] = [
  { dtype: 'float32', make: (n) => new Float32Array(n).fill(0.5), bytes: 4, type: Float32Array },
  { dtype: 'float16', make: (n) => new Uint16Array(n).fill(0x3c00), bytes: 2, type: Uint16Array },
  { dtype: 'float64', make: (n) => new Float64Array(n).fill(2), bytes: 8, type: Float64Array },
  { dtype: 'int32', make: (n) => new Int32Array(n).fill(7), bytes: 4, type: Int32Array },
  { dtype: 'int64', make: (n) => new BigInt64Array(n).fill(3n), bytes: 8, type: BigInt64Array },
  { dtype: 'uint8', make: (n) => new Uint8Array(n).fill(9), bytes: 1, type: Uint8Array },
];

function validNpy(m: Mutator): Uint8Array {
  const info = m.pick(NPY_DTYPES);
  const shape = Array.from({ length: m.int(4) }, () => m.int(6));
  return encodeNpy({ dtype: info.dtype, shape, data: info.make(product(shape)) });
}

function checkNpy(a: NpyArray, fileSize: number, replay: string): void {
  const info = NPY_DTYPES.find((d) => d.dtype === a.dtype)!;
  assert.ok(a.data instanceof info.type, `${replay}: ${a.dtype} data in a ${a.data.constructor.name}`);
  assert.equal(a.data.length, product(a.shape), `${replay}: shape (${a.shape}) vs ${a.data.length} values`);
  assert.ok(a.data.byteLength <= fileSize, `${replay}: ${a.data.byteLength} data bytes from a ${fileSize}-byte file`);
}

test('npy: every mutated file parses consistently or is a one-line UserError (3,000 in memory, 300 from disk)', async () => {
  const m = new Mutator(SEED);
  let parsed = 0;
  for (let i = 0; i < 3000; i++) {
    const bytes = m.bytes(validNpy(m), 128);
    const replay = `npy seed ${SEED} case ${i}`;
    const header = await parsedOrRefused(() => parseNpyHeader(bytes, bytes.length, replay), replay);
    if (header) {
      assert.equal(header.dataBytes, product(header.shape) * NPY_DTYPES.find((d) => d.dtype === header.dtype)!.bytes, replay);
      assert.ok(header.dataOffset + header.dataBytes <= bytes.length, `${replay}: header announces data beyond the file`);
    }
    const array = await parsedOrRefused(() => decodeNpy(bytes, replay), replay);
    assert.equal(Boolean(array), Boolean(header), `${replay}: the header parser and the decoder disagree`);
    if (array) {
      checkNpy(array, bytes.length, replay);
      parsed++;
    }
    if (i % 10 === 0) {
      const file = path.join(dir, `case-${i}.npy`);
      await fs.writeFile(file, bytes);
      const fromDisk = await parsedOrRefused(() => readNpy(file), replay);
      assert.equal(Boolean(fromDisk), Boolean(array), `${replay}: readNpy and decodeNpy disagree`);
      if (fromDisk) {
        checkNpy(fromDisk, bytes.length, replay);
        assert.deepEqual(fromDisk.shape, array!.shape, replay);
        assert.deepEqual((await readNpyHeader(file)).shape, array!.shape, replay);
      }
      await fs.rm(file);
    }
  }
  // The mutations must leave both outcomes common, or the property tests nothing.
  assert.ok(parsed > 100 && parsed < 2900, `${parsed} of 3000 mutated files parsed`);
});

// ---------------------------------------------------------------------------------------------
// safetensors

function validSafetensors(m: Mutator): Uint8Array {
  const tensors: Record<string, Tensor> = {};
  for (let t = 1 + m.int(3); t > 0; t--) {
    const shape = Array.from({ length: 1 + m.int(2) }, () => m.int(5));
    const dtype = m.pick(['F32', 'F16', 'I64'] as const);
    const n = product(shape);
    tensors[`t${t}`] = { dtype, shape, data: dtype === 'F32' ? new Float32Array(n) : dtype === 'F16' ? new Uint16Array(n) : new BigInt64Array(n) };
  }
  return encodeSafetensors(tensors, m.chance(0.5) ? { k: '3', encoder: '{"kind":"dct"}' } : {});
}

const SAFETENSORS_BYTES: Record<string, number> = { F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2 };

test('safetensors: every mutated header and file parses consistently or is a one-line UserError (2,000 headers, 1,000 files)', async () => {
  const m = new Mutator(SEED + 1);
  let parsedHeaders = 0;
  for (let i = 0; i < 2000; i++) {
    const bytes = validSafetensors(m);
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const json = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength));
    const dataLength = bytes.length - 8 - headerLength + (m.chance(0.2) ? m.int(9) - 4 : 0);
    const mutated = m.chance(0.5) ? m.text(json) : JSON.stringify(m.json(JSON.parse(json) as Json));
    const replay = `safetensors header seed ${SEED + 1} case ${i}`;
    const header = await parsedOrRefused(() => parseSafetensorsHeader(mutated, Math.max(0, dataLength), replay), replay);
    if (!header) continue;
    parsedHeaders++;
    let cursor = 0;
    for (const [name, e] of [...header.entries].sort((a, b) => a[1].begin - b[1].begin)) {
      assert.equal(e.begin, cursor, `${replay}: tensor ${name} leaves a hole or overlaps`);
      assert.equal(e.end - e.begin, product(e.shape) * SAFETENSORS_BYTES[e.dtype]!, `${replay}: tensor ${name}`);
      cursor = e.end;
    }
    assert.equal(cursor, Math.max(0, dataLength), `${replay}: the tensors do not cover the data buffer`);
    assert.ok(Object.values(header.metadata).every((v) => typeof v === 'string'), replay);
  }
  assert.ok(parsedHeaders > 50 && parsedHeaders < 1950, `${parsedHeaders} of 2000 mutated headers parsed`);

  let parsedFiles = 0;
  for (let i = 0; i < 1000; i++) {
    const original = validSafetensors(m);
    // Most mutations hit the header; a third hit only the data, behind an intact header.
    const dataStart = 8 + Number(new DataView(original.buffer).getBigUint64(0, true));
    const bytes = m.chance(0.33) ? Buffer.concat([original.subarray(0, dataStart), m.bytes(original.subarray(dataStart))]) : m.bytes(original, 160);
    const replay = `safetensors file seed ${SEED + 1} case ${i}`;
    const file = path.join(dir, `case-${i}.safetensors`);
    await fs.writeFile(file, bytes);
    const st = await parsedOrRefused(() => readSafetensors(file), replay);
    await fs.rm(file);
    if (!st) continue;
    parsedFiles++;
    let total = 0;
    for (const [name, t] of Object.entries(st.tensors)) {
      assert.equal(t.data.length, product(t.shape), `${replay}: tensor ${name}`);
      total += t.data.byteLength;
    }
    assert.ok(total <= bytes.length, `${replay}: ${total} tensor bytes from a ${bytes.length}-byte file`);
  }
  assert.ok(parsedFiles > 100 && parsedFiles < 980, `${parsedFiles} of 1000 mutated files parsed`);
});

// ---------------------------------------------------------------------------------------------
// token JSON

function validTokens(m: Mutator): Json {
  const grid = (): Json => {
    const [h, w] = [1 + m.int(4), 1 + m.int(4)];
    return { image: `img-${m.int(9)}.png`, grid: [h, w], ids: Array.from({ length: h * w }, () => m.int(40)), codebook: 'abcdef0123456789', encoder: 'dct:224', device: 'cpu' };
  };
  return m.chance(0.5) ? grid() : { results: Array.from({ length: 1 + m.int(3) }, grid) };
}

test('token JSON: every mutated file reads as grids within the limits or is a one-line UserError (1,500 files)', async () => {
  const m = new Mutator(SEED + 2);
  const codebook = { fingerprint: 'abcdef0123456789', frozen: { rows: 32, cols: 1, data: new Float32Array(32) } } as unknown as Codebook;
  let read = 0;
  let matched = 0;
  for (let i = 0; i < 1500; i++) {
    const valid = validTokens(m);
    const text = m.chance(0.3) ? m.text(JSON.stringify(valid)) : JSON.stringify(m.json(valid));
    const replay = `tokens seed ${SEED + 2} case ${i}`;
    const file = path.join(dir, `case-${i}.json`);
    await fs.writeFile(file, text);
    const grids: TokenGrid[] | undefined = await parsedOrRefused(() => readTokenGrids(file), replay);
    await fs.rm(file);
    if (!grids) continue;
    read++;
    for (const g of grids) {
      const [h, w] = g.grid;
      assert.ok(Number.isInteger(h) && Number.isInteger(w) && h >= 1 && w >= 1 && h <= MAX_GRID_SIDE && w <= MAX_GRID_SIDE, `${replay}: grid ${JSON.stringify(g.grid)}`);
      assert.equal(g.ids.length, h * w, replay);
      assert.ok(g.ids.every((id) => Number.isSafeInteger(id)), `${replay}: ids ${JSON.stringify(g.ids).slice(0, 80)}`);
      for (const key of ['image', 'codebook', 'encoder', 'device'] as const) assert.equal(typeof g[key], 'string', `${replay}: ${key}`);
    }
    // The codebook check on what was read: passes only for ids in [0, 32) of this codebook.
    const fits = await parsedOrRefused(() => (checkTokensMatchCodebook(codebook, grids, replay), true), replay);
    if (fits) {
      matched++;
      assert.ok(grids.every((g) => (!g.codebook || g.codebook === codebook.fingerprint) && g.ids.every((id) => id >= 0 && id < 32)), replay);
    }
  }
  assert.ok(read > 100 && read < 1450, `${read} of 1500 mutated token files read`);
  assert.ok(matched > 20, `${matched} token files matched the codebook`);
});

// ---------------------------------------------------------------------------------------------
// encoder descriptors (a codebook's metadata)

test('encoder descriptors: every mutated descriptor validates within the limits or is a one-line UserError (3,000)', async () => {
  const m = new Mutator(SEED + 3);
  const bases: EncoderDescriptor[] = [
    { kind: 'dct', id: 'dct:224', patch: 16, inputSize: [224, 224], d: 768, resize: 'keep-aspect' },
    { kind: 'dct', id: 'dct:224:square', patch: 16, inputSize: [224, 224], d: 768, resize: 'stretch' },
    { kind: 'dct', id: 'dct:224', patch: 16, inputSize: [224, 224], d: 768 } as unknown as EncoderDescriptor, // written before keep-aspect
    { kind: 'onnx', id: '/models/siglip', patch: 14, inputSize: [224, 224], d: 1152, resize: 'stretch', preprocess: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], rescale: 1 / 255, resample: 'bicubic' } },
    { kind: 'onnx', id: 'external', patch: 0, inputSize: [0, 0], d: 64, resize: 'stretch' },
  ];
  let valid = 0;
  for (let i = 0; i < 3000; i++) {
    const replay = `descriptor seed ${SEED + 3} case ${i}`;
    let value = m.pick(bases) as unknown as Json;
    for (let n = 1 + m.int(2); n > 0; n--) value = m.json(value);
    const d = await parsedOrRefused(() => validateEncoderDescriptor(value, replay), replay);
    if (!d) continue;
    valid++;
    assert.ok(d.kind === 'dct' || d.kind === 'onnx', replay);
    assert.ok(typeof d.id === 'string' && d.id.length > 0, replay);
    assert.ok(Number.isSafeInteger(d.d) && d.d >= 1 && d.d <= 16_384, `${replay}: d ${d.d}`);
    if (d.id === 'external') continue;
    const [h, w] = d.inputSize;
    assert.ok(h >= 1 && w >= 1 && h <= MAX_INPUT_SIDE && w <= MAX_INPUT_SIDE, `${replay}: input ${h}x${w}`);
    assert.ok(d.patch >= 1 && h % d.patch === 0 && w % d.patch === 0 && h / d.patch <= MAX_GRID_SIDE && w / d.patch <= MAX_GRID_SIDE, `${replay}: patch ${d.patch}`);
    assert.ok(d.resize === 'stretch' || (d.resize === 'keep-aspect' && d.kind === 'dct'), `${replay}: resize ${d.resize}`);
    if (d.kind === 'dct') assert.ok(d.id === (d.resize === 'stretch' ? `dct:${h}:square` : `dct:${h}`) && h === w && d.patch === 16 && d.d === 768, `${replay}: ${JSON.stringify(d)}`);
  }
  assert.ok(valid > 100 && valid < 2900, `${valid} of 3000 mutated descriptors valid`);
});

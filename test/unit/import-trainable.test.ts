// `unicode2 codebook import-trainable`, run as a user would: codebooks built by the CLI, training
// checkpoints written with the project's safetensors writer under PyTorch's own tensor names (F32
// and BF16 beside other weights), the frozen half's bytes compared before and after, the drift
// measured, and every kind of bad input refused with one line and nothing written.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readCodebook } from '../../extension/engine/codebook/codebook.js';
import { readSafetensorsIndex, writeSafetensors, type Tensor } from '../../extension/engine/io/formats/safetensors.js';
import { writeNpy } from '../../extension/engine/io/formats/npy.js';
import { writeTokenJson } from '../../extension/engine/codebook/token-files.js';
import { seededRandom } from '../../extension/engine/core/sampling.js';
import { trainingDrift } from '../../extension/engine/search/inspect.js';
import { bf16ToF32, f16ToF32 } from '../../common/half.js';
import { rowsF32 } from '../../native-gpu/tables.js';
import { cliRunner } from '../helpers/cli.js';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import { openEncoder } from '../../extension/engine/embed/encoders/index.js';
import { refineAtlas } from '../../extension/engine/generate/atlas.js';

const ROOT = path.join(__dirname, '../..');
const K = 32;
const D = 16;
let dir: string;
/** K = 32, d = 16 codebooks built by the CLI from the same embeddings, stored as f32 and f16 */
let f32Book: string;
let f16Book: string;
const { cli, cliJson, assertUserError } = cliRunner(() => dir);

before(async () => {
  execFileSync(process.execPath, ['scripts/build.mjs', '--quiet'], { cwd: ROOT, stdio: 'inherit' });
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-import-'));
  const random = seededRandom(5);
  const embeddings = path.join(dir, 'emb.npy');
  await writeNpy(embeddings, { shape: [400, D], dtype: 'float32', data: Float32Array.from({ length: 400 * D }, () => random() - 0.5) });
  f32Book = path.join(dir, 'cb32.safetensors');
  f16Book = path.join(dir, 'cb16.safetensors');
  await cliJson(['build', '--embeddings', embeddings, '--k', String(K), '--iters', '3', '--out', f32Book]);
  await cliJson(['build', '--embeddings', embeddings, '--k', String(K), '--iters', '3', '--dtype', 'f16', '--out', f16Book]);
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** The raw bytes of one tensor as stored in a safetensors file. */
async function tensorBytes(file: string, name: string): Promise<Buffer> {
  const info = (await readSafetensorsIndex(file)).tensors.get(name)!;
  return (await fs.readFile(file)).subarray(info.begin, info.end);
}

const sha = async (file: string) => createHash('sha256').update(await fs.readFile(file)).digest('hex');

/** Values every format stores exactly (f16, bf16, f32): multiples of 1/64 below 4 in magnitude. */
function exactValues(n: number, seed: number): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length: n }, () => Math.round((random() - 0.5) * 256) / 64);
}

/** bfloat16 bits of values that bfloat16 holds exactly: the top half of their f32 bits. */
function toBf16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer.slice(0));
  return Uint16Array.from(bits, (b) => {
    assert.equal(b & 0xffff, 0, 'the test values are exact in bfloat16');
    return b >>> 16;
  });
}

/** A checkpoint as a training run saves one: the cascade's tensors beside the model's other weights. */
async function checkpoint(name: string, tensors: Record<string, Tensor>): Promise<string> {
  const file = path.join(dir, name);
  await writeSafetensors(file, {
    'model.gpt.tok_embeddings.weight': { dtype: 'F32', shape: [40, 8], data: new Float32Array(320) },
    'model.gpt.layers.0.attention.wq.weight': { dtype: 'F32', shape: [8, 8], data: new Float32Array(64) },
    ...tensors,
  });
  return file;
}

test('bfloat16 bits decode exactly to their f32 values', () => {
  const values = Float32Array.of(0, -0, 1, -2.5, 3.140625, 2 ** -100, -65536, Infinity);
  assert.deepEqual(bf16ToF32(toBf16(values)), values);
  assert.ok(Number.isNaN(bf16ToF32(Uint16Array.of(0x7fc0))[0]));
});

test('import-trainable writes an F32 trainable and projector under PyTorch names; frozen keeps its bytes; drift is each row\'s move', async () => {
  const book = path.join(dir, 'a.safetensors');
  await fs.copyFile(f32Book, book);
  const before = await readCodebook(book);
  const frozenBytes = await tensorBytes(book, 'frozen');
  const frozen = rowsF32(before.frozen, 0, K);
  // trained rows: frozen moved by a known amount per code (code c moves by c/8 along one axis)
  const trained = Float32Array.from(frozen);
  for (let c = 0; c < K; c++) trained[c * D + (c % D)]! += c / 8;
  const projector = exactValues(D * 12, 2);
  const ckpt = await checkpoint('ckpt.safetensors', {
    'model.vq.trainable.weight': { dtype: 'F32', shape: [K, D], data: trained },
    'model.vq.proj.weight_t': { dtype: 'F32', shape: [D, 12], data: projector },
  });
  const s = await cliJson(['codebook', 'import-trainable', '--from', ckpt, '--tensor', 'model.vq.trainable.weight', '--projector', 'model.vq.proj.weight_t', '--codebook', book]);
  assert.deepEqual([s.trainable, s.projector, s.projectorSource, s.dtypes, s.atlas], [[K, D], [D, 12], 'imported', { trainable: 'F32', projector: 'F32' }, 'trained']);
  assert.equal(s.fingerprint, before.fingerprint, 'the fingerprint is of frozen, which did not change');
  assert.ok(Math.abs(s.drift.max - (K - 1) / 8) < 1e-6 && Math.abs(s.drift.mean - (K - 1) / 16) < 1e-6, JSON.stringify(s.drift));

  assert.deepEqual(await tensorBytes(book, 'frozen'), frozenBytes, 'frozen byte for byte');
  const after = await readCodebook(book);
  assert.equal(after.fingerprint, before.fingerprint);
  assert.deepEqual(after.counts, before.counts);
  assert.deepEqual(Array.from(rowsF32(await after.trainable.load(), 0, K)), Array.from(trained));
  assert.deepEqual(Array.from(after.projector!.data), Array.from(projector));
  assert.equal(after.meta.atlas, 'trained');
  const { distances } = await trainingDrift(after);
  assert.deepEqual(Array.from(distances!, (x) => Math.round(x * 1e6) / 1e6), Array.from({ length: K }, (_, c) => c / 8));
  // refining would overwrite the trained rows: refused
  const backend = await createCpuBackend();
  const dct = await openEncoder('dct', backend);
  try {
    await assert.rejects(refineAtlas(after, dct, [path.join(ROOT, 'test/fixtures/images/chelsea.png')], backend), /trained task embeddings \(codebook import-trainable\): refining would replace them/);
  } finally {
    await dct.dispose();
    await backend.dispose();
  }
  // the atlas decoder refuses trained embeddings by name
  const tokens = path.join(dir, 't.json');
  await writeTokenJson(tokens, [{ image: 'x.png', grid: [1, 2], ids: [0, 1], codebook: before.fingerprint, encoder: before.meta.encoder.id, device: 'cpu' }]);
  await assertUserError(['decode', '--codebook', book, '--tokens', tokens, '--out', path.join(dir, 'x.png'), '--device', 'cpu'], /trained task embeddings, not pixel patches/);
});

test('BF16 of another width into an f16 codebook, in place and to --out; the projector must follow the width', async () => {
  const book = path.join(dir, 'b.safetensors');
  await fs.copyFile(f16Book, book);
  const frozenBytes = await tensorBytes(book, 'frozen');
  const fingerprint = (await readCodebook(book)).fingerprint;
  const W = 24;
  const trained = exactValues(K * W, 3);
  const projector = exactValues(W * 4, 4);
  const ckpt = await checkpoint('bf16.safetensors', {
    'vq.trainable.weight': { dtype: 'BF16', shape: [K, W], data: toBf16(trained) },
    'vq.projector': { dtype: 'BF16', shape: [W, 4], data: toBf16(projector) },
  });
  const out = path.join(dir, 'b-out.safetensors');
  const s = await cliJson(['codebook', 'import-trainable', '--from', ckpt, '--tensor', 'vq.trainable.weight', '--projector', 'vq.projector', '--codebook', book, '--out', out]);
  assert.deepEqual([s.trainable, s.projector, s.dtypes, s.drift], [[K, W], [W, 4], { trainable: 'BF16', projector: 'BF16' }, null]);
  assert.match(s.driftNote, /different spaces/);
  assert.deepEqual(await tensorBytes(out, 'frozen'), frozenBytes, 'f16 frozen byte for byte');
  const read = await readCodebook(out);
  assert.equal(read.fingerprint, fingerprint);
  const t = await read.trainable.load();
  assert.ok('half' in t, 'an f16 codebook stores its trainable half as f16');
  assert.deepEqual(Array.from(f16ToF32((t as { half: Uint16Array }).half)), Array.from(trained));
  assert.deepEqual(Array.from(read.projector!.data), Array.from(projector));

  // importing again without --projector keeps it (same width) ...
  const kept = await cliJson(['codebook', 'import-trainable', '--from', ckpt, '--tensor', 'vq.trainable.weight', '--codebook', out]);
  assert.equal(kept.projectorSource, 'kept');
  // ... but a trainable of yet another width cannot keep a projector made for 24-value rows
  const narrow = await checkpoint('narrow.safetensors', { t: { dtype: 'F32', shape: [K, 8], data: exactValues(K * 8, 5) } });
  const unchanged = await sha(out);
  await assertUserError(['codebook', 'import-trainable', '--from', narrow, '--tensor', 't', '--codebook', out], /projector takes rows of 24 values but 't' has 8; name the checkpoint's projector with --projector/);
  assert.equal(await sha(out), unchanged);
});

test('bad checkpoints are refused with one line, exit 2, and the codebook untouched', async () => {
  const book = path.join(dir, 'c.safetensors');
  await fs.copyFile(f32Book, book);
  const nan = exactValues(K * D, 6);
  nan[5 * D + 3] = NaN;
  const huge = path.join(dir, 'huge.safetensors');
  const head = Buffer.alloc(16);
  head.writeBigUInt64LE(2n ** 40n, 0);
  await fs.writeFile(huge, head);
  const text = path.join(dir, 'notes.safetensors');
  await fs.writeFile(text, 'this is a training log, not a checkpoint');
  const cases: [string, Record<string, Tensor> | string, RegExp, string[]?][] = [
    ['wrongk', { w: { dtype: 'F32', shape: [K + 1, D], data: new Float32Array((K + 1) * D) } }, /tensor 'w' has 33 rows but the codebook has K = 32 codes/],
    ['missing', { other: { dtype: 'F32', shape: [K, D], data: new Float32Array(K * D) } }, /no tensor 'w' \(the trainable codebook\); it holds model\.gpt\.layers\.0\.attention\.wq\.weight, model\.gpt\.tok_embeddings\.weight, other/],
    ['nan', { w: { dtype: 'F32', shape: [K, D], data: nan } }, /tensor 'w' row 5 holds a non-finite value \(NaN\)/],
    ['int', { w: { dtype: 'I64', shape: [K, D], data: new BigInt64Array(K * D) } }, /tensor 'w' \(the trainable codebook\) has dtype I64; expected F32, F16, BF16/],
    ['flat', { w: { dtype: 'F32', shape: [K * D], data: new Float32Array(K * D) } }, /must be 2-D, found shape \[512\]/],
    ['proj', { w: { dtype: 'F32', shape: [K, D], data: new Float32Array(K * D) }, p: { dtype: 'F32', shape: [12, D], data: new Float32Array(12 * D) } }, /projector 'p' is \[12, 16\] but the trainable rows have 16 values \(expected \[16, c\]/, ['--projector', 'p']],
    ['huge', huge, /not a safetensors file \(header length 1099511627776 does not fit a 16-byte file\)/],
    ['text', text, /not a safetensors file/],
    ['absent', path.join(dir, 'absent.safetensors'), /absent\.safetensors: cannot read a safetensors file: no such file/],
  ];
  const unchanged = await sha(book);
  for (const [name, content, pattern, extra = []] of cases) {
    const ckpt = typeof content === 'string' ? content : await checkpoint(`${name}.safetensors`, content);
    await assertUserError(['codebook', 'import-trainable', '--from', ckpt, '--tensor', 'w', '--codebook', book, ...extra], pattern);
    assert.equal(await sha(book), unchanged, `${name}: the codebook is unchanged`);
  }
  assert.deepEqual((await fs.readdir(dir)).filter((f) => f.endsWith('.tmp') || f.endsWith('.lock')), [], 'no temp or lock files left');
  const r = await cli(['codebook']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /import-trainable/);
  const help = await cli(['codebook', 'import-trainable', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^usage: unicode2 codebook import-trainable/);
  assert.ok(['--from', '--tensor', '--projector', '--codebook', '--out', '--json'].every((o) => help.stdout.includes(o)), help.stdout);
});

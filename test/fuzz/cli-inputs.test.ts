// Hostile input through the real CLI: malformed .npy, safetensors, token files, ONNX models,
// images and folders, and outputs the file system refuses. Each is built here in a temp folder
// and run through `node dist/cli.js` under the harness's memory ceiling and time limit; each must
// end in exit 2 with exactly one stderr line that says what was wrong, never an internal error,
// a crash, a hang or a memory blow-up. Where the input is odd but valid, the run must succeed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { readSafetensors, writeSafetensors } from '../../extension/engine/io/formats/safetensors.js';
import { encodeNpy } from '../../extension/engine/io/formats/npy.js';
import { GraphBuilder } from '../../native-gpu/cpu/onnx-graph.js';
import { dctVisionTower, siglipConfig, writeModelFolder } from '../helpers/siglip-model.js';
import { assertBounded, assertRefused, IMAGES, largestPeak, ROOT, runCli, tempDir } from './harness.js';
import { greyPng, mkfifo, npyBytes, npyHeader, sparseFile, writeBombPng } from './hostile.js';

const PHOTO = path.join(IMAGES, 'astronaut.jpg');
let dir: string;
/** K = 32 DCT codebook built from the fixture photos */
let codebook: string;
let fingerprint: string;

before(async () => {
  execFileSync(process.execPath, ['scripts/build.mjs', '--quiet'], { cwd: ROOT, stdio: 'inherit' });
  dir = await tempDir('inputs');
  await fs.chmod(dir, 0o755); // the permission test runs the CLI as nobody, who must reach the codebook
  codebook = path.join(dir, 'cb.safetensors');
  const r = await runCli(['build', '--images', IMAGES, '--k', '32', '--iters', '3', '--out', codebook, '--json', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  fingerprint = JSON.parse(r.stdout).fingerprint;
});
after(async () => {
  console.log(`largest peak RSS of a run: ${largestPeak.mb.toFixed(0)} MB (${largestPeak.label})`);
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

async function file(name: string, bytes: Uint8Array | string): Promise<string> {
  const target = path.join(dir, name);
  await fs.mkdir(path.dirname(target), { recursive: true });
  await fs.writeFile(target, bytes);
  return target;
}

function fifo(name: string): string {
  const target = path.join(dir, name);
  mkfifo(target);
  return target;
}

async function folder(name: string): Promise<string> {
  const target = path.join(dir, name);
  await fs.mkdir(target, { recursive: true });
  return target;
}

async function refused(args: string[], pattern: RegExp): Promise<void> {
  assertRefused(await runCli([...args, '--quiet']), pattern, args.join(' '));
}

const out = () => path.join(dir, 'never-written.out');

// ---------------------------------------------------------------------------------------------
// .npy: through search --queries, build --embeddings, and a folder of corpus shards

/** Runs a hostile .npy through every reader of embeddings: search, build, and as a shard. */
async function refusedAsEmbeddings(name: string, bytes: Uint8Array, pattern: RegExp): Promise<void> {
  const npy = await file(`${name}.npy`, bytes);
  const shards = await folder(`${name}-shards`);
  await fs.writeFile(path.join(shards, 'shard-00000.npy'), encodeNpy({ shape: [4, 768], dtype: 'float32', data: new Float32Array(4 * 768) }));
  await fs.copyFile(npy, path.join(shards, 'shard-00001.npy'));
  await refused(['search', '--codebook', codebook, '--queries', npy, '--out', out()], pattern);
  await refused(['build', '--embeddings', npy, '--k', '2', '--out', out()], pattern);
  await refused(['build', '--embeddings', shards, '--k', '2', '--out', out()], pattern);
}

const f4 = (shape: string) => npyHeader('<f4', shape);

test('npy: a v2 header length >= 2^31 (aborted Node) is refused from the length field', async () => {
  await refusedAsEmbeddings('v2-2g', npyBytes(f4('(2, 768)'), { major: 2, headerLength: 2 ** 31 }), /\.npy header length 2147483648 exceeds the limit of 1048576 bytes/);
  await refusedAsEmbeddings('v3-4g', npyBytes(f4('(2, 768)'), { major: 3, headerLength: 2 ** 32 - 1 }), /\.npy header length 4294967295 exceeds the limit/);
});

test('npy: a header claiming a huge shape is checked against the file size before anything is allocated', async () => {
  await refusedAsEmbeddings('huge', npyBytes(f4('(100000, 100000)')), /truncated \.npy file \(shape \(100000, 100000\) of <f4 needs more than the 0 data bytes the file has\)/);
  await refusedAsEmbeddings('overflow', npyBytes(f4('(4611686018427387904, 4611686018427387904)')), /truncated \.npy file/);
  await refusedAsEmbeddings('cut-data', npyBytes(f4('(10, 768)'), { data: new Uint8Array(100) }), /truncated \.npy file/);
  await refusedAsEmbeddings('cut-header', npyBytes(f4('(10, 768)'), { headerLength: 500 }).subarray(0, 80), /truncated \.npy header \(500 bytes announced, the file has \d+\)/);
});

test('npy: files that are not .npy, or not arrays this program reads, are named as such', async () => {
  await refusedAsEmbeddings('empty', new Uint8Array(0), /not a NumPy \.npy file/);
  await refusedAsEmbeddings('png', greyPng(4, 4), /not a NumPy \.npy file/);
  await refusedAsEmbeddings('hex', npyBytes(f4('(0x10, 768)')), /bad shape \(0x10, 768\)/);
  await refusedAsEmbeddings('negative', npyBytes(f4('(-1, 768)')), /bad shape/);
  await refusedAsEmbeddings('object', npyBytes(npyHeader('|O', '(2, 768)')), /unsupported dtype '\|O'/);
  await refusedAsEmbeddings('garbage', npyBytes('\x00\xff{{{(((\n'), /malformed \.npy header/);
  await refusedAsEmbeddings('version9', (() => { const b = npyBytes(f4('(1, 768)')); b[6] = 9; return b; })(), /unsupported \.npy format version 9\.0/);
  await refusedAsEmbeddings('ints', encodeNpy({ shape: [2, 768], dtype: 'int32', data: new Int32Array(2 * 768) }), /expected float embeddings/);
});

test('npy: a FIFO or a folder where a .npy should be is refused by type, without blocking', async () => {
  const pipe = fifo('pipe.npy');
  await refused(['search', '--codebook', codebook, '--queries', pipe, '--out', out()], /pipe\.npy: expected a \.npy file \(a regular file\), found a named pipe \(FIFO\)$/);
  await refused(['build', '--embeddings', pipe, '--k', '2', '--out', out()], /found a named pipe \(FIFO\)$/);
  const shards = await folder('fifo-shards');
  mkfifo(path.join(shards, 'shard-00000.npy'));
  await refused(['build', '--embeddings', shards, '--k', '2', '--out', out()], /shard-00000\.npy: expected a \.npy file \(a regular file\), found a named pipe/);
  const nested = await folder('dir-shards');
  await fs.mkdir(path.join(nested, 'shard-00000.npy'));
  await refused(['build', '--embeddings', nested, '--k', '2', '--out', out()], /shard-00000\.npy: expected a \.npy file \(a regular file\), found a folder$/);
  await refused(['build', '--embeddings', await folder('no-npy'), '--k', '2', '--out', out()], /folder holds no \.npy files/);
});

// ---------------------------------------------------------------------------------------------
// safetensors codebooks: through tokenize, decode and stats

/** The fixture codebook with its metadata (or tensors) changed, written under `name`. */
async function alteredCodebook(name: string, change: (meta: Record<string, string>) => void): Promise<string> {
  const { tensors, metadata } = await readSafetensors(codebook);
  change(metadata);
  const target = path.join(dir, name);
  await writeSafetensors(target, tensors, metadata);
  return target;
}

async function refusedAsCodebook(cb: string, pattern: RegExp): Promise<void> {
  await refused(['tokenize', '--codebook', cb, PHOTO], pattern);
  await refused(['decode', '--codebook', cb, '--tokens', path.join(dir, 'any.json'), '--out', out()], pattern);
  await refused(['stats', '--codebook', cb, '--images', PHOTO], pattern);
}

test('safetensors: truncated, lying or non-JSON headers are refused before the data is read', async () => {
  const bytes = await fs.readFile(codebook);
  await refusedAsCodebook(await file('half.safetensors', bytes.subarray(0, bytes.length >> 1)), /does not match its data_offsets|does not fit|cover/);
  await refusedAsCodebook(await file('empty.safetensors', ''), /not a safetensors file \(0 bytes/);
  const huge = Buffer.from(bytes);
  huge.writeBigUInt64LE(2n ** 63n, 0);
  await refusedAsCodebook(await file('huge-header.safetensors', huge), /header length 9223372036854775808 does not fit/);
  const notJson = Buffer.alloc(24, 0x20);
  notJson.writeBigUInt64LE(16n, 0);
  notJson.write('{"frozen": nope', 8);
  await refusedAsCodebook(await file('not-json.safetensors', notJson), /header is not JSON/);
  const header = JSON.stringify({ frozen: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 4] } });
  const lie = Buffer.alloc(8 + header.length + 4);
  lie.writeBigUInt64LE(BigInt(header.length), 0);
  lie.write(header, 8);
  await refusedAsCodebook(await file('shape-lie.safetensors', lie), /tensor 'frozen' \(F32 \[1099511627776, 1099511627776\]\) does not match its data_offsets \[0, 4\]/);
});

test('safetensors: a broken encoder descriptor in the metadata is refused by the one validator', async () => {
  const encoder = (change: (e: Record<string, unknown>) => void) => (meta: Record<string, string>) => {
    const e = JSON.parse(meta.encoder!);
    change(e);
    meta.encoder = JSON.stringify(e);
  };
  await refusedAsCodebook(await alteredCodebook('no-fields.safetensors', (m) => (m.encoder = '{"kind":"dct"}')), /invalid encoder descriptor: 'id' must be a non-empty string, found undefined/);
  await refusedAsCodebook(await alteredCodebook('dct-path.safetensors', encoder((e) => (e.id = codebook))), /invalid encoder descriptor: a 'keep-aspect' 'dct' encoder is id 'dct:224'/);
  await refusedAsCodebook(
    await alteredCodebook('dct-65536.safetensors', encoder((e) => Object.assign(e, { id: 'dct:65536', inputSize: [65536, 65536] }))),
    /encoder 'dct:65536': input size 65536x65536 exceeds the limit of 1024 x 1024 pixels/,
  );
  await refusedAsCodebook(
    await alteredCodebook('onnx-50000.safetensors', encoder((e) => Object.assign(e, { kind: 'onnx', id: '/models/vit', inputSize: [50000, 50000] }))),
    /input size 50000x50000 exceeds the limit of 1024 x 1024 pixels/,
  );
  await refusedAsCodebook(await alteredCodebook('bad-std.safetensors', encoder((e) => (e.preprocess = { mean: [0, 0, 0], std: [1, 0, 1], rescale: 1, resample: 'bicubic' }))), /'std' must be 3 finite non-zero numbers/);
  await refusedAsCodebook(await alteredCodebook('k-lie.safetensors', (m) => (m.k = '33')), /tensor 'frozen' is \[32, 768\] but the metadata says k = 33/);
  await refusedAsCodebook(await alteredCodebook('atlas.safetensors', (m) => (m.atlas = '"pixels"')), /metadata 'atlas' must be one of dct, refined, none/);
});

test('safetensors: a FIFO or a folder as the codebook is refused by type, without blocking', async () => {
  await refusedAsCodebook(fifo('pipe.safetensors'), /pipe\.safetensors: expected a safetensors file \(a regular file\), found a named pipe \(FIFO\)$/);
  await refusedAsCodebook(await folder('folder.safetensors'), /folder\.safetensors: expected a safetensors file \(a regular file\), found a folder$/);
});

// ---------------------------------------------------------------------------------------------
// token files: through decode and stats --tokens

async function refusedAsTokens(tokens: string, pattern: RegExp): Promise<void> {
  await refused(['decode', '--codebook', codebook, '--tokens', tokens, '--out', out()], pattern);
  await refused(['stats', '--codebook', codebook, '--tokens', tokens], pattern);
}

test('tokens: grids beyond 128 x 128 are refused before anything is allocated for them (13.7 GB before)', async () => {
  // 12 MB of JSON: a [2000, 2000] grid with all its 4,000,000 ids.
  const big = await file('grid-2000.json', `{"grid":[2000,2000],"ids":[${'1,'.repeat(3_999_999)}1]}`);
  await refusedAsTokens(big, /grid \[2000, 2000\] exceeds the limit of 128 x 128 tokens$/);
  const long = await file('grid-1x200000.json', JSON.stringify({ grid: [1, 200_000], ids: new Array(200_000).fill(3) }));
  await refusedAsTokens(long, /grid \[1, 200000\] exceeds the limit of 128 x 128 tokens$/);
});

test('tokens: ids outside the codebook, other codebooks and malformed grids are refused', async () => {
  const grid = (over: Record<string, unknown>) => JSON.stringify({ image: 'x.png', grid: [2, 2], ids: [0, 1, 2, 3], codebook: fingerprint, ...over });
  await refusedAsTokens(await file('id-32.json', grid({ ids: [0, 1, 2, 32] })), /token id 32 at position 3 is outside the codebook \(ids run from 0 to 31\)/);
  await refusedAsTokens(await file('id-neg.json', grid({ ids: [0, -1, 2, 3] })), /token id -1 at position 1 is outside the codebook/);
  await refusedAsTokens(await file('id-frac.json', grid({ ids: [0, 1.5, 2, 3] })), /token id 1\.5 is not a whole number/);
  await refusedAsTokens(await file('id-str.json', grid({ ids: [0, '1', 2, 3] })), /token id "1" is not a whole number/);
  await refusedAsTokens(await file('other-cb.json', grid({ codebook: '0123456789abcdef' })), /made with codebook 0123456789abcdef, not with this codebook/);
  await refusedAsTokens(await file('short.json', grid({ ids: [0, 1, 2] })), /grid \[2, 2\] does not match 3 ids/);
  await refusedAsTokens(await file('zero-grid.json', grid({ grid: [0, 4], ids: [] })), /grid \[0,4\] is not \[height, width\] in whole tokens/);
  await refusedAsTokens(await file('not-json.json', '{"grid": [2, 2], "ids": [0, 1,'), /tokens file is not valid JSON/);
  await refusedAsTokens(await file('null.json', 'null'), /is not a tokenize output/);
  await refusedAsTokens(await file('results-5.json', '{"results": 5}'), /is not a tokenize output/);
  await refusedAsTokens(await file('image-number.json', grid({ image: 7 })), /"image" must be a string, found 7/);
});

test('tokens: a .npy data set without its index, with a foreign data file, or of floats is refused', async () => {
  const dataset = path.join(dir, 'set.npy');
  const r = await runCli(['tokenize', '--codebook', codebook, PHOTO, path.join(IMAGES, 'coffee.jpg'), '--out', dataset, '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  const alone = await file('alone.npy', await fs.readFile(dataset));
  await refusedAsTokens(alone, /alone\.npy\.index\.json: cannot read the token data set's index: no such file or folder/);
  const foreign = path.join(dir, 'foreign.npy');
  await fs.copyFile(`${dataset}.index.json`, `${foreign}.index.json`);
  const swapped = encodeNpy({ shape: [2, 196], dtype: 'int32', data: new Int32Array(2 * 196).fill(5) });
  await fs.writeFile(foreign, swapped);
  await refusedAsTokens(foreign, /foreign\.npy does not belong to its index foreign\.npy\.index\.json \(/);
  const floats = path.join(dir, 'floats.npy');
  await fs.writeFile(floats, encodeNpy({ shape: [2, 196], dtype: 'float32', data: new Float32Array(2 * 196) }));
  const { dataBytes: _b, dataSha256: _s, ...legacy } = JSON.parse(await fs.readFile(`${dataset}.index.json`, 'utf8'));
  await fs.writeFile(`${floats}.index.json`, JSON.stringify(legacy));
  await refusedAsTokens(floats, /is not a token data set: expected int32 \[N, L\], found float32/);
});

test('tokens: a FIFO, a folder or an oversized file as the tokens file is refused without reading it', async () => {
  await refusedAsTokens(fifo('pipe.json'), /pipe\.json: expected tokens file \(a regular file\), found a named pipe \(FIFO\)$/);
  await refusedAsTokens(await folder('folder.json'), /folder\.json: expected tokens file \(a regular file\), found a folder$/);
  const sparse = path.join(dir, 'huge.json');
  await sparseFile(sparse, 300 * 2 ** 20, '{"grid": [1, 1], "ids": [0]}');
  await refusedAsTokens(sparse, /huge\.json: tokens file is 314572800 bytes; the limit is 268435456 bytes \(256 MiB\)/);
});

// ---------------------------------------------------------------------------------------------
// ONNX encoders: through embed --encoder

async function refusedAsEncoder(encoder: string, pattern: RegExp): Promise<void> {
  await refused(['embed', PHOTO, '--encoder', encoder, '--out', out()], pattern);
}

/** A tiny model with the given input; its output is the input reshaped to `reshape` (0 keeps a
 *  dimension, -1 takes the rest), then optionally broadcast to `d` values per token. */
function shapedModel(input: (number | string)[], reshape: number[], d?: number, inputName = 'pixel_values', type: 'float32' | 'int64' = 'float32'): Uint8Array {
  const g = new GraphBuilder('shaped');
  g.input(inputName, type, input);
  g.initializer('shape', { type: 'int64', dims: [reshape.length], data: BigInt64Array.from(reshape, BigInt) });
  g.node('Reshape', [inputName, 'shape'], [d ? 'tokens' : 'last_hidden_state']);
  if (d) {
    g.node('ReduceMean', ['tokens'], ['mean'], { axes: [2], keepdims: 1 });
    g.initializer('wide', { type: 'int64', dims: [3], data: BigInt64Array.of(1n, 1n, BigInt(d)) });
    g.node('Expand', ['mean', 'wide'], ['last_hidden_state']);
  }
  g.output('last_hidden_state', type, reshape.map((_, i) => (i === 2 && d ? d : `dim${i}`)));
  return g.toModel();
}

test('onnx: truncated or non-ONNX files and models that are not vision towers are named as such', async () => {
  const tower = dctVisionTower({ size: 64 });
  await refusedAsEncoder(await file('cut.onnx', tower.subarray(0, tower.length >> 1)), /cut\.onnx: cannot load ONNX model/);
  await refusedAsEncoder(await file('text.onnx', 'not a model at all'), /text\.onnx: cannot load ONNX model/);
  await refusedAsEncoder(await file('ids.onnx', shapedModel(['B', 16], [0, 16], undefined, 'input_ids', 'int64')), /expected input 'pixel_values' \[B,3,H,W\] float32 or float16, found 'input_ids' \[B,16\] int64/);
  await refusedAsEncoder(await file('rank2.onnx', shapedModel(['B', 3, 224, 224], [0, -1])), /expected output 'last_hidden_state' \[B,L,d\] float32 or float16/);
});

test('onnx: huge fixed input sizes, batch sizes and embedding sizes are refused before anything runs', async () => {
  await refusedAsEncoder(await file('hw-50000.onnx', shapedModel([1, 3, 50_000, 50_000], [0, -1, 768])), /hw-50000\.onnx: input size 50000x50000 exceeds the limit of 1024 x 1024 pixels/);
  await refusedAsEncoder(await file('batch.onnx', shapedModel([100_000, 3, 224, 224], [0, -1, 768])), /fixed batch size 100000 exceeds the limit of 64 images/);
  await refusedAsEncoder(await file('wide.onnx', shapedModel(['B', 3, 224, 224], [0, 196, -1], 10_000_000)), /embedding size d = 10000000 exceeds the limit of 16384/);
  const hf = await writeModelFolder(path.join(dir, 'hf-50000'), dctVisionTower({ size: 64, dynamicSize: true }), siglipConfig({ size: { height: 50_000, width: 50_000 } }));
  await refusedAsEncoder(hf, /preprocessor_config\.json: input size 50000x50000 exceeds the limit of 1024 x 1024 pixels/);
  await refusedAsEncoder('dct:65536', /encoder 'dct:65536': input size 65536x65536 exceeds the limit of 1024 x 1024 pixels/);
  await refusedAsEncoder('dct:0', /the DCT input size must be a positive multiple of 16/);
  await refusedAsEncoder('dct:1e3', /the DCT input size must be a positive multiple of 16/);
});

test('onnx: a FIFO or folder where the model or its preprocessor config should be is refused by type', async () => {
  await refusedAsEncoder(fifo('pipe.onnx'), /pipe\.onnx: expected an ONNX model \(a regular file\), found a named pipe \(FIFO\)$/);
  const withDir = await folder('model-is-dir');
  await fs.mkdir(path.join(withDir, 'model.onnx'));
  await refusedAsEncoder(withDir, /model\.onnx: expected an ONNX model \(a regular file\), found a folder$/);
  const withFifo = await writeModelFolder(path.join(dir, 'config-fifo'), dctVisionTower({ size: 64 }));
  mkfifo(path.join(withFifo, 'preprocessor_config.json'));
  await refusedAsEncoder(withFifo, /preprocessor_config\.json: expected preprocessor config \(a regular file\), found a named pipe \(FIFO\)$/);
});

// ---------------------------------------------------------------------------------------------
// images and folders: through tokenize and build

test('images: truncated, empty, non-image and bomb files are refused, the bomb from its header', async () => {
  const png = await fs.readFile(path.join(IMAGES, 'chelsea.png'));
  await refused(['tokenize', '--codebook', codebook, await file('cut.png', png.subarray(0, png.length >> 1))], /cut\.png: cannot read image/);
  await refused(['tokenize', '--codebook', codebook, await file('zero.png', '')], /zero\.png: cannot read image/);
  await refused(['tokenize', '--codebook', codebook, await file('text.jpg', 'just some text')], /text\.jpg: cannot read image/);
  const bomb = path.join(dir, 'bomb.png');
  await writeBombPng(bomb, 16_000, 16_000);
  assert.ok((await fs.stat(bomb)).size < 2 ** 20, 'the bomb is small on disk');
  await refused(['tokenize', '--codebook', codebook, bomb], /bomb\.png: image is larger than the 100-megapixel limit; downscale it first/);
  await refused(['tokenize', '--codebook', codebook, fifo('pipe.png')], /pipe\.png: expected an image file \(a regular file\), found a named pipe \(FIFO\)$/);
  await refused(['tokenize', '--codebook', codebook, await folder('empty.png')], /no images found in .*empty\.png/);
});

test('images: a 10000 x 1 image is valid: centre-cropped to 4:1 (the long side\'s cap) and tokenized, in bounded memory', async () => {
  const strip = await file('strip.png', greyPng(10_000, 1, 200));
  const r = await runCli(['tokenize', '--codebook', codebook, strip, '--json', '--quiet']);
  assertBounded(r, 'tokenize strip.png');
  assert.equal(r.code, 0, r.stderr);
  const [grid] = JSON.parse(r.stdout).results;
  assert.deepEqual(grid.grid, [14, 56]); // 224 x 896
  assert.equal(grid.image, strip);
});

test('folders: symlink loops finish, and every real image is listed and trained on once', async () => {
  const root = await folder('loops');
  await fs.mkdir(path.join(root, 'a/b'), { recursive: true });
  await fs.copyFile(PHOTO, path.join(root, 'a/astronaut.jpg'));
  await fs.copyFile(path.join(IMAGES, 'coffee.jpg'), path.join(root, 'a/b/coffee.jpg'));
  await fs.symlink('..', path.join(root, 'a/b/up')); // loop one
  await fs.symlink(path.join(root, 'a'), path.join(root, 'a/b/again')); // loop two
  await fs.symlink('../../a', path.join(root, 'a/b/up/b/sideways')); // a third through the first
  const r = await runCli(['tokenize', '--codebook', codebook, root, '--json', '--quiet']);
  assertBounded(r, 'tokenize loops');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).results.map((g: { image: string }) => g.image), [path.join(root, 'a/astronaut.jpg'), path.join(root, 'a/b/coffee.jpg')]);
  const cb = path.join(dir, 'loops.safetensors');
  const b = await runCli(['build', '--images', root, '--k', '4', '--iters', '2', '--out', cb, '--json', '--quiet']);
  assertBounded(b, 'build loops');
  assert.equal(b.code, 0, b.stderr);
  const { tensors } = await readSafetensors(cb);
  const counts = Array.from(tensors.counts!.data as BigInt64Array, Number);
  assert.equal(counts.reduce((x, y) => x + y, 0), 14 * 14 + 14 * 21, 'astronaut (14 x 14 tokens) and coffee (14 x 21), each once');
});

test('folders: a folder whose only image is a FIFO, or holding only loops, is refused with one line', async () => {
  const pipes = await folder('only-fifo');
  mkfifo(path.join(pipes, 'frame.png'));
  await refused(['build', '--images', pipes, '--k', '2', '--out', out()], /frame\.png: expected an image file \(a regular file\), found a named pipe \(FIFO\)$/);
  const loops = await folder('only-loops');
  await fs.mkdir(path.join(loops, 'inner'));
  await fs.symlink('.', path.join(loops, 'inner/self'));
  await fs.symlink('..', path.join(loops, 'inner/parent'));
  await refused(['build', '--images', loops, '--k', '2', '--out', out()], /no images found in .*only-loops/);
});

// ---------------------------------------------------------------------------------------------
// outputs the file system refuses: one line naming the path, exit 2, the previous file intact

const sha = async (f: string) => createHash('sha256').update(await fs.readFile(f)).digest('hex');

test('outputs: a folder in the way, a file as parent folder, and the file-size limit are one-line errors', async () => {
  const queries = await file('q.npy', encodeNpy({ shape: [3, 768], dtype: 'float32', data: new Float32Array(3 * 768) }));
  const target = await folder('out-is-dir.npy');
  await refused(['search', '--codebook', codebook, '--queries', queries, '--out', target], /out-is-dir\.npy: cannot write: is a folder, expected a file$/);
  const plain = await file('plain-file', 'x');
  await refused(['search', '--codebook', codebook, '--queries', queries, '--out', path.join(plain, 'ids.npy')], /plain-file\/ids\.npy: cannot create its folder: a file is in the way where a folder is expected$/);
  // RLIMIT_FSIZE: Node ignores SIGXFSZ, so the write fails with EFBIG.
  const tokens = path.join(dir, 'fsize.json');
  await fs.writeFile(tokens, 'previous');
  const r = await runCli(['tokenize', '--codebook', codebook, PHOTO, '--out', tokens, '--quiet'], { wrap: ['prlimit', '--fsize=512', '--'] });
  assertRefused(r, /fsize\.json: cannot write: the file is larger than this file system or the file-size limit allows; write elsewhere$/, 'tokenize under --fsize=512');
  assert.equal(await fs.readFile(tokens, 'utf8'), 'previous');
  assert.deepEqual((await fs.readdir(dir)).filter((n) => n.startsWith('.fsize.json.')), [], 'no temp file left');
});

test('outputs: permission denied (run as nobody) is a one-line error naming the path', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to run the CLI as the user nobody');
  // nobody runs the CLI from this checkout: say so plainly when a folder above it is closed
  // (a clone under `mktemp -d`, mode 700), rather than fail on the CLI's missing modules
  const asNobody = ['--reuid=65534', '--regid=65534', '--clear-groups', '--'];
  const readable = spawnSync('setpriv', [...asNobody, 'test', '-r', path.join(ROOT, 'dist', 'cli.js')]);
  assert.equal(readable.status, 0, `the user nobody cannot read ${ROOT}/dist/cli.js: this test needs a checkout that every user can read (a folder above it is closed to others)`);
  const closed = await folder('closed');
  await fs.chmod(closed, 0o755); // root's: nobody may read but not write
  const r = await runCli(['tokenize', '--codebook', codebook, PHOTO, '--out', path.join(closed, 'tokens.json'), '--quiet'], {
    wrap: ['setpriv', ...asNobody],
    cwd: '/',
  });
  assertRefused(r, /closed\/tokens\.json: cannot write: permission denied; check its permissions or choose another location$/, 'tokenize as nobody');
  const secret = await file('secret.safetensors', await fs.readFile(codebook));
  await fs.chmod(secret, 0o600);
  const s = await runCli(['tokenize', '--codebook', secret, PHOTO, '--quiet'], { wrap: ['setpriv', ...asNobody], cwd: '/' });
  assertRefused(s, /secret\.safetensors: cannot read a safetensors file: permission denied/, 'read as nobody');
});

test('outputs: a full disk (a 1 MiB tmpfs) is a one-line error, and the previous output pair is intact', async (t) => {
  const probe = spawnSync('unshare', ['-m', 'true']);
  if (probe.status !== 0) return t.skip(`cannot make a private mount here (unshare -m: ${probe.stderr.toString().trim() || `exit ${probe.status}`})`);
  // In a private mount namespace: mount a small tmpfs, put a previous output pair there, embed
  // 10 MB into it, then report the exit code, the pair's sha256 and what the folder holds.
  const mnt = await folder('tmpfs');
  const previous = path.join(dir, 'previous.npy');
  await fs.writeFile(previous, encodeNpy({ shape: [2, 768], dtype: 'float32', data: new Float32Array(2 * 768).fill(1) }));
  await fs.writeFile(`${previous}.index.json`, '{"previous": true}\n');
  const script = [
    `mount -t tmpfs -o size=1m tmpfs ${mnt}`,
    `cp ${previous} ${mnt}/emb.npy && cp ${previous}.index.json ${mnt}/emb.npy.index.json`,
    `prlimit --as=${4 * 2 ** 30} -- ${process.execPath} ${path.join(ROOT, 'dist/cli.js')} embed ${IMAGES} --out ${mnt}/emb.npy --device cpu --quiet 2>${dir}/full.err; echo "exit=$?"`,
    `sha256sum ${mnt}/emb.npy ${mnt}/emb.npy.index.json | cut -d' ' -f1`,
    `ls -A ${mnt}`,
  ].join('\n');
  const run = spawnSync('unshare', ['-m', 'sh', '-c', script], { encoding: 'utf8', timeout: 90_000 });
  assert.equal(run.status, 0, run.stderr);
  const [exit, npyDigest, indexDigest, ...listing] = run.stdout.trim().split('\n');
  const stderr = await fs.readFile(path.join(dir, 'full.err'), 'utf8');
  assert.equal(exit, 'exit=2', stderr);
  const lines = stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0]!, /^unicode2: .*tmpfs\/emb\.npy: cannot write: no space left on the device; free some space or write elsewhere$/);
  assert.equal(npyDigest, await sha(previous));
  assert.equal(indexDigest, await sha(`${previous}.index.json`));
  assert.deepEqual(listing, ['emb.npy', 'emb.npy.index.json'], 'no temp file left on the full disk');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ComputeBackend } from '../../native-gpu/backend';
import { createCpuBackend } from '../../native-gpu/cpu/index';
import { openEncoder, openEncoderFromDescriptor, type Encoder } from '../../extension/engine/encoders/index';
import { readPreprocessorConfig } from '../../extension/engine/encoders/preprocess';
import { UserError } from '../../common/errors';
import { GraphBuilder } from '../../native-gpu/cpu/onnx-graph';
import { dctVisionTower, siglipConfig, writeModelFolder } from '../helpers/siglip-model';

const photos = ['astronaut.jpg', 'formats/chelsea.webp', 'grass.png'].map((n) => path.join(__dirname, '../fixtures/images', n));

let backend: ComputeBackend;
let tmp: string;
test.before(async () => {
  backend = await createCpuBackend();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'enc-'));
});
test.after(async () => {
  await backend.dispose();
  await fs.rm(tmp, { recursive: true, force: true });
});

async function withEncoder<T>(spec: string, use: (e: Encoder) => Promise<T>): Promise<T> {
  const encoder = await openEncoder(spec, backend);
  try {
    return await use(encoder);
  } finally {
    await encoder.dispose();
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const isUserError = (message: RegExp) => (e: Error) => e instanceof UserError && message.test(e.message) && !e.message.includes('\n');

test('dct encoder: 224x224 -> 14x14 tokens of d = 768, invertible back to the loaded pixels', async () => {
  await withEncoder('dct', async (dct) => {
    assert.deepEqual([dct.d, dct.patch, dct.inputSize, dct.grid], [768, 16, [224, 224], [14, 14]]);
    assert.deepEqual(dct.descriptor, { kind: 'dct', id: 'dct:224', patch: 16, inputSize: [224, 224], d: 768 });
    const images = await Promise.all(photos.map((p) => dct.load(p)));
    const m = await dct.encode(images);
    assert.deepEqual([m.rows, m.cols], [3 * 196, 768]);
    // Image-major: image 1's rows are its own DCT, and they invert to its pixels.
    const second = { rows: 196, cols: 768, data: m.data.subarray(196 * 768, 2 * 196 * 768) };
    assert.ok(maxAbsDiff(await backend.idctPatches(second, 14, 14, 16), images[1].data) < 1e-5);
  });
  await withEncoder('dct:64', async (small) => assert.deepEqual([small.grid, small.descriptor.id], [[4, 4], 'dct:64']));
  await assert.rejects(openEncoder('dct:100', backend), isUserError(/dct:100.*multiple of 16/));
  await assert.rejects(openEncoder('dct:abc', backend), isUserError(/multiple of 16/));
  await assert.rejects(openEncoder(path.join(tmp, 'nothing-here'), backend), isUserError(/no such model folder or \.onnx file/));
});

test('onnx encoder on a SigLIP-shaped folder (onnx/vision_model.onnx, CLS token) matches the DCT encoder', async () => {
  // mean 0 / std 1 / rescale 1/255 feeds the model pixels in [0, 1], exactly what the DCT encoder sees.
  const dir = await writeModelFolder(path.join(tmp, 'siglip-cls'), dctVisionTower({ extraTokens: 1 }), siglipConfig({ image_mean: [0, 0, 0], image_std: [1, 1, 1] }), 'onnx/vision_model.onnx');
  const expected = await withEncoder('dct', async (dct) => dct.encode(await Promise.all(photos.map((p) => dct.load(p)))));
  await withEncoder(dir, async (onnx) => {
    assert.deepEqual([onnx.d, onnx.patch, onnx.inputSize, onnx.grid], [768, 16, [224, 224], [14, 14]]);
    assert.deepEqual(onnx.descriptor, {
      kind: 'onnx', id: path.resolve(dir), patch: 16, inputSize: [224, 224], d: 768,
      preprocess: { mean: [0, 0, 0], std: [1, 1, 1], rescale: 1 / 255, resample: 'bicubic' },
    });
    const got = await onnx.encode(await Promise.all(photos.map((p) => onnx.load(p))));
    assert.deepEqual([got.rows, got.cols], [expected.rows, expected.cols]);
    assert.ok(maxAbsDiff(got.data, expected.data) < 1e-4);
  });
});

test('SigLIP default normalization ((x - 0.5) / 0.5) is applied, for a folder and for a bare .onnx alike', async () => {
  const model = dctVisionTower();
  const dir = await writeModelFolder(path.join(tmp, 'siglip'), model, siglipConfig());
  const bare = path.join(tmp, 'bare.onnx');
  await fs.writeFile(bare, model);
  const image = await withEncoder('dct', (dct) => dct.load(photos[0]));
  const normalized = image.data.map((v) => (v - 0.5) / 0.5);
  const expected = await backend.dctPatches(normalized, 224, 224, 16);
  for (const spec of [dir, bare]) {
    const got = await withEncoder(spec, async (onnx) => onnx.encode([await onnx.load(photos[0])]));
    assert.ok(maxAbsDiff(got.data, expected.data) < 1e-4, spec);
  }
});

test('a model with a fixed batch of 1 is run once per image', async () => {
  const dir = await writeModelFolder(path.join(tmp, 'batch1'), dctVisionTower({ batch: 1 }), siglipConfig());
  const free = await writeModelFolder(path.join(tmp, 'batchfree'), dctVisionTower(), siglipConfig());
  const encodeAll = (spec: string) => withEncoder(spec, async (e) => e.encode(await Promise.all(photos.map((p) => e.load(p)))));
  const [one, many] = [await encodeAll(dir), await encodeAll(free)];
  assert.equal(one.rows, 3 * 196);
  assert.ok(maxAbsDiff(one.data, many.data) < 1e-5);
});

test('input size comes from the config, else the model, else 224; patch = size / grid', async () => {
  const dynamic = dctVisionTower({ dynamicSize: true, patch: 8 });
  const dir = await writeModelFolder(path.join(tmp, 'dyn'), dynamic, siglipConfig({ size: { shortest_edge: 64 } }));
  await withEncoder(dir, async (e) => assert.deepEqual([e.inputSize, e.patch, e.grid, e.d], [[64, 64], 8, [8, 8], 192]));
  const fixed = path.join(tmp, 'fixed96.onnx');
  await fs.writeFile(fixed, dctVisionTower({ size: 96, patch: 8 }));
  await withEncoder(fixed, async (e) => assert.deepEqual([e.inputSize, e.grid], [[96, 96], [12, 12]]));
  const bareDynamic = path.join(tmp, 'dynamic.onnx');
  await fs.writeFile(bareDynamic, dynamic);
  await withEncoder(bareDynamic, async (e) => assert.deepEqual([e.inputSize, e.grid], [[224, 224], [28, 28]]));
});

test('preprocessor_config.json: PIL resample numbers, rescale and normalize switches, bad values', async () => {
  const write = async (name: string, config: unknown) => {
    const file = path.join(tmp, `${name}.json`);
    await fs.writeFile(file, JSON.stringify(config));
    return file;
  };
  const plain = await readPreprocessorConfig(await write('plain', { resample: 0, do_rescale: false, do_normalize: false, size: 256 }));
  assert.deepEqual(plain, { size: [256, 256], preprocess: { mean: [0, 0, 0], std: [1, 1, 1], rescale: 1, resample: 'nearest' } });
  const clip = await readPreprocessorConfig(await write('clip', { resample: 1, image_mean: [0.48, 0.45, 0.4], image_std: [0.26, 0.26, 0.27], size: { height: 336, width: 336 } }));
  assert.deepEqual(clip, { size: [336, 336], preprocess: { mean: [0.48, 0.45, 0.4], std: [0.26, 0.26, 0.27], rescale: 1 / 255, resample: 'lanczos3' } });
  assert.equal((await readPreprocessorConfig(await write('bilinear', { resample: 2 }))).preprocess.resample, 'bilinear');
  for (const [name, config, message] of [
    ['badstd', { image_std: [0.5, 0.5] }, /'image_std' must be 3 numbers/],
    ['zerostd', { image_std: [0.5, 0, 0.5] }, /must not contain 0/],
    ['badresample', { resample: 9 }, /'resample' must be a PIL filter number/],
    ['badsize', { size: { longest_edge: 3 } }, /'size' must be/],
    ['hugesize', { size: 50_000 }, /input size 50000x50000 exceeds the limit of 1024 x 1024 pixels/],
    ['strrescale', { rescale_factor: '0.5' }, /'rescale_factor' must be a positive number, found "0.5"/],
  ] as const) {
    const file = await write(name, config);
    await assert.rejects(readPreprocessorConfig(file), isUserError(new RegExp(`${name}\\.json: .*${message.source}`)));
  }
  const broken = path.join(tmp, 'broken.json');
  await fs.writeFile(broken, '{oops');
  await assert.rejects(readPreprocessorConfig(broken), isUserError(/broken\.json: preprocessor config is not valid JSON/));
});

test('models that are not SigLIP-shaped vision towers get a clear error naming what was found', async () => {
  const textModel = new GraphBuilder('text');
  textModel.input('input_ids', 'int64', ['B', 'S']);
  textModel.node('Cast', ['input_ids'], ['f'], { to: 1 });
  textModel.initializer('axis', { type: 'int64', dims: [1], data: BigInt64Array.of(2n) });
  textModel.node('Unsqueeze', ['f', 'axis'], ['last_hidden_state']);
  textModel.output('last_hidden_state', 'float32', ['B', 'S', 1]);

  const pooled = new GraphBuilder('pooled');
  pooled.input('pixel_values', 'float32', ['B', 3, 224, 224]);
  pooled.initializer('w', { type: 'float32', dims: [768, 3, 16, 16], data: new Float32Array(768 * 3 * 16 * 16) });
  pooled.node('Conv', ['pixel_values', 'w'], ['patches'], { kernel_shape: [16, 16], strides: [16, 16] });
  pooled.node('ReduceMean', ['patches'], ['pooler_output'], { axes: [2, 3], keepdims: 0 });
  pooled.output('pooler_output', 'float32', ['B', 768]);

  const cases: [string, Uint8Array, Record<string, unknown> | undefined, RegExp][] = [
    ['text', textModel.toModel(), undefined, /expected input 'pixel_values' \[B,3,H,W\] float32, found 'input_ids' \[B,S\] int64/],
    ['pooled', pooled.toModel(), undefined, /expected output 'last_hidden_state' \[B,L,d\] float32, found 'pooler_output' \[B,768\]/],
    ['nogrid', dctVisionTower({ extraTokens: 2 }), undefined, /198 output tokens do not form a grid of square patches over a 224x224 input/],
    ['mismatch', dctVisionTower(), siglipConfig({ size: { height: 256, width: 256 } }), /preprocessor_config\.json resizes to 256x256 but the model takes 224x224/],
    ['garbage', new TextEncoder().encode('not a model at all'), undefined, /cannot load ONNX model/],
  ];
  for (const [name, model, config, message] of cases) {
    const dir = await writeModelFolder(path.join(tmp, `bad-${name}`), model, config);
    await assert.rejects(openEncoder(dir, backend), isUserError(new RegExp(`model\\.onnx: ${message.source}`)), name);
  }
  const empty = path.join(tmp, 'empty-folder');
  await fs.mkdir(empty);
  await assert.rejects(openEncoder(empty, backend), isUserError(/empty-folder: no ONNX model found \(looked for model\.onnx, vision_model\.onnx/));
});

test('openEncoderFromDescriptor reopens the same encoder, and refuses one that changed or is gone', async () => {
  const dir = await writeModelFolder(path.join(tmp, 'reopen'), dctVisionTower(), siglipConfig());
  const desc = await withEncoder(dir, async (e) => e.descriptor);
  const again = await openEncoderFromDescriptor(desc, backend);
  assert.deepEqual(again.descriptor, desc);
  await again.dispose();
  const dct = await openEncoderFromDescriptor({ kind: 'dct', id: 'dct:64', patch: 16, inputSize: [64, 64], d: 768 }, backend);
  assert.deepEqual(dct.grid, [4, 4]);
  await dct.dispose();

  await fs.writeFile(path.join(dir, 'model.onnx'), dctVisionTower({ patch: 8 })); // the folder now holds another model
  await assert.rejects(openEncoderFromDescriptor(desc, backend), isUserError(/now gives d=192, patch 8, input 224x224 but the codebook was built with d=768, patch 16/));
  await assert.rejects(openEncoderFromDescriptor({ ...desc, id: path.join(tmp, 'moved-away') }, backend), isUserError(/moved-away', which is not available here/));
});

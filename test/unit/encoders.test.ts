import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ComputeBackend } from '../../native-gpu/backend.js';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import { imageGrid, openEncoder, openEncoderFromDescriptor, validateEncoderDescriptor, type Encoder } from '../../extension/engine/embed/encoders/index.js';
import { imageSize, keepAspectSize, loadImage } from '../../extension/engine/embed/image.js';
import { gridFollowsPhoto } from '../../extension/engine/embed/encoders/dct.js';
import sharp from 'sharp';
import { readPreprocessorConfig } from '../../extension/engine/embed/encoders/preprocess.js';
import { stackRows } from '../../extension/engine/core/sampling.js';
import { createHash } from 'node:crypto';
import { UserError } from '../../common/errors.js';
import { GraphBuilder } from '../../native-gpu/cpu/onnx-graph.js';
import { dctVisionTower, siglipConfig, withEncoderOn, writeModelFolder } from '../helpers/siglip-model.js';

const photos = ['astronaut.jpg', 'formats/chelsea.webp', 'grass.png'].map((n) => path.join(__dirname, '../fixtures/images', n));
/** A 640 x 400 photo (not square) */
const wide = path.join(__dirname, '../fixtures/wide/china-640x400.png');

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

const withEncoder = <T>(spec: string, use: (e: Encoder) => Promise<T>): Promise<T> => withEncoderOn(backend, spec, use);

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const isUserError = (message: RegExp) => (e: Error) => e instanceof UserError && message.test(e.message) && !e.message.includes('\n');

test('dct encoder keeps the photo\'s shape: 640x400 -> 352x224, a 14x22 grid, invertible back to the loaded pixels', async () => {
  await sharp(wide).rotate(90).toFile(path.join(tmp, 'portrait.png')); // 400 x 640
  await withEncoder('dct', async (dct) => {
    assert.deepEqual([dct.d, dct.patch, dct.inputSize, dct.tokensPerImage], [768, 16, [224, 224], { min: 196, max: 14 * 56 }]);
    assert.deepEqual(dct.descriptor, { kind: 'dct', id: 'dct:224', patch: 16, inputSize: [224, 224], d: 768, resize: 'keep-aspect' });
    const [photo, square, rotated] = await Promise.all([wide, photos[0]!, path.join(__dirname, '../fixtures/images/formats/china-exif6.jpg')].map((p) => dct.load(p)));
    assert.deepEqual([photo!.width, photo!.height], [352, 224]);
    assert.deepEqual(imageGrid(photo!, 16), [14, 22]);
    assert.deepEqual([square!.width, square!.height], [224, 224]); // astronaut is 256 x 256
    // Stored 171 x 256 (portrait), shown 256 x 171 once its EXIF orientation 6 is applied: the
    // shape as shown decides, 256 x 224 / 171 = 335.3 -> 336 wide.
    assert.deepEqual([rotated!.width, rotated!.height], [336, 224]);
    const tallPortrait = await dct.load(path.join(tmp, 'portrait.png'));
    assert.deepEqual([tallPortrait.width, tallPortrait.height], [224, 352]);
    // the same count from the header alone, as build sizes its corpus with
    assert.deepEqual([await dct.tokensOf(wide), await dct.tokensOf(photos[0]!), await dct.tokensOf(path.join(tmp, 'portrait.png'))], [14 * 22, 196, 22 * 14]);
    const m = await dct.encode([square!, photo!, tallPortrait]);
    assert.deepEqual([m.rows, m.cols], [196 + 14 * 22 + 22 * 14, 768]);
    // Image-major, each image its own grid: the wide photo's rows are its DCT, and invert to its pixels exactly.
    const rows = { rows: 14 * 22, cols: 768, data: m.data.subarray(196 * 768, (196 + 14 * 22) * 768) };
    assert.ok(maxAbsDiff(await backend.idctPatches(rows, 14, 22, 16), photo!.data) < 1e-5);
    const tall = { rows: 22 * 14, cols: 768, data: m.data.subarray((196 + 14 * 22) * 768) };
    assert.ok(maxAbsDiff(await backend.idctPatches(tall, 22, 14, 16), tallPortrait.data) < 1e-5);
  });
  await withEncoder('dct:64', async (small) => assert.deepEqual([small.tokensPerImage, small.descriptor.id], [{ min: 16, max: 64 }, 'dct:64']));
  await assert.rejects(openEncoder('dct:100', backend), isUserError(/dct:100.*multiple of 16/));
  await assert.rejects(openEncoder('dct:abc', backend), isUserError(/multiple of 16/));
  await assert.rejects(openEncoder('dct:100:square', backend), isUserError(/dct:100:square.*multiple of 16/));
  await assert.rejects(openEncoder(path.join(tmp, 'nothing-here'), backend), isUserError(/no such model folder or \.onnx file/));
});

test('dct:<size>:square stretches every photo to size x size: one grid, fixed-length sequences', async () => {
  await withEncoder('dct:224:square', async (dct) => {
    assert.deepEqual(dct.descriptor, { kind: 'dct', id: 'dct:224:square', patch: 16, inputSize: [224, 224], d: 768, resize: 'stretch' });
    assert.deepEqual([dct.tokensPerImage, await dct.tokensOf(wide)], [{ min: 196, max: 196 }, 196]);
    const img = await dct.load(wide);
    assert.deepEqual([img.width, img.height], [224, 224]);
    const m = await dct.encode([img]);
    assert.ok(maxAbsDiff(await backend.idctPatches(m, 14, 14, 16), img.data) < 1e-5);
  });
});

test('keepAspectSize: short side to the size, long side to the nearest multiple of the patch, capped at 4:1 and 1024', () => {
  const spec = { shortSide: 224, multiple: 16, maxLongSide: 896 };
  assert.deepEqual(keepAspectSize(640, 400, spec), { width: 352, height: 224 }); // 358.4 -> 352
  assert.deepEqual(keepAspectSize(400, 640, spec), { width: 224, height: 352 });
  assert.deepEqual(keepAspectSize(100, 100, spec), { width: 224, height: 224 }); // enlarged, like the square mode
  assert.deepEqual(keepAspectSize(300, 200, spec), { width: 336, height: 224 }); // 336 exactly
  assert.deepEqual(keepAspectSize(1000, 595, spec), { width: 384, height: 224 }); // 376.5 -> 384: rounds up too
  assert.deepEqual(keepAspectSize(10_000, 1, spec), { width: 896, height: 224 }); // beyond 4:1: the cap
  assert.deepEqual(keepAspectSize(225, 224, spec), { width: 224, height: 224 }); // never below the short side
  assert.throws(() => keepAspectSize(10, 10, { shortSide: 100, multiple: 16, maxLongSide: 400 }), /bad spec/);
});

test('a panorama beyond 4:1 is centre-cropped to 4:1, and dct:512 caps the long side at 1024 pixels', async (t) => {
  const dir = await fs.mkdtemp(path.join(tmp, 'pano-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  // 1000 x 100: left fifth red, middle green, right fifth blue. At 4:1 (400 x 100 of the source,
  // centred) only green is left.
  const pano = path.join(dir, 'pano.png');
  const raw = Buffer.alloc(1000 * 100 * 3);
  for (let y = 0; y < 100; y++) {
    for (let x = 0; x < 1000; x++) raw[(y * 1000 + x) * 3 + (x < 200 ? 0 : x < 800 ? 1 : 2)] = 255;
  }
  await sharp(raw, { raw: { width: 1000, height: 100, channels: 3 } }).png().toFile(pano);
  await withEncoder('dct:64', async (dct) => {
    const img = await dct.load(pano);
    assert.deepEqual([img.width, img.height], [256, 64]);
    const plane = img.width * img.height;
    const mean = (c: number) => img.data.subarray(c * plane, (c + 1) * plane).reduce((a, b) => a + b, 0) / plane;
    assert.ok(mean(1) > 0.99 && mean(0) < 0.01 && mean(2) < 0.01, `red ${mean(0)}, green ${mean(1)}, blue ${mean(2)}`);
  });
  await withEncoder('dct:512', async (dct) => {
    assert.deepEqual(dct.tokensPerImage.max, 32 * 64);
    const img = await dct.load(pano);
    assert.deepEqual([img.width, img.height], [1024, 512]);
  });
});

test('onnx encoder on a SigLIP-shaped folder (onnx/vision_model.onnx, CLS token) matches the DCT encoder', async () => {
  // mean 0 / std 1 / rescale 1/255 feeds the model pixels in [0, 1], exactly what the DCT encoder sees.
  const dir = await writeModelFolder(path.join(tmp, 'siglip-cls'), dctVisionTower({ extraTokens: 1 }), siglipConfig({ image_mean: [0, 0, 0], image_std: [1, 1, 1] }), 'onnx/vision_model.onnx');
  const sha = createHash('sha256').update(await fs.readFile(path.join(dir, 'onnx/vision_model.onnx'))).digest('hex');
  await withEncoder(dir, async (onnx) => {
    assert.deepEqual([onnx.d, onnx.patch, onnx.inputSize, onnx.tokensPerImage], [768, 16, [224, 224], { min: 196, max: 196 }]);
    const img = await onnx.load(wide);
    assert.deepEqual(imageGrid(img, onnx.patch), [14, 14]);
    assert.deepEqual(onnx.descriptor, {
      kind: 'onnx', id: path.resolve(dir), patch: 16, inputSize: [224, 224], d: 768, resize: 'stretch',
      preprocess: { mean: [0, 0, 0], std: [1, 1, 1], rescale: 1 / 255, resample: 'bicubic', resize: { height: 224, width: 224 } },
      model: { file: 'onnx/vision_model.onnx', sha256: { 'onnx/vision_model.onnx': sha }, precision: 'fp32', layer: null },
    });
    // A model's input is fixed: the photos are stretched to it (SigLIP's processor), and the model
    // computes the DCT of those pixels.
    const loaded = await Promise.all(photos.map((p) => onnx.load(p)));
    const got = await onnx.encode(loaded);
    const expected = stackRows(await Promise.all(loaded.map((img) => backend.dctPatches(img.data, 224, 224, 16))));
    assert.deepEqual([got.rows, got.cols], [expected.rows, expected.cols]);
    assert.ok(maxAbsDiff(got.data, expected.data) < 1e-4);
  });
});

test('SigLIP default normalization ((x - 0.5) / 0.5) is applied, for a folder and for a bare .onnx alike', async () => {
  const model = dctVisionTower();
  const dir = await writeModelFolder(path.join(tmp, 'siglip'), model, siglipConfig());
  const bare = path.join(tmp, 'bare.onnx');
  await fs.writeFile(bare, model);
  for (const spec of [dir, bare]) {
    const { got, image } = await withEncoder(spec, async (onnx) => {
      const loaded = await onnx.load(photos[0]);
      return { got: await onnx.encode([loaded]), image: loaded };
    });
    const expected = await backend.dctPatches(image.data.map((v) => (v - 0.5) / 0.5), 224, 224, 16);
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
  const dir = await writeModelFolder(path.join(tmp, 'dyn'), dynamic, siglipConfig({ size: { height: 64, width: 64 } }));
  const grid = (e: Encoder) => imageGrid({ height: e.inputSize[0], width: e.inputSize[1] }, e.patch);
  await withEncoder(dir, async (e) => assert.deepEqual([e.inputSize, e.patch, grid(e), e.d], [[64, 64], 8, [8, 8], 192]));
  const fixed = path.join(tmp, 'fixed96.onnx');
  await fs.writeFile(fixed, dctVisionTower({ size: 96, patch: 8 }));
  await withEncoder(fixed, async (e) => assert.deepEqual([e.inputSize, grid(e)], [[96, 96], [12, 12]]));
  const bareDynamic = path.join(tmp, 'dynamic.onnx');
  await fs.writeFile(bareDynamic, dynamic);
  await withEncoder(bareDynamic, async (e) => assert.deepEqual([e.inputSize, grid(e)], [[224, 224], [28, 28]]));
});

test('preprocessor_config.json: PIL resample numbers, rescale and normalize switches, bad values', async () => {
  const write = async (name: string, config: unknown) => {
    const file = path.join(tmp, `${name}.json`);
    await fs.writeFile(file, JSON.stringify(config));
    return file;
  };
  const plain = await readPreprocessorConfig(await write('plain', { resample: 0, do_rescale: false, do_normalize: false, size: 256 }));
  assert.deepEqual(plain, { size: [256, 256], preprocess: { mean: [0, 0, 0], std: [1, 1, 1], rescale: 1, resample: 'nearest', resize: { height: 256, width: 256 } } });
  const clip = await readPreprocessorConfig(await write('clip', { resample: 1, image_mean: [0.48, 0.45, 0.4], image_std: [0.26, 0.26, 0.27], size: { height: 336, width: 336 } }));
  assert.deepEqual(clip, { size: [336, 336], preprocess: { mean: [0.48, 0.45, 0.4], std: [0.26, 0.26, 0.27], rescale: 1 / 255, resample: 'lanczos3', resize: { height: 336, width: 336 } } });
  // CLIP's processor: an integer size is the shortest edge, then its centre crop (defaults: 224, bicubic, OpenAI's mean and std)
  const openai = await readPreprocessorConfig(await write('openai', { feature_extractor_type: 'CLIPFeatureExtractor', size: 224, crop_size: 224 }));
  assert.deepEqual(openai, { size: [224, 224], preprocess: { mean: [0.48145466, 0.4578275, 0.40821073], std: [0.26862954, 0.26130258, 0.27577711], rescale: 1 / 255, resample: 'bicubic', resize: { shortestEdge: 224 }, crop: [224, 224] } });
  // SigLIP's has no crop step: a crop in its config is not applied, as transformers does not
  assert.equal((await readPreprocessorConfig(await write('siglipcrop', siglipConfig({ do_center_crop: true, crop_size: 200 })))).preprocess.crop, undefined);
  assert.equal((await readPreprocessorConfig(await write('bilinear', { resample: 2 }))).preprocess.resample, 'bilinear');
  for (const [name, config, message] of [
    ['badstd', { image_std: [0.5, 0.5] }, /'image_std' must be 3 numbers/],
    ['zerostd', { image_std: [0.5, 0, 0.5] }, /must not contain 0/],
    ['badresample', { resample: 9 }, /'resample' must be a PIL filter number/],
    ['hamming', { resample: 5 }, /4 box and 5 hamming are not implemented\), found 5/],
    ['convnext', { image_processor_type: 'ConvNextImageProcessor' }, /image processor "ConvNextImageProcessor" is not implemented \(supported: SiglipImageProcessor, .*CLIPImageProcessor/],
    ['naflex', { image_processor_type: 'Siglip2ImageProcessor' }, /"Siglip2ImageProcessor" is not implemented .*NaFlex is not/],
    ['nocrop', { image_processor_type: 'CLIPImageProcessor', do_center_crop: false }, /\{shortest_edge: 224\} without a centre crop gives every photo its own input size/],
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
    ['text', textModel.toModel(), undefined, /expected input 'pixel_values' \[B,3,H,W\] float32 or float16, found 'input_ids' \[B,S\] int64/],
    ['pooled', pooled.toModel(), undefined, /expected output 'last_hidden_state' \[B,L,d\] float32 or float16, found 'pooler_output' \[B,768\]/],
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
  const dct = await openEncoderFromDescriptor({ kind: 'dct', id: 'dct:64', patch: 16, inputSize: [64, 64], d: 768, resize: 'keep-aspect' }, backend);
  assert.deepEqual([dct.descriptor.id, imageGrid(await dct.load(wide), 16)], ['dct:64', [4, 6]]); // 102.4 -> 96 wide
  await dct.dispose();

  await fs.writeFile(path.join(dir, 'model.onnx'), dctVisionTower({ patch: 8 })); // the folder now holds another model
  await assert.rejects(openEncoderFromDescriptor(desc, backend), isUserError(/now gives d=192, patch 8, input 224x224 \(stretch\) but the codebook was built with d=768, patch 16/));
  await assert.rejects(openEncoderFromDescriptor({ ...desc, id: path.join(tmp, 'moved-away') }, backend), isUserError(/moved-away', which is not available here/));
});

test('encoder descriptors: one without resize (older files) reads as the stretch it was; resize must match the id', () => {
  const base = { kind: 'dct', patch: 16, inputSize: [224, 224], d: 768 };
  assert.deepEqual(validateEncoderDescriptor({ ...base, id: 'dct:224' }, 'cb'), { ...base, id: 'dct:224:square', resize: 'stretch' });
  assert.deepEqual(validateEncoderDescriptor({ ...base, id: 'dct:224', resize: 'keep-aspect' }, 'cb'), { ...base, id: 'dct:224', resize: 'keep-aspect' });
  assert.throws(() => validateEncoderDescriptor({ ...base, id: 'dct:224', resize: 'stretch' }, 'cb'), isUserError(/a 'stretch' 'dct' encoder is id 'dct:224:square'/));
  assert.throws(() => validateEncoderDescriptor({ ...base, id: 'dct:224', resize: 'crop' }, 'cb'), isUserError(/'resize' must be 'keep-aspect' or 'stretch', found "crop"/));
  const onnx = { kind: 'onnx', id: '/models/vit', patch: 16, inputSize: [224, 224], d: 768 };
  assert.deepEqual(validateEncoderDescriptor(onnx, 'cb').resize, 'stretch');
  assert.throws(() => validateEncoderDescriptor({ ...onnx, resize: 'keep-aspect' }, 'cb'), isUserError(/an 'onnx' encoder resizes with 'stretch'/));
});

test('gridFollowsPhoto tells a keep-aspect grid from a stretched one, and the photo cropped to it is what the encoder saw', async () => {
  assert.equal(gridFollowsPhoto({ width: 640, height: 400 }, [14, 22]), true);
  assert.equal(gridFollowsPhoto({ width: 400, height: 640 }, [22, 14]), true);
  assert.equal(gridFollowsPhoto({ width: 640, height: 400 }, [14, 14]), false); // a square input, stretched
  assert.equal(gridFollowsPhoto({ width: 640, height: 400 }, [22, 14]), false);
  assert.equal(gridFollowsPhoto({ width: 256, height: 256 }, [14, 14]), true);
  assert.equal(gridFollowsPhoto({ width: 10_000, height: 100 }, [16, 64]), true); // dct:256, capped at 4:1
  assert.equal(gridFollowsPhoto({ width: 64, height: 40 }, [4, 6]), true); // dct:64: 102.4 -> 96

  assert.deepEqual(await imageSize(wide), { width: 640, height: 400 });
  assert.deepEqual(await imageSize(path.join(__dirname, '../fixtures/images/formats/china-exif6.jpg')), { width: 256, height: 171 });
  // The photo shown under a 14 x 22 grid: cropped to 22:14 (629 x 400), which is the region the
  // encoder resized to 352 x 224.
  const shown = await loadImage(wide, { within: 1024, aspect: 22 / 14 });
  assert.deepEqual([shown.width, shown.height], [629, 400]);
  const small = await loadImage(wide, { within: 352, aspect: 22 / 14 });
  assert.deepEqual([small.width, small.height], [352, 224]);
  await withEncoder('dct', async (dct) => {
    const seen = await dct.load(wide);
    const meanAbs = small.data.reduce((s, v, i) => s + Math.abs(v - seen.data[i]!), 0) / small.data.length;
    assert.ok(meanAbs < 0.01, `mean |difference| ${meanAbs}`);
    // the whole photo squeezed to 352 x 224 is another picture: the test can tell
    const whole = await loadImage(wide, { width: 352, height: 224 });
    const off = whole.data.reduce((s, v, i) => s + Math.abs(v - seen.data[i]!), 0) / whole.data.length;
    assert.ok(off > 2 * meanAbs, `whole photo ${off} vs crop ${meanAbs}`);
  });
});

// The model families (SigLIP, SigLIP2, CLIP, DINOv2 with and without registers) against a NumPy +
// PIL reference of their Hugging Face image processors (test/helpers/processor-reference.py), on
// every fixture photo (square, landscape, portrait by EXIF, grey, alpha, animated, 640 x 400): the pixel
// values, and the patch embeddings of tiny models in each family's layout (config.json +
// preprocessor_config.json + ONNX). Figures: `node --import tsx --test test/unit/model-families.test.ts`
// prints each mean |diff| as a diagnostic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ComputeBackend } from '../../native-gpu/backend.js';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import type { Encoder } from '../../extension/engine/embed/encoders/index.js';
import { readPreprocessorConfig, toPixelValues } from '../../extension/engine/embed/encoders/preprocess.js';
import { loadImage } from '../../extension/engine/embed/image.js';
import { readNpy } from '../../extension/engine/io/formats/npy.js';
import { pythonWith } from '../helpers/python.js';
import { FAMILY_CONFIGS, siglipConfig, withEncoderOn, writeExportFolder } from '../helpers/siglip-model.js';

const FIXTURES = path.join(__dirname, '../fixtures/images');
const REFERENCE = path.join(__dirname, '../helpers/processor-reference.py');
const python = pythonWith(['numpy', 'PIL']);
const skip = python ? false : 'needs python3 with NumPy and PIL (scripts/setup-system.sh installs python3-numpy and python3-pil)';

let backend: ComputeBackend;
let tmp: string;
let photos: string[];
test.before(async () => {
  backend = await createCpuBackend();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'families-'));
  const names = [...(await fs.readdir(FIXTURES)).map((n) => n), ...(await fs.readdir(path.join(FIXTURES, 'formats'))).map((n) => `formats/${n}`)];
  photos = names.filter((n) => /\.(jpe?g|png|webp|tif|gif)$/i.test(n)).sort().map((n) => path.join(FIXTURES, n));
  // and one larger than the models' inputs by 3x (antialiased downscaling)
  photos.push(path.join(__dirname, '../fixtures/wide/china-640x400.png'));
});
test.after(async () => {
  await backend.dispose();
  await fs.rm(tmp, { recursive: true, force: true });
});

/** What the reference script is told: the processor's steps as read from its config. */
interface ReferenceSpec {
  size: { height: number; width: number } | { shortest_edge: number };
  crop?: [number, number];
  resample: number;
  rescale: number;
  mean: number[];
  std: number[];
  patch?: number;
}

const PIL_NUMBER = { nearest: 0, lanczos3: 1, bilinear: 2, bicubic: 3 } as const;

/** The reference spec of a preprocessor_config.json, as our reader parsed it (the parse itself is
 *  checked against the config's own numbers by the cases below). */
async function referenceSpecOf(configFile: string, patch?: number): Promise<ReferenceSpec> {
  const { preprocess: p } = await readPreprocessorConfig(configFile);
  const size = p.resize && 'shortestEdge' in p.resize ? { shortest_edge: p.resize.shortestEdge } : (p.resize as { height: number; width: number });
  return { size, ...(p.crop && { crop: p.crop }), resample: PIL_NUMBER[p.resample], rescale: p.rescale, mean: p.mean, std: p.std, ...(patch && { patch }) };
}

/** The reference's output for each spec, over `images` (one Python run: NumPy loads slowly). */
async function reference(specs: ReferenceSpec[], images: string[]): Promise<{ shape: number[]; data: Float32Array }[]> {
  const outs = specs.map((_, i) => path.join(tmp, `ref-${i}-${Math.random().toString(36).slice(2)}.npy`));
  execFileSync(python!, [REFERENCE, JSON.stringify(specs.map((s, i) => [s, outs[i]])), ...images]);
  return Promise.all(outs.map(async (out) => {
    const a = await readNpy(out);
    return { shape: a.shape, data: a.data as Float32Array };
  }));
}

function meanAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): { mean: number; max: number } {
  assert.equal(a.length, b.length);
  let sum = 0;
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    sum += d;
    max = Math.max(max, d);
  }
  return { mean: sum / a.length, max };
}

const PROCESSORS: [string, Record<string, unknown>][] = [
  ['SigLIP (224x224, bicubic)', siglipConfig()],
  ['SigLIP2 fixed-res (256x256, bilinear)', siglipConfig({ size: { height: 256, width: 256 }, resample: 2 })],
  ['CLIP (shortest edge 224, crop 224, bicubic)', FAMILY_CONFIGS.clip(16, 224).preprocessor],
  ['DINOv2 (shortest edge 256, crop 224, bicubic)', FAMILY_CONFIGS.dinov2(14, 224).preprocessor],
  ['nearest (resample 0, 200x300)', siglipConfig({ size: { height: 200, width: 300 }, resample: 0 })],
  ['lanczos (resample 1, 160x160)', siglipConfig({ size: { height: 160, width: 160 }, resample: 1 })],
  ['crop larger than the resize (zeros around)', { image_processor_type: 'CLIPImageProcessor', size: { shortest_edge: 160 }, crop_size: { height: 224, width: 224 } }],
];

test('pixel values equal a NumPy + PIL reference of each processor on every fixture photo (mean |diff| <= 0.01)', { skip }, async (t) => {
  const files = await Promise.all(PROCESSORS.map(async ([name, config]) => {
    const file = path.join(tmp, `${name.replace(/\W+/g, '-')}.json`);
    await fs.writeFile(file, JSON.stringify(config));
    return file;
  }));
  const references = await reference(await Promise.all(files.map((f) => referenceSpecOf(f))), photos);
  for (const [i, [name]] of PROCESSORS.entries()) {
    const { preprocess } = await readPreprocessorConfig(files[i]!);
    const expected = references[i]!;
    const resize = { processor: { size: preprocess.resize!, crop: preprocess.crop ?? null, resample: preprocess.resample } };
    const images = await Promise.all(photos.map((p) => loadImage(p, resize)));
    const got = toPixelValues(images, preprocess);
    assert.deepEqual(expected.shape.slice(2), [images[0]!.height, images[0]!.width], name);
    const { mean, max } = meanAbsDiff(got, expected.data);
    t.diagnostic(`${name}: mean |diff| ${mean.toExponential(2)}, max ${max.toFixed(4)} over ${photos.length} photos`);
    assert.ok(mean <= 0.01, `${name}: mean |diff| ${mean}`);
    if (preprocess.resize && 'height' in preprocess.resize && !preprocess.crop) {
      // What libvips' kernels would give instead (why the processors' resampling is PIL's own here).
      const viaSharp = await Promise.all(photos.map((p) => loadImage(p, { ...(preprocess.resize as { height: number; width: number }), resample: preprocess.resample })));
      const off = meanAbsDiff(toPixelValues(viaSharp, preprocess), expected.data);
      t.diagnostic(`${name} resized by sharp instead: mean |diff| ${off.mean.toExponential(2)}, max ${off.max.toFixed(4)}`);
    }
  }
});

test("the processors' parsed steps are the configs' own numbers (what the reference is told)", async () => {
  const dino = path.join(tmp, 'dino.json');
  await fs.writeFile(dino, JSON.stringify(FAMILY_CONFIGS.dinov2(14, 224).preprocessor));
  assert.deepEqual(await referenceSpecOf(dino), {
    size: { shortest_edge: 256 }, crop: [224, 224], resample: 3, rescale: 0.00392156862745098, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225],
  });
});

const withEncoder = <T>(spec: string, use: (e: Encoder) => Promise<T>): Promise<T> => withEncoderOn(backend, spec, use);

/** Each family as its export folder is laid out, with the grid and leading tokens it must give. */
const FAMILIES = [
  { name: 'SigLIP', patch: 16, size: 224, leading: 0, files: FAMILY_CONFIGS.siglip(16, 224), dynamic: false },
  { name: 'SigLIP2 (fixed resolution)', patch: 16, size: 256, leading: 0, files: FAMILY_CONFIGS.siglip2(16, 256), dynamic: false },
  { name: 'CLIP (CLS, crop)', patch: 32, size: 224, leading: 1, files: FAMILY_CONFIGS.clip(32, 224), dynamic: false },
  { name: 'DINOv2 (CLS, patch 14)', patch: 14, size: 224, leading: 1, files: FAMILY_CONFIGS.dinov2(14, 224), dynamic: true },
  { name: 'DINOv2 with 4 registers', patch: 14, size: 224, leading: 5, files: FAMILY_CONFIGS.dinov2(14, 224, 4), dynamic: true },
];

test('patch embeddings of each family equal the NumPy + PIL reference (mean |diff| <= 0.01), the leading tokens dropped', { skip }, async (t) => {
  const dirs = await Promise.all(FAMILIES.map((f) => writeExportFolder(path.join(tmp, f.name.replace(/\W+/g, '-')), { patch: f.patch, size: f.size, extraTokens: f.leading, dynamicSize: f.dynamic }, {
    modelPath: 'onnx/model.onnx', ...f.files,
  })));
  const references = await reference(await Promise.all(FAMILIES.map((f, i) => referenceSpecOf(path.join(dirs[i]!, 'preprocessor_config.json'), f.patch))), photos);
  for (const [i, f] of FAMILIES.entries()) {
    const dir = dirs[i]!;
    const grid = f.size / f.patch;
    const expected = references[i]!;
    assert.deepEqual(expected.shape, [photos.length, grid * grid, 3 * f.patch * f.patch]);
    const got = await withEncoder(dir, async (e) => {
      assert.deepEqual([e.patch, e.inputSize, e.d, e.tokensPerImage.max], [f.patch, [f.size, f.size], 3 * f.patch * f.patch, grid * grid], f.name);
      return e.encode(await Promise.all(photos.map((p) => e.load(p))));
    });
    const { mean, max } = meanAbsDiff(got.data, expected.data);
    t.diagnostic(`${f.name}: embeddings mean |diff| ${mean.toExponential(2)}, max ${max.toFixed(4)}`);
    assert.ok(mean <= 0.01, `${f.name}: mean |diff| ${mean}`);
  }
});

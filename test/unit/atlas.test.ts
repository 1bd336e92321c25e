import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ComputeBackend, Matrix } from '../../native-gpu/backend.js';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import { decodeTokens, refineAtlas } from '../../extension/engine/generate/atlas.js';
import { codebookFingerprint, inMemory, type Codebook } from '../../extension/engine/codebook/codebook.js';
import { imageGrid, openEncoder, type Encoder } from '../../extension/engine/embed/encoders/index.js';
import { rowOffsets } from '../../extension/engine/embed/embed.js';
import { UserError } from '../../common/errors.js';
import type { RgbImage } from '../../extension/engine/embed/image.js';
import { dctVisionTower, siglipConfig, writeModelFolder } from '../helpers/siglip-model.js';

const photos = ['astronaut.jpg', 'coffee.jpg', 'china.jpg', 'brick.png'].map((n) => path.join(__dirname, '../fixtures/images', n));

let backend: ComputeBackend;
let dct: Encoder;
let tmp: string;
test.before(async () => {
  backend = await createCpuBackend();
  dct = await openEncoder('dct:64', backend);
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'atlas-'));
});
test.after(async () => {
  await dct.dispose();
  await backend.dispose();
  await fs.rm(tmp, { recursive: true, force: true });
});

/** A codebook in memory whose atlas starts as a copy of frozen; `atlas` is that copy, to edit. */
function codebook(frozen: Matrix, encoder: Encoder, atlas: 'dct' | 'none'): Codebook & { frozen: Matrix; atlas: Matrix } {
  const trainable = { ...frozen, data: frozen.data.slice() };
  return {
    frozen,
    trainable: inMemory(trainable),
    atlas: trainable,
    counts: null,
    meta: {
      formatVersion: 1, encoder: encoder.descriptor, k: frozen.rows, d: frozen.cols, lambda: 0, iterations: 0, seed: 0,
      corpusFingerprint: 'test', atlas, createdAt: new Date(0).toISOString(),
    },
    fingerprint: codebookFingerprint(frozen),
  };
}

/** Every `step`-th patch vector of the images: a small codebook of real patches. */
function everyNth(m: Matrix, step: number): Matrix {
  const rows = Math.ceil(m.rows / step);
  const data = new Float32Array(rows * m.cols);
  for (let r = 0; r < rows; r++) data.set(m.data.subarray(r * step * m.cols, (r * step + 1) * m.cols), r * m.cols);
  return { rows, cols: m.cols, data };
}

function mse(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return s / a.length;
}

/** The p x p RGB patch at raster position t of an image, channel-major (as the atlas stores it). */
function pixelPatch(img: RgbImage, t: number, p: number): Float64Array {
  const gw = img.width / p;
  const [gy, gx] = [Math.floor(t / gw), t % gw];
  const out = new Float64Array(3 * p * p);
  for (let c = 0; c < 3; c++) for (let y = 0; y < p; y++) for (let x = 0; x < p; x++) {
    out[c * p * p + y * p + x] = img.data[c * img.width * img.height + (gy * p + y) * img.width + gx * p + x];
  }
  return out;
}

test('dct atlas: the tokens of an image\'s own patches decode back to that image', async () => {
  const image = await dct.load(photos[0]);
  const cb = codebook(await dct.encode([image]), dct, 'dct');
  const ids = Int32Array.from({ length: 16 }, (_, i) => i);
  const decoded = await decodeTokens(cb, ids, [4, 4], backend);
  assert.deepEqual([decoded.width, decoded.height], [64, 64]);
  assert.ok(mse(decoded.data, image.data) < 1e-10);
  // Reordered tokens move the patches: token 0 now shows patch 5.
  const moved = await decodeTokens(cb, Int32Array.from(ids, (i) => (i === 0 ? 5 : i)), [4, 4], backend);
  const asImage = (img: RgbImage) => Float32Array.from(pixelPatch(img, 0, 16));
  assert.ok(mse(asImage(moved), Float32Array.from(pixelPatch(image, 5, 16))) < 1e-10);
  assert.ok(decoded.data.every((v) => v >= 0 && v <= 1));
});

test('decodeTokens refuses atlas-less codebooks, wrong grids and unknown ids', async () => {
  const image = await dct.load(photos[0]); // square: 16 codes
  const frozen = await dct.encode([image]);
  const ids = new Int32Array(16);
  await assert.rejects(decodeTokens(codebook(frozen, dct, 'none'), ids, [4, 4], backend), (e: Error) => e instanceof UserError && /refine the codebook first \(unicode2 refine\)/.test(e.message));
  const cb = codebook(frozen, dct, 'dct');
  await assert.rejects(decodeTokens(cb, ids, [4, 5], backend), /16 token ids do not fill a 4x5 grid/);
  await assert.rejects(decodeTokens(cb, Int32Array.from(ids, (_, i) => (i === 3 ? 16 : 0)), [4, 4], backend), /token id 16 at position 3 is outside the codebook \(ids run from 0 to 15\)/);
});

test('refineAtlas: each code becomes the mean pixel patch of what it was assigned, and reconstruction improves', async () => {
  // Photos of several shapes (square and 3:2): each is cut into patches along its own grid.
  const images = await Promise.all(photos.map((p) => dct.load(p)));
  const grids = images.map((img) => imageGrid(img, 16));
  assert.ok(new Set(grids.map((g) => g.join('x'))).size > 1);
  const offsets = rowOffsets(grids);
  const all = await dct.encode(images);
  const cb = codebook(everyNth(all, 5), dct, 'dct');
  // Start the atlas off the centroids, so refining has something to fix.
  cb.atlas.data.forEach((_, i, a) => (a[i] *= 0.7));

  const refined = await refineAtlas(cb, dct, photos, backend);
  assert.equal(refined.meta.atlas, 'refined');
  assert.equal(refined.fingerprint, cb.fingerprint);
  assert.deepEqual(refined.frozen, cb.frozen);

  // Independently: tokenize, average pixel patches per code, and compare with the decoded atlas.
  const handle = await backend.loadCodebook(cb.frozen);
  const { ids } = await backend.nearest(handle, all);
  handle.dispose();
  const k = cb.frozen.rows;
  const sums = Array.from({ length: k }, () => new Float64Array(768));
  const counts = new Array<number>(k).fill(0);
  images.forEach((img, i) => {
    for (let t = 0; t < offsets[i + 1]! - offsets[i]!; t++) {
      const id = ids[offsets[i]! + t];
      counts[id]++;
      pixelPatch(img, t, 16).forEach((v, j) => (sums[id][j] += v));
    }
  });
  const rowsAsPatches = await backend.idctPatches(await refined.trainable.load() as Matrix, 1, k, 16);
  const unrefined = await backend.idctPatches(cb.atlas, 1, k, 16);
  for (let code = 0; code < k; code++) {
    const decoded = pixelPatch({ data: rowsAsPatches, width: 16 * k, height: 16 }, code, 16);
    const expected = counts[code] > 0 ? sums[code].map((v) => v / counts[code]) : pixelPatch({ data: unrefined, width: 16 * k, height: 16 }, code, 16);
    decoded.forEach((v, j) => assert.ok(Math.abs(v - expected[j]) < 1e-4, `code ${code} value ${j}: ${v} vs ${expected[j]}`));
  }

  // Least squares: the refined atlas reconstructs the corpus at least as well as before.
  const recon = async (c: Codebook) => {
    let total = 0;
    for (let i = 0; i < images.length; i++) total += mse((await decodeTokens(c, ids.subarray(offsets[i], offsets[i + 1]), grids[i]!, backend)).data, images[i].data);
    return total;
  };
  assert.ok((await recon(refined)) < (await recon(cb)));
});

test('an ONNX codebook without an atlas gets one from refine; unused codes get the mean patch', async () => {
  const dir = await writeModelFolder(path.join(tmp, 'tower'), dctVisionTower({ size: 64, extraTokens: 1 }), siglipConfig({ size: { height: 64, width: 64 } }));
  const onnx = await openEncoder(dir, backend);
  try {
    const images = await Promise.all(photos.map((p) => onnx.load(p)));
    const embeddings = await onnx.encode(images);
    // Codes 0-3 are real patch embeddings; code 4 sits far from everything and is never used.
    const frozen = everyNth(embeddings, 16);
    const far = new Float32Array(768).fill(1e3);
    const withUnused = { rows: frozen.rows + 1, cols: 768, data: Float32Array.from([...frozen.data, ...far]) };
    const cb = codebook(withUnused, onnx, 'none');
    await assert.rejects(decodeTokens(cb, new Int32Array(16), [4, 4], backend), /refine the codebook first/);

    const refined = await refineAtlas(cb, onnx, [...photos, path.join(__dirname, '../fixtures/bad/truncated.jpg')], backend);
    assert.equal(refined.meta.atlas, 'refined');
    assert.equal(refined.trainable.cols, 3 * 16 * 16);
    // The unused code's patch is the mean of every patch of every (readable) image.
    const mean = new Float64Array(768);
    images.forEach((img) => { for (let t = 0; t < 16; t++) pixelPatch(img, t, 16).forEach((v, j) => (mean[j] += v / (16 * images.length))); });
    const unused = await decodeTokens(refined, new Int32Array(16).fill(4), [4, 4], backend);
    pixelPatch(unused, 0, 16).forEach((v, j) => assert.ok(Math.abs(v - mean[j]) < 1e-4));
  } finally {
    await onnx.dispose();
  }
});

test('refineAtlas refuses an encoder of another dimension and a corpus with no readable image', async () => {
  const frozen = await dct.encode([await dct.load(photos[0])]);
  const cb = codebook(frozen, dct, 'dct');
  const other = await openEncoder(await writeModelFolder(path.join(tmp, 'p8'), dctVisionTower({ size: 64, patch: 8 }), siglipConfig({ size: { height: 64, width: 64 } })), backend);
  try {
    await assert.rejects(refineAtlas(cb, other, photos, backend), /codebook has d=768 but encoder .* gives d=192/);
  } finally {
    await other.dispose();
  }
  await assert.rejects(refineAtlas(cb, dct, [path.join(__dirname, '../fixtures/bad/truncated.jpg')], backend), (e: Error) => e instanceof UserError && /none of the images could be read/.test(e.message));
});

// tokenizeImages on real photos: ids must be the true nearest codes (checked against a brute-force
// search in plain JS over the encoder's own embeddings), bad files are skipped and named, and the
// token file forms round-trip.
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ComputeBackend, Matrix } from '../../native-gpu/backend';
import { createCpuBackend } from '../../native-gpu/cpu/index';
import { buildCodebook } from '../../extension/engine/build';
import { EXTERNAL_ENCODER } from '../../extension/engine/encoders/index';
import { readCodebook, type Codebook } from '../../extension/engine/codebook';
import { openEncoder, type Encoder } from '../../extension/engine/encoders/index';
import { embedImages } from '../../extension/engine/embed';
import { CancelledError, UserError } from '../../common/errors';
import { readNpy, writeNpy } from '../../extension/engine/formats/npy';
import { checkTokensMatchCodebook, tokenizeImages, readTokenGrids, writeTokenDataset, writeTokenJson } from '../../extension/engine/tokenize';
import { dctVisionTower, siglipConfig, writeModelFolder } from '../helpers/siglip-model';
import { EncodePool } from '../../extension/engine/encode-pool';

const FIXTURES = path.join(__dirname, '../fixtures');
const PHOTOS = ['astronaut.jpg', 'chelsea.png', 'coffee.jpg'].map((f) => path.join(FIXTURES, 'images', f));

let backend: ComputeBackend;
let encoder: Encoder;
let cb: Codebook;
let dir: string;

before(async () => {
  backend = await createCpuBackend();
  encoder = await openEncoder('dct', backend);
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-tok-'));
  const out = path.join(dir, 'cb.safetensors');
  await buildCodebook({ images: path.join(FIXTURES, 'images'), encoder: 'dct', k: 48, iterations: 4, out }, backend);
  cb = await readCodebook(out);
});
after(async () => {
  await encoder.dispose();
  await backend.dispose();
  await fs.rm(dir, { recursive: true, force: true });
});

/** Index of the nearest row of `codes` to row `i` of `points`, by squared L2, in f64. */
function bruteNearest(points: Matrix, i: number, codes: Matrix): { id: number; dist: number; second: number } {
  let best = -1;
  let dist = Infinity;
  let second = Infinity;
  for (let k = 0; k < codes.rows; k++) {
    let s = 0;
    for (let j = 0; j < points.cols; j++) {
      const e = points.data[i * points.cols + j]! - codes.data[k * codes.cols + j]!;
      s += e * e;
    }
    if (s < dist) [second, dist, best] = [dist, s, k];
    else if (s < second) second = s;
  }
  return { id: best, dist, second };
}

test('token ids are the nearest frozen codes of each patch, 14x14 per 224px image', async () => {
  const { results, skipped } = await tokenizeImages(cb, encoder, PHOTOS, backend, { withDistances: true });
  assert.deepEqual(skipped, []);
  assert.deepEqual(results.map((r) => r.image), PHOTOS);
  const { embeddings } = await embedImages(encoder, PHOTOS);
  let compared = 0;
  results.forEach((r, img) => {
    assert.deepEqual(r.grid, [14, 14]);
    assert.equal(r.ids.length, 196);
    assert.equal(r.codebook, cb.fingerprint);
    assert.equal(r.encoder, encoder.descriptor.id);
    assert.equal(r.device, backend.device);
    assert.deepEqual(r.search, { method: 'exact', nprobe: null }); // no coarse level: exact search
    r.ids.forEach((id, p) => {
      const ref = bruteNearest(embeddings, img * 196 + p, cb.frozen as Matrix); // built as f32
      // Exact ties (and float near-ties) may go either way; everywhere else the id must match.
      if (ref.second - ref.dist > 1e-3 * Math.max(1, ref.dist)) {
        assert.equal(id, ref.id, `${r.image} patch ${p}`);
        compared++;
      }
      assert.ok(Math.abs(r.distances![p]! - ref.dist) <= 1e-3 * Math.max(1, ref.dist));
    });
  });
  assert.ok(compared > 500, `only ${compared} unambiguous patches compared`);
});

test('unreadable images are skipped and listed, the rest tokenized', async () => {
  const bad = path.join(FIXTURES, 'bad', 'not-an-image.png');
  const { results, skipped } = await tokenizeImages(cb, encoder, [PHOTOS[0]!, bad, path.join(dir, 'missing.jpg')], backend);
  assert.deepEqual(results.map((r) => r.image), [PHOTOS[0]]);
  assert.deepEqual(skipped.map((s) => s.path), [bad, path.join(dir, 'missing.jpg')]);
  for (const s of skipped) assert.ok(s.reason.length > 0 && !s.reason.includes('\n'), s.reason);
});

test('tokenizing in worker threads gives the serial path\'s grids, skipped files and order (DCT and an ONNX encoder)', async () => {
  const all = await fs.readdir(path.join(FIXTURES, 'images'));
  const photos = all.filter((f) => /\.(jpg|png)$/.test(f)).map((f) => path.join(FIXTURES, 'images', f));
  const bad = path.join(FIXTURES, 'bad', 'not-an-image.png');
  // 3 batches and a bit: both workers busy, an unreadable file in the middle of a batch
  const images = [...photos, bad, ...photos.slice(0, 8), path.join(dir, 'missing.jpg'), ...photos.slice(0, 5)];
  assert.ok(images.length > 3 * 8, `${images.length} images`);
  const before = EncodePool.started;
  const serial = await tokenizeImages(cb, encoder, images, backend, { parallel: false, withDistances: true });
  assert.equal(EncodePool.started, before);
  const progress: number[] = [];
  const parallel = await tokenizeImages(cb, encoder, images, backend, { parallel: true, withDistances: true, onProgress: (done) => progress.push(done) });
  assert.equal(EncodePool.started, before + Math.min(os.availableParallelism(), 4));
  assert.deepEqual(parallel, serial);
  assert.deepEqual(serial.skipped.map((x) => x.path), [bad, path.join(dir, 'missing.jpg')]);
  assert.deepEqual(progress, [0, 8, 16, 24, images.length]);

  // Cancel after the first batch: a CancelledError, and the workers are gone (a live one would
  // keep this test file from ending).
  const controller = new AbortController();
  await assert.rejects(
    tokenizeImages(cb, encoder, images, backend, { parallel: true, signal: controller.signal, onProgress: (done) => done >= 8 && controller.abort() }),
    CancelledError,
  );

  // an ONNX encoder: workers decode and resize, this thread runs the model
  const model = await writeModelFolder(path.join(dir, 'tower'), dctVisionTower(), siglipConfig({ size: { height: 224, width: 224 }, resample: 3, do_normalize: false, do_rescale: false }));
  const onnx = await openEncoder(model, backend);
  try {
    const few = images.slice(0, 12);
    assert.deepEqual(await tokenizeImages(cb, onnx, few, backend, { parallel: true }), await tokenizeImages(cb, onnx, few, backend, { parallel: false }));
  } finally {
    await onnx.dispose();
  }
});

test('a codebook of another dimension is refused with both dimensions named', async () => {
  const embeddings = path.join(dir, 'd16.npy');
  const data = Float32Array.from({ length: 16 * 20 }, (_, i) => Math.sin(i));
  await writeNpy(embeddings, { shape: [20, 16], dtype: 'float32', data });
  const out = path.join(dir, 'd16.safetensors');
  await buildCodebook({ embeddings, encoder: EXTERNAL_ENCODER, k: 4, out }, backend);
  const small = await readCodebook(out);
  await assert.rejects(
    tokenizeImages(small, encoder, PHOTOS, backend),
    (e: Error) => e instanceof UserError && e.message === `codebook has d=16 but encoder '${encoder.descriptor.id}' gives d=768`,
  );
});

test('token JSON and the .npy data set round-trip, with ids checked against K', async () => {
  const { results } = await tokenizeImages(cb, encoder, PHOTOS, backend);
  const json = path.join(dir, 'tokens.json');
  await writeTokenJson(json, results);
  assert.deepEqual((await readTokenGrids(json)).map((g) => g.ids), results.map((r) => r.ids));

  const single = path.join(dir, 'one.json');
  await writeTokenJson(single, results.slice(0, 1));
  assert.equal(JSON.parse(await fs.readFile(single, 'utf8')).image, PHOTOS[0]);

  const npy = path.join(dir, 'data.npy');
  const { shape } = await writeTokenDataset(npy, results);
  assert.deepEqual(shape, [3, 196]);
  const arr = await readNpy(npy);
  assert.equal(arr.dtype, 'int32');
  assert.deepEqual(arr.shape, [3, 196]);
  assert.deepEqual(Array.from(arr.data as Int32Array), results.flatMap((r) => r.ids));
  const index = JSON.parse(await fs.readFile(`${npy}.index.json`, 'utf8'));
  assert.deepEqual(index.images, PHOTOS);
  assert.deepEqual(index.grid, [14, 14]);
  assert.equal(index.codebook, cb.fingerprint);
  assert.deepEqual(index.search, { method: 'exact', nprobe: null });
  const back = await readTokenGrids(npy);
  assert.deepEqual(back.map((g) => g.ids), results.map((r) => r.ids));
  assert.deepEqual(back.map((g) => g.search), results.map((r) => r.search));

  // a "search" that is not {method, nprobe} is refused when read
  const odd = path.join(dir, 'odd-search.json');
  await fs.writeFile(odd, JSON.stringify({ ...results[0], search: { method: 'ivf', nprobe: 0 } }));
  await assert.rejects(readTokenGrids(odd), (e: Error) => e instanceof UserError && /"search" must be \{method: "ivf" \| "exact", nprobe\}/.test(e.message));

  const maxId = Math.max(...results.flatMap((r) => r.ids));
  // ids beyond a smaller codebook's K: refused by the one codebook check
  const smaller = { ...cb, frozen: { ...cb.frozen, rows: maxId } };
  assert.throws(() => checkTokensMatchCodebook(smaller, results, json), (e: Error) => e instanceof UserError && e.message.startsWith(`${json}: token id ${maxId} at position`));
});

test('a data file and an index that do not belong together are told apart, not misread', async () => {
  const { results } = await tokenizeImages(cb, encoder, PHOTOS, backend);
  const a = path.join(dir, 'pair-a.npy');
  const b = path.join(dir, 'pair-b.npy');
  await writeTokenDataset(a, results);
  await writeTokenDataset(b, [results[2]!, results[0]!, results[1]!]); // same shape, other rows
  const index = JSON.parse(await fs.readFile(`${a}.index.json`, 'utf8'));
  assert.equal(index.dataBytes, (await fs.stat(a)).size);
  assert.match(index.dataSha256, /^[0-9a-f]{64}$/);
  // b's data under a's index: same size, other content (as after a write killed between renames)
  await fs.copyFile(b, a);
  await assert.rejects(readTokenGrids(a), (e: Error) => e instanceof UserError && e.message.startsWith(`${a} does not belong to its index ${a}.index.json (the data file has a different sha256 than its index records)`));
  await fs.writeFile(a, (await fs.readFile(b)).subarray(0, 200));
  await assert.rejects(readTokenGrids(a), (e: Error) => e instanceof UserError && e.message.includes('(the data file has 200 bytes, the index says'));
  // An index of an older version (no size, no sha256) is read as it was.
  const { dataBytes: _size, dataSha256: _sha, ...legacy } = JSON.parse(await fs.readFile(`${b}.index.json`, 'utf8'));
  await fs.writeFile(`${b}.index.json`, JSON.stringify(legacy));
  assert.deepEqual((await readTokenGrids(b)).map((g) => g.image), [PHOTOS[2], PHOTOS[0], PHOTOS[1]]);
});

test('token grids beyond the grid limit are refused when read, before anything is allocated for them', async () => {
  const big = path.join(dir, 'big.json');
  await fs.writeFile(big, JSON.stringify({ grid: [2000, 2000], ids: [0] }));
  await assert.rejects(readTokenGrids(big), (e: Error) => e instanceof UserError && e.message === `${big}: grid [2000, 2000] exceeds the limit of 128 x 128 tokens`);
  const long = path.join(dir, 'long.json');
  await fs.writeFile(long, JSON.stringify({ grid: [1, 200000], ids: [] }));
  await assert.rejects(readTokenGrids(long), /grid \[1, 200000\] exceeds the limit of 128 x 128 tokens/);
  const odd = path.join(dir, 'odd.json');
  await fs.writeFile(odd, JSON.stringify({ grid: [1, 2], ids: [0, 'x'] }));
  await assert.rejects(readTokenGrids(odd), (e: Error) => e instanceof UserError && e.message === `${odd}: token id "x" is not a whole number`);
});

test('tokens made with another codebook are refused by the one codebook check', async () => {
  const { results } = await tokenizeImages(cb, encoder, PHOTOS.slice(0, 1), backend);
  const other = { ...results[0]!, codebook: '0123456789abcdef' };
  assert.throws(() => checkTokensMatchCodebook(cb, [other], 'tokens.json'), (e: Error) => e instanceof UserError &&
    e.message === `tokens.json: these tokens were made with codebook 0123456789abcdef, not with this codebook (${cb.fingerprint}); tokenize the images with it again`);
  // Tokens that name no codebook (written by other tools) are checked by range only.
  checkTokensMatchCodebook(cb, [{ ...results[0]!, codebook: '' }], 'tokens.json');
});

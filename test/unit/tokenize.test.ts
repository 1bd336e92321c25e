// tokenizeImages on real photos: ids must be the true nearest codes (checked against a brute-force
// search in plain JS over the encoder's own embeddings), bad files are skipped and named, and the
// token file forms round-trip.
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ComputeBackend, Matrix } from '../../native-gpu/backend.js';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import { buildCodebook } from '../../extension/engine/build/build.js';
import { EXTERNAL_ENCODER } from '../../extension/engine/embed/encoders/index.js';
import { readCodebook, type Codebook } from '../../extension/engine/codebook/codebook.js';
import { openEncoder, type Encoder } from '../../extension/engine/embed/encoders/index.js';
import { embedImages, rowOffsets } from '../../extension/engine/embed/embed.js';
import { CancelledError, UserError } from '../../common/errors.js';
import { readNpy, writeNpy } from '../../extension/engine/io/formats/npy.js';
import { tokenizeImages } from '../../extension/engine/search/tokenize.js';
import { checkTokensMatchCodebook, readTokenGrids, writeTokenDataset, writeTokenJson, PADDING } from '../../extension/engine/codebook/token-files.js';
import { pythonWithNumpy } from '../helpers/python.js';
import { execFileSync } from 'node:child_process';
import { dctVisionTower, siglipConfig, writeModelFolder } from '../helpers/siglip-model.js';
import { EncodePool } from '../../extension/engine/embed/encode-pool.js';

const FIXTURES = path.join(__dirname, '../fixtures');
/** 256 x 256, 256 x 170, 256 x 171 and a 640 x 400 photo: grids of three shapes */
const PHOTOS = [...['astronaut.jpg', 'chelsea.png', 'coffee.jpg'].map((f) => path.join(FIXTURES, 'images', f)), path.join(FIXTURES, 'wide', 'china-640x400.png')];
/** their grids under the keep-aspect 'dct' (short side 224): 224 x 256/170 = 337.3 -> 336, 224 x 1.6 = 358.4 -> 352 */
const GRIDS = [[14, 14], [14, 21], [14, 21], [14, 22]];

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

test('token ids are the nearest frozen codes of each patch, on each photo\'s own grid (640x400 -> 14x22)', async () => {
  const { results, skipped } = await tokenizeImages(cb, encoder, PHOTOS, backend, { withDistances: true });
  assert.deepEqual(skipped, []);
  assert.deepEqual(results.map((r) => r.image), PHOTOS);
  const { embeddings, grids } = await embedImages(encoder, PHOTOS);
  assert.deepEqual(grids, GRIDS);
  const offsets = rowOffsets(grids);
  let compared = 0;
  results.forEach((r, img) => {
    assert.deepEqual(r.grid, GRIDS[img]);
    assert.equal(r.ids.length, GRIDS[img]![0]! * GRIDS[img]![1]!);
    assert.equal(r.codebook, cb.fingerprint);
    assert.equal(r.encoder, encoder.descriptor.id);
    assert.equal(r.device, backend.device);
    assert.deepEqual(r.search, { method: 'exact', nprobe: null }); // no coarse level: exact search
    r.ids.forEach((id, p) => {
      const ref = bruteNearest(embeddings, offsets[img]! + p, cb.frozen as Matrix); // built as f32
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

test('token JSON round-trips (each grid its own shape), with ids checked against K', async () => {
  const { results } = await tokenizeImages(cb, encoder, PHOTOS, backend);
  const json = path.join(dir, 'tokens.json');
  await writeTokenJson(json, results);
  assert.deepEqual((await readTokenGrids(json)).map((g) => [g.grid, g.ids]), results.map((r) => [r.grid, r.ids]));

  const single = path.join(dir, 'one.json');
  await writeTokenJson(single, results.slice(0, 1));
  assert.equal(JSON.parse(await fs.readFile(single, 'utf8')).image, PHOTOS[0]);

  // a "search" that is not {method, nprobe} is refused when read
  const odd = path.join(dir, 'odd-search.json');
  await fs.writeFile(odd, JSON.stringify({ ...results[0], search: { method: 'ivf', nprobe: 0 } }));
  await assert.rejects(readTokenGrids(odd), (e: Error) => e instanceof UserError && /"search" must be \{method: "ivf" \| "exact", nprobe\}/.test(e.message));

  const maxId = Math.max(...results.flatMap((r) => r.ids));
  // ids beyond a smaller codebook's K: refused by the one codebook check
  const smaller = { ...cb, frozen: { ...cb.frozen, rows: maxId } };
  assert.throws(() => checkTokensMatchCodebook(smaller, results, json), (e: Error) => e instanceof UserError && e.message.startsWith(`${json}: token id ${maxId} at position`));
});

/** The README's Python loading example (Formats), run as written in a folder holding the set. */
async function loadWithReadmeExample(npy: string): Promise<number[][][] | null> {
  const python = pythonWithNumpy();
  if (!python) return null;
  const readme = await fs.readFile(path.join(__dirname, '../../README.md'), 'utf8');
  // the first python block under "Formats", its list indentation taken off
  const [, indent, block] = /( *)```python\n([\s\S]*?)\n *```/.exec(readme.slice(readme.indexOf('## Formats')))!;
  const example = block!.split('\n').map((line) => line.slice(indent!.length)).join('\n');
  const cwd = await fs.mkdtemp(path.join(dir, 'py-'));
  await fs.copyFile(npy, path.join(cwd, 'photos.tokens.npy'));
  await fs.copyFile(`${npy}.index.json`, path.join(cwd, 'photos.tokens.npy.index.json'));
  const script = `${example}\nimport json as _j\nprint(_j.dumps([g.tolist() for g in images]))`;
  return JSON.parse(execFileSync(python, ['-c', script], { cwd, encoding: 'utf8' })) as number[][][];
}

test('a folder of mixed shapes tokenizes into a ragged data set ([N, Lmax] padded with -1, per-image grids) that reads back identically', async (t) => {
  const { results } = await tokenizeImages(cb, encoder, PHOTOS, backend);
  const npy = path.join(dir, 'data.npy');
  const { shape, grid } = await writeTokenDataset(npy, results);
  assert.deepEqual([shape, grid], [[4, 14 * 22], null]);
  const arr = await readNpy(npy);
  assert.equal(arr.dtype, 'int32');
  assert.deepEqual(arr.shape, [4, 308]);
  const expected = results.flatMap((r) => [...r.ids, ...new Array<number>(308 - r.ids.length).fill(PADDING)]);
  assert.deepEqual(Array.from(arr.data as Int32Array), expected);
  const index = JSON.parse(await fs.readFile(`${npy}.index.json`, 'utf8'));
  assert.deepEqual(index.images, PHOTOS);
  assert.deepEqual([index.grids, index.grid], [GRIDS, undefined]);
  assert.equal(index.codebook, cb.fingerprint);
  assert.deepEqual(index.search, { method: 'exact', nprobe: null });
  const back = await readTokenGrids(npy);
  assert.deepEqual(back, results.map(({ distances: _d, ...r }) => r));

  // NumPy, through the README's own example: each image's ids as its h x w grid.
  const loaded = await loadWithReadmeExample(npy);
  if (!loaded) return t.skip('no python3 with NumPy on this machine');
  assert.deepEqual(loaded, results.map((r) => Array.from({ length: r.grid[0] }, (_, y) => r.ids.slice(y * r.grid[1], (y + 1) * r.grid[1]))));
});

test('the square form: dct:224:square gives one grid, an [N, L] data set with one "grid", read back identically', async () => {
  const square = await openEncoder('dct:224:square', backend);
  try {
    const { results } = await tokenizeImages(cb, square, PHOTOS, backend);
    assert.deepEqual(results.map((r) => r.grid), PHOTOS.map(() => [14, 14]));
    assert.deepEqual(results.map((r) => r.encoder), PHOTOS.map(() => 'dct:224:square'));
    const npy = path.join(dir, 'square.npy');
    assert.deepEqual(await writeTokenDataset(npy, results), { shape: [4, 196], grid: [14, 14] });
    const arr = await readNpy(npy);
    assert.deepEqual(arr.shape, [4, 196]);
    assert.deepEqual(Array.from(arr.data as Int32Array), results.flatMap((r) => r.ids));
    const index = JSON.parse(await fs.readFile(`${npy}.index.json`, 'utf8'));
    assert.deepEqual([index.grid, index.grids], [[14, 14], undefined]);
    assert.deepEqual(await readTokenGrids(npy), results);
    const loaded = await loadWithReadmeExample(npy);
    if (loaded) assert.deepEqual(loaded.map((g) => g.flat()), results.map((r) => r.ids));
  } finally {
    await square.dispose();
  }
});

test('a ragged data set whose padding or grids do not add up is refused, not misread', async () => {
  const write = async (name: string, rows: number[][], index: Record<string, unknown>) => {
    const npy = path.join(dir, `${name}.npy`);
    await writeNpy(npy, { shape: [rows.length, rows[0]!.length], dtype: 'int32', data: Int32Array.from(rows.flat()) });
    // no dataBytes / dataSha256, as an older or hand-made index: the shapes alone must catch it
    await fs.writeFile(`${npy}.index.json`, JSON.stringify({ images: rows.map((_, i) => `${i}.png`), codebook: '', encoder: 'dct:224', device: 'cpu', ...index }));
    return npy;
  };
  const ok = await write('ok', [[1, 2, 3, 4, 5, 6], [7, 8, -1, -1, -1, -1]], { grids: [[2, 3], [1, 2]] });
  assert.deepEqual((await readTokenGrids(ok)).map((g) => [g.grid, g.ids]), [[[2, 3], [1, 2, 3, 4, 5, 6]], [[1, 2], [7, 8]]]);
  const idPastGrid = await write('past', [[1, 2, 3, 4, 5, 6], [7, 8, 9, -1, -1, -1]], { grids: [[2, 3], [1, 2]] });
  await assert.rejects(readTokenGrids(idPastGrid), (e: Error) => e instanceof UserError && e.message === `${idPastGrid}: row 1 holds id 9 past its 1x2 grid, where only the padding -1 belongs`);
  const tooWide = await write('wide', [[1, 2, 3, 4, 5, 6, -1], [7, 8, -1, -1, -1, -1, -1]], { grids: [[2, 3], [1, 2]] });
  await assert.rejects(readTokenGrids(tooWide), /rows of 7 tokens do not fill the largest of the grids \(6 tokens\) of its index/);
  const both = await write('both', [[1, 2], [3, 4]], { grid: [1, 2], grids: [[1, 2], [1, 2]] });
  await assert.rejects(readTokenGrids(both), /is not a token data set index: expected "images", "grid" \(or "grids", one per image\)/);
  const fewer = await write('fewer', [[1, 2], [3, 4]], { grids: [[1, 2]] });
  await assert.rejects(readTokenGrids(fewer), /lists 2 images but 1 grids/);
  const huge = await write('huge', [[1, 2], [3, 4]], { grids: [[1, 2], [1, 200000]] });
  await assert.rejects(readTokenGrids(huge), /grid 1: grid \[1, 200000\] exceeds the limit of 128 x 128 tokens/);
});

test('a data file and an index that do not belong together are told apart, not misread', async () => {
  const { results } = await tokenizeImages(cb, encoder, PHOTOS, backend);
  const a = path.join(dir, 'pair-a.npy');
  const b = path.join(dir, 'pair-b.npy');
  await writeTokenDataset(a, results);
  await writeTokenDataset(b, [results[2]!, results[0]!, results[1]!, results[3]!]); // same shape, other rows
  const index = JSON.parse(await fs.readFile(`${a}.index.json`, 'utf8'));
  assert.equal(index.dataBytes, (await fs.stat(a)).size);
  assert.match(index.dataSha256, /^[0-9a-f]{64}$/);
  // b's data under a's index: same size, other content (as after a write killed between renames)
  await fs.copyFile(b, a);
  await assert.rejects(readTokenGrids(a), (e: Error) => e instanceof UserError && e.message.startsWith(`${a} does not belong to its index pair-a.npy.index.json (the data file has a different sha256 than its index records)`));
  await fs.writeFile(a, (await fs.readFile(b)).subarray(0, 200));
  await assert.rejects(readTokenGrids(a), (e: Error) => e instanceof UserError && e.message.includes('(the data file has 200 bytes, the index says'));
  // An index of an older version (no size, no sha256) is read as it was.
  const { dataBytes: _size, dataSha256: _sha, ...legacy } = JSON.parse(await fs.readFile(`${b}.index.json`, 'utf8'));
  await fs.writeFile(`${b}.index.json`, JSON.stringify(legacy));
  assert.deepEqual((await readTokenGrids(b)).map((g) => g.image), [PHOTOS[2], PHOTOS[0], PHOTOS[1], PHOTOS[3]]);
});

test('a data set whose index is missing or not JSON is refused naming the index once, not the data file beside it too', async () => {
  const set = path.join(dir, 'no-index.npy');
  const once = (message: string) => message.split(set).length - 1 === 1;
  await assert.rejects(readTokenGrids(set), (e: Error) => e instanceof UserError && e.message === `${set}.index.json: cannot read the token data set's index: no such file or folder` && once(e.message));
  await fs.writeFile(`${set}.index.json`, '{"images": [');
  await assert.rejects(readTokenGrids(set), (e: Error) => e instanceof UserError && e.message.startsWith(`${set}.index.json: the token data set's index is not valid JSON (`) && once(e.message));
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

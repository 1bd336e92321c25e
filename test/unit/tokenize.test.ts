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
import { UserError } from '../../common/errors';
import { readNpy, writeNpy } from '../../extension/engine/formats/npy';
import { tokenizeImages, readTokenGrids, writeTokenDataset, writeTokenJson } from '../../extension/engine/tokenize';

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
    r.ids.forEach((id, p) => {
      const ref = bruteNearest(embeddings, img * 196 + p, cb.frozen);
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
  assert.deepEqual((await readTokenGrids(json, cb.frozen.rows)).map((g) => g.ids), results.map((r) => r.ids));

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
  const back = await readTokenGrids(npy, cb.frozen.rows);
  assert.deepEqual(back.map((g) => g.ids), results.map((r) => r.ids));

  const maxId = Math.max(...results.flatMap((r) => r.ids));
  await assert.rejects(readTokenGrids(json, maxId), (e: Error) => e instanceof UserError && /outside the codebook's range/.test(e.message));
});

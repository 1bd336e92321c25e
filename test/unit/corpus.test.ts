import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ComputeBackend } from '../../native-gpu/backend.js';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import { corpusInputFingerprint, extractCorpus, MANIFEST, type CorpusManifest } from '../../extension/engine/embed/corpus.js';
import { IMAGE_BATCH } from '../../extension/engine/embed/embed.js';
import { imageGrid, openEncoder, type Encoder } from '../../extension/engine/embed/encoders/index.js';
import { CancelledError, UserError } from '../../common/errors.js';
import { readEmbeddings } from '../../extension/engine/io/formats/npy.js';
import { f16ToF32, f32ToF16 } from '../../common/half.js';
import { inputName, listImages } from '../../extension/engine/embed/image.js';

const fixtures = path.join(__dirname, '../fixtures');
const truncated = path.join(fixtures, 'bad/truncated.jpg');

let backend: ComputeBackend;
let encoder: Encoder;
let images: string[];
let tmp: string;
test.before(async () => {
  backend = await createCpuBackend();
  encoder = await openEncoder('dct:64', backend); // 16 tokens per image keeps the corpus small
  images = await listImages(path.join(fixtures, 'images'));
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'corpus-'));
});
test.after(async () => {
  await encoder.dispose();
  await backend.dispose();
  await fs.rm(tmp, { recursive: true, force: true });
});

/** The encoder with a count of the images it was asked to load. */
function counting(e: Encoder): { encoder: Encoder; loads: string[] } {
  const loads: string[] = [];
  return { loads, encoder: { ...e, load: (p) => (loads.push(inputName(p)), e.load(p)) } };
}

/** Rows of `files` under the keep-aspect encoder: each photo's own grid. */
async function rowsOf(files: string[]): Promise<number> {
  const grids = await Promise.all(files.map(async (f) => imageGrid(await encoder.load(f), encoder.patch)));
  return grids.reduce((n, [h, w]) => n + h * w, 0);
}

async function expectedRows(files: string[]): Promise<Float32Array> {
  const m = await encoder.encode(await Promise.all(files.map((f) => encoder.load(f))));
  return f16ToF32(f32ToF16(m.data)); // what an f16 shard can hold
}

async function manifestOf(dir: string): Promise<CorpusManifest> {
  return JSON.parse(await fs.readFile(path.join(dir, MANIFEST), 'utf8'));
}

test('extracts f16 shards + manifest; the folder reads back as the embeddings, in order; bad files are listed', async () => {
  const dir = path.join(tmp, 'all');
  const input = [...images, truncated];
  const progress: number[] = [];
  // One image per shard: every encoder batch (IMAGE_BATCH images) becomes its own shard.
  const result = await extractCorpus(encoder, input, dir, { shardBytes: 1, onProgress: (done) => progress.push(done) });
  assert.equal(result.d, 768);
  assert.equal(result.vectors, await rowsOf(images));
  assert.deepEqual(result.skipped.map((s) => s.path), [truncated]);
  assert.match(result.skipped[0].reason, /truncated\.jpg: cannot read image/);
  // The unreadable file comes last, so it adds no shard.
  assert.equal(result.shards.length, Math.ceil(images.length / IMAGE_BATCH));
  assert.equal(progress.at(-1), input.length);

  const m = await manifestOf(dir);
  assert.deepEqual(m.encoder, encoder.descriptor);
  assert.deepEqual(m.images.map((i) => i.path), images);
  // Each image's grid is its own (the fixtures are square, 3:2 and in between): rows = h * w.
  for (const entry of m.images) assert.deepEqual([entry.grid, entry.rows], [imageGrid(await encoder.load(entry.path), 16), entry.grid![0] * entry.grid![1]]);
  assert.ok(new Set(m.images.map((i) => i.grid!.join('x'))).size > 1, 'grids of several shapes');
  assert.deepEqual(m.skipped, result.skipped);
  assert.equal(m.shards.reduce((n, s) => n + s.rows, 0), result.vectors);

  const back = await readEmbeddings(dir);
  assert.deepEqual([back.rows, back.cols], [result.vectors, 768]);
  assert.deepEqual(back.data, await expectedRows(images));
  // The per-image index points at that image's rows.
  const entry = m.images[9];
  const shardStart = m.shards.slice(0, entry.shard).reduce((n, s) => n + s.rows, 0);
  const own = back.data.subarray((shardStart + entry.row) * 768, (shardStart + entry.row + entry.rows) * 768);
  assert.deepEqual(own, await expectedRows([entry.path]));
});

test('resumes: a second run encodes only the images not in the manifest, and leftovers of a crash are dropped', async () => {
  const dir = path.join(tmp, 'resume');
  // The first run stops after its first batch (as a crash after that shard would).
  const abort = new AbortController();
  await assert.rejects(extractCorpus(encoder, images, dir, { signal: abort.signal, onProgress: (done) => done >= IMAGE_BATCH && abort.abort() }), CancelledError);
  // A shard written just before a crash, never named by the manifest.
  await fs.writeFile(path.join(dir, 'shard-00007.npy'), 'half-written');
  const { encoder: counted, loads } = counting(encoder);
  const result = await extractCorpus(counted, images, dir);
  assert.deepEqual(loads, images.slice(IMAGE_BATCH));
  assert.equal(result.vectors, await rowsOf(images));
  await assert.rejects(fs.stat(path.join(dir, 'shard-00007.npy')), { code: 'ENOENT' });
  assert.deepEqual((await readEmbeddings(dir)).data, await expectedRows(images));
  // Nothing new: nothing is encoded.
  const again = counting(encoder);
  await extractCorpus(again.encoder, images, dir);
  assert.deepEqual(again.loads, []);
});

test('a folder holding the corpus of other images is refused: no vector of an image outside the input is used', async () => {
  const dir = path.join(tmp, 'inputs');
  await extractCorpus(encoder, images.slice(0, 3), dir);
  const m = await manifestOf(dir);
  assert.equal(m.inputs, corpusInputFingerprint(encoder.descriptor, images.slice(0, 3)));
  // The fingerprint is of the set of images: the order they are given in does not matter.
  assert.equal(m.inputs, corpusInputFingerprint(encoder.descriptor, images.slice(0, 3).reverse()));
  await assert.rejects(
    extractCorpus(encoder, images.slice(1, 4), dir),
    (e: Error) => e instanceof UserError && e.message === `${dir} holds the corpus of other images (input fingerprint ${m.inputs}, not ${corpusInputFingerprint(encoder.descriptor, images.slice(1, 4))}); use another folder`,
  );
});

test('a cancel keeps the batches already encoded; the next run finishes the rest', async () => {
  const dir = path.join(tmp, 'cancel');
  const abort = new AbortController();
  await assert.rejects(
    extractCorpus(encoder, images, dir, { signal: abort.signal, onProgress: (done) => done >= IMAGE_BATCH && abort.abort() }),
    CancelledError,
  );
  const kept = (await manifestOf(dir)).images.map((i) => i.path);
  assert.deepEqual(kept, images.slice(0, IMAGE_BATCH));
  const { encoder: counted, loads } = counting(encoder);
  await extractCorpus(counted, images, dir);
  assert.deepEqual(loads, images.slice(IMAGE_BATCH));
  assert.deepEqual((await readEmbeddings(dir)).data, await expectedRows(images));
});

test('a folder holding another encoder\'s corpus is refused', async () => {
  const dir = path.join(tmp, 'other');
  await extractCorpus(encoder, images.slice(0, 1), dir);
  const other = await openEncoder('dct:32', backend);
  try {
    await assert.rejects(extractCorpus(other, images, dir), (e: Error) => e instanceof UserError && /made with encoder 'dct:64', not 'dct:32'/.test(e.message));
  } finally {
    await other.dispose();
  }
});

test('an activation beyond f16 range is an error naming the image, and no shard is kept for it', async () => {
  const dir = path.join(tmp, 'overflow');
  const loud: Encoder = {
    ...encoder,
    encode: async (imgs, control) => {
      const m = await encoder.encode(imgs, control);
      m.data[m.data.length - 1] = 1e6; // the last image of the batch
      return m;
    },
  };
  const batch = images.slice(0, 3);
  await assert.rejects(extractCorpus(loud, batch, dir), (e: Error) => e instanceof UserError && e.message.startsWith(`${batch[2]}: encoder 'dct:64' produced a value (1000000) that f16 cannot store`));
  assert.deepEqual((await fs.readdir(dir)).filter((f) => f.endsWith('.npy')), []);
});

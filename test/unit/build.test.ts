// buildCodebook on real data: precomputed .npy embeddings and the real fixture photos through the
// DCT encoder, k-means on the real CPU backend (onnxruntime).
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ComputeBackend, Matrix } from '../../native-gpu/backend.js';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import { buildCodebook } from '../../extension/engine/build/build.js';
import { lockOutput } from '../../extension/engine/io/output-lock.js';
import { EXTERNAL_ENCODER, imageGrid, openEncoder } from '../../extension/engine/embed/encoders/index.js';
import { listImages } from '../../extension/engine/embed/image.js';
import { readCodebook, codebookFingerprint } from '../../extension/engine/codebook/codebook.js';
import { writeNpy } from '../../extension/engine/io/formats/npy.js';
import { CancelledError, UserError } from '../../common/errors.js';
import { seededRandom } from '../../extension/engine/core/sampling.js';

const FIXTURES = path.join(__dirname, '../fixtures/images');

let backend: ComputeBackend;
let dir: string;

before(async () => {
  backend = await createCpuBackend();
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-build-'));
});
after(async () => {
  await backend.dispose();
  await fs.rm(dir, { recursive: true, force: true });
});

/** `clusters` well-separated Gaussian blobs of `per` points each in d dimensions. */
function blobs(clusters: number, per: number, d: number, seed: number): Matrix {
  const random = seededRandom(seed);
  const data = new Float32Array(clusters * per * d);
  for (let c = 0; c < clusters; c++) {
    const centre = Array.from({ length: d }, () => (random() - 0.5) * 100);
    for (let p = 0; p < per; p++) {
      for (let j = 0; j < d; j++) data[(c * per + p) * d + j] = centre[j]! + (random() - 0.5);
    }
  }
  return { rows: clusters * per, cols: d, data };
}

async function npyOf(name: string, m: Matrix): Promise<string> {
  const file = path.join(dir, name);
  await writeNpy(file, { shape: [m.rows, m.cols], dtype: 'float32', data: m.data });
  return file;
}

test('build from .npy embeddings writes a codebook that finds the clusters', async () => {
  const points = blobs(8, 40, 16, 1);
  const embeddings = await npyOf('blobs.npy', points);
  const out = path.join(dir, 'blobs.safetensors');
  const summary = await buildCodebook({ embeddings, encoder: EXTERNAL_ENCODER, k: 8, iterations: 30, seed: 3, out }, backend);

  assert.equal(summary.k, 8);
  assert.equal(summary.d, 16);
  assert.equal(summary.dead, 0);
  assert.equal(summary.utilization, 1);
  // 8 blobs of 40 equally sized points: perplexity of a perfect clustering is exactly 8.
  assert.ok(Math.abs(summary.perplexity - 8) < 1e-9, `perplexity ${summary.perplexity}`);
  // Every point within 0.5 of its blob centre per coordinate: inertia <= N * d * 0.25.
  assert.ok(summary.inertia < points.rows * 16 * 0.25, `inertia ${summary.inertia}`);

  const cb = await readCodebook(out);
  assert.equal(cb.fingerprint, summary.fingerprint);
  assert.equal(cb.meta.encoder.id, EXTERNAL_ENCODER);
  assert.equal(cb.meta.encoder.d, 16);
  assert.equal(cb.meta.atlas, 'none');
  assert.equal(cb.meta.k, 8);
  assert.equal(cb.meta.seed, 3);
  assert.equal(cb.meta.corpusFingerprint, codebookFingerprint(points));
  assert.deepEqual(await cb.trainable.load(), cb.frozen);
  assert.equal(cb.counts!.reduce((a, b) => a + b, 0), points.rows);
});

test('the same seed gives the same codebook; a sample trains on fewer vectors', async () => {
  const embeddings = await npyOf('blobs2.npy', blobs(4, 50, 8, 2));
  const run = (name: string, sample?: number) =>
    buildCodebook({ embeddings, encoder: EXTERNAL_ENCODER, k: 4, seed: 7, sample, out: path.join(dir, name) }, backend);
  const a = await run('a.safetensors');
  const b = await run('b.safetensors');
  assert.equal(a.fingerprint, b.fingerprint);
  await run('s.safetensors', 60);
  const sampled = await readCodebook(path.join(dir, 's.safetensors'));
  assert.equal(sampled.counts!.reduce((x, y) => x + y, 0), 60);
  await assert.rejects(run('t.safetensors', 3), (e: Error) => e instanceof UserError && /k=4 .*3/.test(e.message));
});

test('bad requests are UserErrors and write nothing', async () => {
  const embeddings = await npyOf('small.npy', blobs(2, 5, 4, 3));
  const out = path.join(dir, 'never.safetensors');
  const req = { embeddings, encoder: EXTERNAL_ENCODER, out };
  await assert.rejects(buildCodebook({ ...req, k: 0 }, backend), UserError);
  await assert.rejects(buildCodebook({ ...req, k: 11 }, backend), (e: Error) => e instanceof UserError && /larger than the number of vectors \(10\)/.test(e.message));
  await assert.rejects(buildCodebook({ ...req, k: 2, lambda: -1 }, backend), UserError);
  await assert.rejects(buildCodebook({ ...req, k: 2, encoder: 'dct' }, backend), (e: Error) => e instanceof UserError && /d=4 .*d=768/.test(e.message));
  await assert.rejects(buildCodebook({ ...req, images: FIXTURES, k: 2 }, backend), UserError);

  const nan = blobs(2, 5, 4, 4);
  nan.data[13] = NaN;
  const nanFile = await npyOf('nan.npy', nan);
  await assert.rejects(buildCodebook({ ...req, embeddings: nanFile, k: 2 }, backend), UserError);
  await assert.rejects(fs.access(out));
});

test('a cancelled build leaves the previous codebook byte-identical and no temp file', async () => {
  const embeddings = await npyOf('cancel.npy', blobs(16, 60, 32, 5));
  const out = path.join(dir, 'cancel', 'cb.safetensors');
  await buildCodebook({ embeddings, encoder: EXTERNAL_ENCODER, k: 4, out }, backend);
  const before = await fs.readFile(out);
  const controller = new AbortController();
  const phases: string[] = [];
  await assert.rejects(
    buildCodebook({ embeddings, encoder: EXTERNAL_ENCODER, k: 16, iterations: 1000, tolerance: 0, seed: 9, out }, backend, {
      signal: controller.signal,
      onProgress: (e) => {
        phases.push(e.phase);
        if (e.phase === 'kmeans' && e.done >= 2) controller.abort();
      },
    }),
    CancelledError,
  );
  assert.ok(phases.includes('kmeans') && !phases.includes('write'), phases.join(','));
  assert.deepEqual(await fs.readFile(out), before);
  assert.deepEqual(await fs.readdir(path.dirname(out)), ['cb.safetensors']);
});

test('build from real photos with the DCT encoder records the encoder and a DCT atlas', async () => {
  const out = path.join(dir, 'photos.safetensors');
  const phases = new Set<string>();
  const summary = await buildCodebook({ images: FIXTURES, encoder: 'dct', k: 32, iterations: 5, lambda: 0.1, out }, backend, {
    onProgress: (e) => phases.add(e.phase),
  });
  assert.deepEqual([...phases], ['embed', 'kmeans', 'evaluate', 'write']);
  assert.equal(summary.d, 768);
  assert.equal(summary.device, backend.device);
  const cb = await readCodebook(out);
  assert.equal(cb.meta.encoder.kind, 'dct');
  assert.equal(cb.meta.atlas, 'dct');
  assert.equal(cb.meta.lambda, 0.1);
  assert.equal(cb.frozen.rows, 32);
  // Every patch of every readable photo was counted, each photo on its own grid.
  const total = cb.counts!.reduce((a, b) => a + b, 0);
  const readable = (await listImages(FIXTURES)).filter((f) => !summary.skipped.some((s) => s.path === f));
  assert.ok(readable.length >= 10, `only ${readable.length} images embedded`);
  assert.equal(total, await tokensOf('dct', readable));
});

test('unreadable images in the folder are left out and listed', async () => {
  const folder = path.join(dir, 'mixed');
  await fs.mkdir(folder);
  for (const name of ['astronaut.jpg', 'coffee.jpg']) await fs.copyFile(path.join(FIXTURES, name), path.join(folder, name));
  const bad = path.join(folder, 'broken.png');
  await fs.copyFile(path.join(FIXTURES, '../bad/not-an-image.png'), bad);
  const out = path.join(dir, 'mixed.safetensors');
  const summary = await buildCodebook({ images: folder, encoder: 'dct', k: 4, iterations: 2, out }, backend);
  assert.deepEqual(summary.skipped.map((s) => s.path), [bad]);
  const cb = await readCodebook(out);
  assert.equal(cb.counts!.reduce((a, b) => a + b, 0), 14 * 14 + 14 * 21); // 256 x 256 and 256 x 171 photos
});

/** Tokens encoder `spec` gives `files`: each photo's grid, as the encoder loads it. */
async function tokensOf(spec: string, files: string[]): Promise<number> {
  const encoder = await openEncoder(spec, backend);
  try {
    let tokens = 0;
    for (const file of files) {
      const [h, w] = imageGrid(await encoder.load(file), encoder.patch);
      tokens += h * w;
    }
    return tokens;
  } finally {
    await encoder.dispose();
  }
}

/** A folder of copies of some fixture photos. */
async function photoFolder(name: string, photos: string[]): Promise<string> {
  const folder = path.join(dir, name);
  await fs.mkdir(folder, { recursive: true });
  for (const photo of photos) await fs.copyFile(path.join(FIXTURES, photo), path.join(folder, photo));
  return folder;
}

test('an interrupted on-disk build of folder A, then a build of folder B to the same output, trains on B alone', async () => {
  const a = await photoFolder('corpus-a', ['astronaut.jpg', 'coffee.jpg', 'chelsea.png', 'brick.png', 'grass.png', 'gravel.png', 'flower.jpg', 'hubble_deep_field.jpg', 'motorcycle_left.jpg']);
  const b = await photoFolder('corpus-b', ['astronaut.jpg', 'chelsea.png']);
  const out = path.join(dir, 'corpus-out', 'cb.safetensors');
  // inMemoryCorpusBytes 0: every build goes through the resumable corpus folder beside the output.
  const req = { encoder: 'dct:64', k: 8, iterations: 3, seed: 1, inMemoryCorpusBytes: 0, out };
  const abort = new AbortController();
  await assert.rejects(
    buildCodebook({ ...req, images: a }, backend, { signal: abort.signal, onProgress: (e) => e.phase === 'embed' && e.done >= 8 && abort.abort() }),
    CancelledError,
  );
  const left = await fs.readdir(path.dirname(out));
  assert.equal(left.filter((n) => n.startsWith('cb.safetensors.corpus-')).length, 1, left.join(','));
  assert.ok(!left.includes('cb.safetensors.lock'), 'the cancelled build released its lock');

  const summary = await buildCodebook({ ...req, images: b }, backend);
  // The same build of B alone, into a fresh folder: the same corpus, hence the same codebook.
  const fresh = await buildCodebook({ ...req, images: b, out: path.join(dir, 'corpus-fresh', 'cb.safetensors') }, backend);
  const [got, want] = [await readCodebook(out), await readCodebook(fresh.out)];
  assert.equal(got.meta.corpusFingerprint, want.meta.corpusFingerprint);
  assert.equal(summary.fingerprint, fresh.fingerprint);
  assert.equal(got.counts!.reduce((x, y) => x + y, 0), 4 * 4 + 4 * 6); // astronaut 4x4, chelsea 4x6 tokens, nothing of A
  // B's corpus is read and gone, and so is the one A's interrupted build left.
  assert.deepEqual(await fs.readdir(path.dirname(out)), ['cb.safetensors']);
});

test('one job owns an output: a build is refused while another job holds it, a dead holder\'s lock is taken over', async () => {
  const embeddings = await npyOf('lock.npy', blobs(16, 60, 32, 6));
  const out = path.join(dir, 'lock', 'cb.safetensors');
  const req = { embeddings, encoder: EXTERNAL_ENCODER, k: 4, iterations: 2, out };
  // A job of this (live) process holds the output, as the extension's job runner does.
  const held = await lockOutput(out, 'build');
  await assert.rejects(buildCodebook(req, backend), (e: Error) => e instanceof UserError && e.message === `a build into ${out} is already running; wait for it or choose another output`);
  await assert.rejects(fs.stat(out), { code: 'ENOENT' });
  await held.release();
  await buildCodebook(req, backend);
  assert.deepEqual(await fs.readdir(path.dirname(out)), ['cb.safetensors']);

  // A lock left by a process that is gone (here: a child that has exited) is taken over.
  const child = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
  const deadPid = Number(child.stdout.trim());
  await fs.writeFile(`${out}.lock`, JSON.stringify({ pid: deadPid, started: null, job: 'build', token: 'x' }));
  const before = await fs.readFile(out);
  await buildCodebook({ ...req, seed: 5, k: 5 }, backend);
  assert.notDeepEqual(await fs.readFile(out), before);
  assert.deepEqual(await fs.readdir(path.dirname(out)), ['cb.safetensors']);
  // A pid that runs again, but as a process started at another time than the holder: gone too.
  await fs.writeFile(`${out}.lock`, JSON.stringify({ pid: process.pid, started: 1, job: 'build', token: 'y' }));
  await buildCodebook(req, backend);
  assert.deepEqual(await fs.readdir(path.dirname(out)), ['cb.safetensors']);
});

test('a build says how many vectors trained it, records them, and warns when they are fewer than 4 per code', async () => {
  const embeddings = await npyOf('blobs-few.npy', blobs(8, 40, 16, 4));
  const run = (name: string, k: number, sample?: number) =>
    buildCodebook({ embeddings, encoder: EXTERNAL_ENCODER, k, iterations: 5, seed: 1, sample, out: path.join(dir, name) }, backend);
  const enough = await run('enough.safetensors', 80);
  assert.equal(enough.vectors, 320);
  assert.equal(enough.warning, null, '320 vectors for 80 codes: 4 a code');
  assert.equal((await readCodebook(path.join(dir, 'enough.safetensors'))).meta.trainingVectors, 320);
  const few = await run('few.safetensors', 81);
  assert.match(few.warning!, /^K = 81 codes from 320 training vectors, 3\.9 per code \(fewer than 4\): .* measure memorization/);
  // a sample trains on fewer vectors: those are the ones that count
  const sampled = await run('sampled.safetensors', 16, 60);
  assert.equal(sampled.vectors, 60);
  assert.match(sampled.warning!, /K = 16 codes from 60 training vectors, 3\.7 per code/);
  assert.equal((await readCodebook(path.join(dir, 'sampled.safetensors'))).meta.trainingVectors, 60);
});

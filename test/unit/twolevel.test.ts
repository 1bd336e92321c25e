// Two-level k-means (engine/build/twolevel.ts through buildCodebook and the CLI) on embedding-like data
// (bench/embedding-data.ts) and the real fixture photos, on the real CPU backend: the shares, the
// quality against flat k-means, resuming after SIGKILL and Ctrl-C to the byte, the memory budget
// measured on a child process, f16 storage, and codebooks the rest of the product reads.
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, type ChildProcess } from 'node:child_process';
import type { ComputeBackend } from '../../native-gpu/backend.js';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import { buildCodebook, calibrationSplit } from '../../extension/engine/build/build.js';
import { readCodebook } from '../../extension/engine/codebook/codebook.js';
import { openEncoder } from '../../extension/engine/embed/encoders/index.js';
import { writeNpy } from '../../extension/engine/io/formats/npy.js';
import { readSafetensors } from '../../extension/engine/io/formats/safetensors.js';
import { listImages } from '../../extension/engine/embed/image.js';
import { seededRandom } from '../../extension/engine/core/sampling.js';
import { decodeTokens } from '../../extension/engine/generate/atlas.js';
import { tokenizeImages } from '../../extension/engine/search/tokenize.js';
import { CALIBRATION_TARGET, nprobeLadder } from '../../extension/engine/search/search.js';
import { readNpy } from '../../extension/engine/io/formats/npy.js';
import { proportionalShares } from '../../extension/engine/build/twolevel.js';
import { describeProgress, PhaseClock } from '../../extension/engine/core/eta.js';
import { f32ToF16 } from '../../common/half.js';
import { isHalf } from '../../native-gpu/tables.js';
import { UserError } from '../../common/errors.js';
import { EmbeddingMixture } from '../../bench/embedding-data.js';
import { cliRunner, type Run } from '../helpers/cli.js';
import { ivfRecallOf } from '../helpers/nearest.js';

const ROOT = path.join(__dirname, '../..');
const IMAGES = path.join(ROOT, 'test/fixtures/images');

let backend: ComputeBackend;
let dir: string;
const { cli, cliJson, assertUserError } = cliRunner(() => dir);

before(async () => {
  execFileSync(process.execPath, ['scripts/build.mjs', '--quiet'], { cwd: ROOT, stdio: 'inherit' });
  backend = await createCpuBackend();
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-twolevel-'));
});
after(async () => {
  await backend.dispose();
  await fs.rm(dir, { recursive: true, force: true });
});

/** `rows` embedding-like vectors (a Zipf mixture on the sphere) as f16 shards of `shardRows`. */
async function mixtureShards(name: string, rows: number, d: number, shardRows = rows): Promise<string> {
  const folder = path.join(dir, name);
  await fs.mkdir(folder);
  const mixture = new EmbeddingMixture({ d, components: 300, seed: 7 });
  for (let start = 0, i = 0; start < rows; start += shardRows, i++) {
    const n = Math.min(shardRows, rows - start);
    await writeNpy(path.join(folder, `part-${i}.npy`), { shape: [n, d], dtype: 'float16', data: f32ToF16(mixture.rows(start, n)) });
  }
  return folder;
}

test('shares sum to K, follow the cell sizes, and never exceed a cell', () => {
  const random = seededRandom(3);
  for (let trial = 0; trial < 200; trial++) {
    const cells = 1 + Math.floor(random() * 40);
    // power-law sizes with empty and single-point cells among them
    const sizes = Array.from({ length: cells }, () => (random() < 0.15 ? Math.floor(random() * 2) : Math.floor(1 / (random() + 0.002))));
    const n = sizes.reduce((a, b) => a + b, 0);
    if (n === 0) continue;
    const k = 1 + Math.floor(random() * n);
    const shares = proportionalShares(sizes, k);
    assert.equal(shares.reduce((a, b) => a + b, 0), k, `sizes ${sizes} k ${k}`);
    sizes.forEach((size, c) => {
      assert.ok(shares[c]! <= size, `cell ${c}: ${shares[c]} codes for ${size} points`);
      assert.ok(Math.abs(shares[c]! - (k * size) / n) < 1, `cell ${c}: share ${shares[c]} vs ${(k * size) / n}`);
    });
  }
  assert.deepEqual(Array.from(proportionalShares([10, 0, 30], 4)), [1, 0, 3]);
  assert.throws(() => proportionalShares([2, 1], 4), UserError);
});

test('two-level comes within 3% of flat k-means MSE on embedding-like data, with a valid coarse level', async () => {
  const embeddings = await mixtureShards('quality', 20_000, 32, 6_000);
  const run = (method: 'flat' | 'two-level') =>
    buildCodebook({ embeddings, encoder: 'external', k: 256, iterations: 15, seed: 5, method, out: path.join(dir, `quality-${method}.safetensors`) }, backend);
  const flat = await run('flat');
  const two = await run('two-level');
  assert.equal(flat.method, 'flat');
  assert.equal(two.method, 'two-level');
  assert.equal(two.coarse, 16);
  // every phase timed, whether or not anyone listened to the progress
  assert.deepEqual(Object.keys(flat.phaseSeconds), ['kmeans', 'evaluate', 'write']);
  assert.deepEqual(Object.keys(two.phaseSeconds), ['sample', 'coarse', 'partition', 'cells', 'refine', 'evaluate', 'calibrate', 'write']);
  const timed = Object.values(two.phaseSeconds).reduce((a, b) => a + b, 0);
  assert.ok(timed > 0 && timed <= two.seconds, `phases ${timed} s of ${two.seconds} s`);
  // Measured here: ratio ~1.01-1.02 (cells confine codes; refinement wins some of it back).
  assert.ok(two.mse <= 1.03 * flat.mse, `two-level MSE ${two.mse} vs flat ${flat.mse}`);
  assert.ok(two.mse < 0.9 * (await oneCodeMse(embeddings)), 'two-level clustered nothing');

  const cb = await readCodebook(two.out);
  assert.equal(cb.fingerprint, two.fingerprint);
  assert.equal(cb.meta.method, 'two-level');
  assert.equal(cb.counts!.reduce((a, b) => a + b, 0), 18_000); // a tenth held out to calibrate the IVF search
  assert.equal(cb.coarse!.centroids.rows, 16);
  // codes grouped by cell, every cell that holds vectors holds codes
  const assign = Array.from(cb.coarse!.assign);
  assert.deepEqual(assign, [...assign].sort((a, b) => a - b));
  assert.equal(new Set(assign).size, 16);
  // same input, same corpus fingerprint, whichever method
  assert.equal(cb.meta.corpusFingerprint, (await readCodebook(flat.out)).meta.corpusFingerprint);
});

test('--sample: two-level trains on a seeded subset and fingerprints all of the input', async () => {
  const embeddings = await mixtureShards('sample', 9_000, 24, 4_000);
  const run = (method: 'flat' | 'two-level', sample?: number) =>
    buildCodebook({ embeddings, encoder: 'external', k: 32, iterations: 4, method, sample, out: path.join(dir, `sample-${method}-${sample}.safetensors`) }, backend);
  const two = await run('two-level', 5_000);
  const cb = await readCodebook(two.out);
  assert.equal(cb.counts!.reduce((a, b) => a + b, 0), 5_000);
  assert.equal(cb.meta.corpusFingerprint, (await readCodebook((await run('flat')).out)).meta.corpusFingerprint);
  // the same subset every time: the same codebook
  assert.equal((await run('two-level', 5_000)).fingerprint, two.fingerprint);
  assert.notEqual((await run('two-level', 6_000)).fingerprint, two.fingerprint);
});

test('the phase clock: ETA from the phase\'s own rate (a resumed phase counts only its new work), time per phase', () => {
  let now = 0;
  const clock = new PhaseClock(() => now);
  assert.equal(clock.eta('cells', 0, 100), undefined); // no rate yet
  now = 10_000;
  assert.equal(clock.eta('cells', 20, 100), 40); // 20 in 10 s: 80 left -> 40 s
  now = 12_000;
  assert.equal(clock.eta('refine', 50, 100), undefined); // a new phase, resumed half-way
  now = 22_000;
  assert.equal(clock.eta('refine', 60, 100), 40); // 10 in 10 s since it started: 40 left -> 40 s
  assert.deepEqual(clock.durations(), { cells: 12, refine: 10 });
  assert.equal(describeProgress({ phase: 'cells', done: 120, total: 707, etaSeconds: 400, message: '707 codes' }, { percent: true }), 'cells 120/707 16%, ETA 6m 40s, 707 codes');
});

/** MSE with a single code at the mean: what "no clustering at all" scores. */
async function oneCodeMse(embeddings: string): Promise<number> {
  const s = await buildCodebook({ embeddings, encoder: 'external', k: 1, method: 'flat', out: path.join(dir, 'one.safetensors') }, backend);
  return s.mse;
}

/** Frozen, coarse, coarse_assign and counts tensors' bytes: what must not depend on interruptions. */
async function codebookTensors(file: string): Promise<Record<string, Buffer>> {
  const { tensors } = await readSafetensors(file);
  const bytes = (name: string) => Buffer.from(tensors[name]!.data.buffer, tensors[name]!.data.byteOffset, tensors[name]!.data.byteLength);
  return { frozen: bytes('frozen'), coarse: bytes('coarse'), coarse_assign: bytes('coarse_assign'), counts: bytes('counts') };
}

async function checkpointState(out: string): Promise<Record<string, unknown>> {
  return JSON.parse(await fs.readFile(`${out}.checkpoint/state.json`, 'utf8')).state;
}

/** Runs a build and sends `signal` the moment a progress line matches `line` (a phase's first line
 *  is written as soon as the phase starts: after its first block, cell or iteration). */
function interruptAt(args: string[], line: RegExp, signal: NodeJS.Signals): Promise<Run> {
  let sent = false;
  return cli(args, (stderr: string, child: ChildProcess) => {
    if (!sent && line.test(stderr)) {
      sent = true;
      child.kill(signal);
    }
  });
}

test('killed (SIGKILL) mid-pass and at checkpoints, or Ctrl-C, then run again: the same codebook to the byte', async () => {
  // --memory 1 makes blocks of ~550 rows: each pass is ~150 blocks, so a kill lands inside it.
  const embeddings = await mixtureShards('resume', 80_000, 64, 30_000);
  const args = (out: string) => ['build', '--embeddings', embeddings, '--k', '256', '--iters', '6', '--seed', '11', '--method', 'two-level', '--refine', '2', '--memory', '1', '--out', out];
  const reference = path.join(dir, 'reference.safetensors');
  const straight = await cliJson(args(reference));
  assert.equal(straight.resumedAt, null);

  const out = path.join(dir, 'resumed.safetensors');
  // 1. mid-partition: the pass had written scratch files but not finished
  let r = await interruptAt(args(out), /^partition /m, 'SIGKILL');
  assert.equal(r.signal, 'SIGKILL');
  let state = await checkpointState(out);
  assert.ok(state.coarseDone && !state.cellRows, `partition was not interrupted: ${JSON.stringify(state)}`);
  // 2. after the first cell's k-means (a checkpoint boundary)
  r = await interruptAt(args(out), /^cells /m, 'SIGKILL');
  state = await checkpointState(out);
  assert.ok(state.cellRows && state.refined === undefined, `cells were not interrupted: ${JSON.stringify(state)}`);
  // 3. mid refinement pass 1 (its first block is done, its checkpoint is not)
  r = await interruptAt(args(out), /^refine /m, 'SIGKILL');
  state = await checkpointState(out);
  assert.equal(state.refined, 0, 'refinement pass 1 was not interrupted');
  // 4. Ctrl-C, again mid-pass: exit 130, no output, the checkpoint stays
  r = await interruptAt(args(out), /^refine /m, 'SIGINT');
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /unicode2: cancelled/);
  await assert.rejects(fs.access(out));
  state = await checkpointState(out);
  assert.equal(state.refined, 0, 'refinement pass 1 was not interrupted');
  // 5. to the end (both refinement passes)
  const resumed = await cliJson(args(out));
  assert.equal(resumed.resumedAt, 'refinement pass 1');
  assert.deepEqual(await codebookTensors(out), await codebookTensors(reference));
  assert.equal(resumed.fingerprint, straight.fingerprint);
  assert.equal(resumed.mse, straight.mse);
  // the checkpoint and scratch files are gone once the codebook is written
  await assert.rejects(fs.access(`${out}.checkpoint`));
});

/** f16 shards of uniform-ish random rows, written fast (half bits drawn directly): for tests where
 *  only the size of the data matters. */
async function randomShards(name: string, rows: number, d: number, shardRows: number): Promise<string> {
  const folder = path.join(dir, name);
  await fs.mkdir(folder);
  let state = 12345;
  for (let start = 0, i = 0; start < rows; start += shardRows, i++) {
    const n = Math.min(shardRows, rows - start);
    const half = new Uint16Array(n * d);
    for (let j = 0; j < half.length; j++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      half[j] = (state >>> 31) << 15 | (0x2c00 + ((state >>> 8) & 0xfff)); // ±[0.0625, 0.5)
    }
    await writeNpy(path.join(folder, `part-${i}.npy`), { shape: [n, d], dtype: 'float16', data: half });
  }
  return folder;
}

test('peak memory stays within the --memory budget on data larger than it (child process RSS)', async () => {
  // 150,000 x 768: 230 MB of f16 shards, 460 MB as f32; the budget is 100 MB.
  const rows = 150_000, d = 768, budget = 100;
  const big = await randomShards('memory-big', rows, d, 20_000);
  const small = await randomShards('memory-small', 2_000, d, 2_000);
  const build = (embeddings: string, out: string) =>
    cliJson(['build', '--embeddings', embeddings, '--k', '64', '--iters', '3', '--method', 'two-level', '--memory', String(budget), '--out', path.join(dir, out)]);
  // The same build on a tiny input: the process's own footprint (node, onnxruntime, code).
  const baseline = await build(small, 'memory-small.safetensors');
  const measured = await build(big, 'memory-big.safetensors');
  const f32MB = (rows * d * 4) / 2 ** 20;
  assert.ok(measured.peakRssMB < baseline.peakRssMB + budget,
    `peak RSS ${measured.peakRssMB} MB; baseline ${baseline.peakRssMB} MB + budget ${budget} MB`);
  assert.ok(measured.peakRssMB < f32MB, `peak RSS ${measured.peakRssMB} MB is not below the data's ${f32MB} MB as f32`);
  assert.equal((await readCodebook(measured.out)).counts!.reduce((a, b) => a + b, 0), rows - measured.calibration.queries); // the rest held out to calibrate
});

test('--dtype f16 stores F16 tensors that read back as the f32 build rounded', async () => {
  const embeddings = await mixtureShards('dtype', 6_000, 48);
  for (const method of ['flat', 'two-level']) {
    const files = { f32: path.join(dir, `dtype-${method}-32.safetensors`), f16: path.join(dir, `dtype-${method}-16.safetensors`) };
    for (const dtype of ['f32', 'f16'] as const) {
      await cliJson(['build', '--embeddings', embeddings, '--k', '64', '--iters', '4', '--method', method, '--dtype', dtype, '--out', files[dtype]]);
    }
    const { tensors } = await readSafetensors(files.f16);
    assert.equal(tensors.frozen!.dtype, 'F16');
    assert.equal(tensors.trainable!.dtype, 'F16');
    if (method === 'two-level') assert.equal(tensors.coarse!.dtype, 'F16');
    const half = await readCodebook(files.f16);
    const full = await readCodebook(files.f32);
    assert.ok(isHalf(half.frozen) && !isHalf(full.frozen));
    assert.deepEqual(half.frozen.half, f32ToF16(full.frozen.data), method);
    assert.deepEqual(half.counts, full.counts);
  }
});

test('flat and two-level codebooks from real photos both tokenize and decode; two-level streams an on-disk corpus', async () => {
  const encoder = await openEncoder('dct', backend);
  try {
    const images = (await listImages(IMAGES)).slice(0, 3);
    for (const method of ['flat', 'two-level'] as const) {
      const out = path.join(dir, `photos-${method}.safetensors`);
      // two-level: the corpus goes to f16 shards beside the output (as for a corpus too big for memory)
      const onDisk = method === 'two-level' ? { inMemoryCorpusBytes: 0 } : {};
      const summary = await buildCodebook({ images: IMAGES, encoder: 'dct', k: 48, iterations: 5, method, out, ...onDisk }, backend);
      assert.equal(summary.method, method);
      // the corpus and the checkpoint are gone once the codebook is written
      assert.deepEqual((await fs.readdir(dir)).filter((n) => n.startsWith(`photos-${method}.safetensors.`)), []);
      const cb = await readCodebook(out);
      assert.equal(cb.meta.atlas, 'dct');
      const { results } = await tokenizeImages(cb, encoder, images, backend);
      for (const r of results) {
        assert.equal(r.ids.length, r.grid[0] * r.grid[1]);
        assert.ok(r.ids.every((id) => id >= 0 && id < 48));
        const image = await decodeTokens(cb, Int32Array.from(r.ids), r.grid, backend);
        assert.deepEqual([image.width, image.height], [r.grid[1] * 16, r.grid[0] * 16]);
      }
      // astronaut 256 x 256, brick 256 x 256, chelsea 256 x 170: each photo's own grid
      assert.deepEqual(results.map((r) => r.grid), [[14, 14], [14, 14], [14, 21]]);
    }
  } finally {
    await encoder.dispose();
  }
});

test('calibrationSplit: held-out rows disjoint from the training rows, seeded; --sample leaves them out already', () => {
  const check = (rows: number, k: number, sample: number | undefined, heldCount: number, trainingCount: number) => {
    const { subset, held } = calibrationSplit(rows, k, sample, 3);
    assert.equal(held.length, heldCount);
    const training = subset ?? Uint32Array.from({ length: rows }, (_, i) => i);
    assert.equal(training.length, trainingCount);
    const inTraining = new Set(training);
    for (const r of held) assert.ok(r < rows && !inTraining.has(r), `row ${r}`);
    assert.deepEqual(calibrationSplit(rows, k, sample, 3), { subset, held }); // same seed, same split
  };
  check(100_000, 1000, undefined, 4096, 100_000 - 4096);
  check(20_000, 512, undefined, 2000, 18_000); // a tenth at most
  check(1000, 950, undefined, 50, 950); // never fewer than K left
  check(5, 1, undefined, 0, 5); // too few to hold any out
  check(100_000, 1000, 90_000, 4096, 90_000); // drawn from the 10,000 --sample left out
  check(100_000, 1000, 99_000, 1000, 99_000);
});

test('a two-level build calibrates its IVF nprobe: recorded, reaching the target on held-out vectors; search defaults to it, --nprobe overrides, calibrate re-measures', async () => {
  const d = 32, rows = 20_000;
  const embeddings = await mixtureShards('calibrate', rows, d, 8_000);
  const out = path.join(dir, 'calibrated.safetensors');
  const summary = await cliJson(['build', '--embeddings', embeddings, '--k', '512', '--iters', '8', '--method', 'two-level', '--out', out]);
  const cells = summary.coarse as number;
  const { nprobe, recall, queries } = summary.calibration;
  assert.equal(queries, 2000); // a tenth of the 20,000 vectors, held out of training
  assert.ok(recall >= CALIBRATION_TARGET, JSON.stringify(summary.calibration));
  assert.ok(nprobe > 1 && nprobe < cells, `nprobe ${nprobe} of ${cells} cells: this data should need more than one cell and fewer than all`);
  const cb = await readCodebook(out);
  assert.equal(cb.meta.nprobe, nprobe);
  assert.equal(cb.meta.nprobeRecall, recall);

  // Held-out vectors of the same mixture (rows the build never saw): the calibrated nprobe reaches
  // the target there too, to within the two samples' standard errors (0.0034 each at 4,096).
  const mixture = new EmbeddingMixture({ d, components: 300, seed: 7 });
  const held = { rows: 4096, cols: d, data: mixture.rows(1_000_000, 4096) };
  const recallAt = await ivfRecallOf(cb, backend, held);
  const heldRecall = await recallAt(nprobe);
  assert.ok(heldRecall >= CALIBRATION_TARGET - 0.01, `held-out recall@1 ${heldRecall} at nprobe ${nprobe} (calibration ${recall})`);
  // and the rung below misses it (the calibration picked the smallest that does not)
  const below = nprobeLadder(cells)[nprobeLadder(cells).indexOf(nprobe) - 1]!;
  assert.ok(await recallAt(below) < CALIBRATION_TARGET + 0.01, `nprobe ${below} already reaches the target on held-out vectors`);

  // search defaults to the codebook's nprobe; --nprobe wins
  const heldFile = path.join(dir, 'held.npy');
  await writeNpy(heldFile, { shape: [held.rows, d], dtype: 'float32', data: held.data });
  const search = (extra: string[]) => cliJson(['search', '--codebook', out, '--queries', heldFile, '--out', path.join(dir, 'held-ids.npy'), ...extra]);
  assert.equal((await search([])).nprobe, nprobe);
  assert.equal((await search(['--nprobe', '1'])).nprobe, 1);

  // calibrate on other vectors, to another target: the codebook (its tensors untouched) records the new value
  const lower = await cliJson(['calibrate', '--codebook', out, '--queries', heldFile, '--target', '0.5', '--sample', '1000']);
  assert.equal(lower.queries, 1000);
  assert.ok(lower.recall >= 0.5 && lower.nprobe < nprobe, JSON.stringify(lower));
  assert.equal(lower.curve.at(-1).nprobe, lower.nprobe);
  assert.equal(lower.fingerprint, cb.fingerprint);
  const recalibrated = await readCodebook(out);
  assert.equal(recalibrated.meta.nprobe, lower.nprobe);
  assert.deepEqual(recalibrated.coarse!.assign, cb.coarse!.assign);
  assert.equal((await search([])).nprobe, lower.nprobe);
  assert.ok((await readNpy(path.join(dir, 'held-ids.npy'))).shape[0] === held.rows);

  // a flat codebook has nothing to calibrate; a bad target is refused
  const flat = path.join(dir, 'calibrate-flat.safetensors');
  await cliJson(['build', '--embeddings', embeddings, '--k', '16', '--iters', '2', '--method', 'flat', '--out', flat]);
  assert.equal((await cliJson(['build', '--embeddings', embeddings, '--k', '16', '--iters', '2', '--method', 'flat', '--out', flat])).calibration, null);
  await assertUserError(['calibrate', '--codebook', flat, '--queries', heldFile], /has no coarse level, so its search is exact/);
  await assertUserError(['calibrate', '--codebook', out, '--queries', heldFile, '--target', '1.5'], /the target recall must be in \(0, 1\]; got 1.5/);
});

test('two-level options: clear one-line errors, and --help states the auto rule', async () => {
  const embeddings = await mixtureShards('options', 2_000, 64);
  const out = path.join(dir, 'never.safetensors');
  const base = ['build', '--embeddings', embeddings, '--out', out];
  await assertUserError([...base, '--k', '64', '--method', 'two-level', '--coarse', '65'], /coarse cells \(65\) cannot outnumber the codes \(k=64\)/);
  await assertUserError([...base, '--k', '64', '--method', 'two-level', '--coarse', '0'], /coarse cells must be a whole number >= 1/);
  await assertUserError([...base, '--k', '64', '--method', 'two-level', '--nprobe', '9'], /nprobe must be a whole number from 1 to the coarse cells \(8\)/);
  await assertUserError([...base, '--k', '64', '--method', 'flat', '--coarse', '8'], /apply to two-level builds only/);
  await assertUserError([...base, '--k', '2000', '--method', 'two-level', '--memory', '1'], /memory budget of 1 MB cannot hold K=2000 codes/);
  await assertUserError([...base, '--k', '64', '--method', 'twolevel'], /--method must be one of auto, flat, two-level/);
  await assertUserError([...base, '--k', '64', '--dtype', 'f8'], /--dtype must be one of f32, f16/);
  await assert.rejects(fs.access(out));
  await assert.rejects(fs.access(`${out}.checkpoint`));

  const help = await cli(['build', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--method auto builds two-level when one flat pass would take more than 1e\+12 multiply-adds/);
  for (const option of ['--coarse', '--refine', '--nprobe', '--memory', '--dtype']) assert.ok(help.stdout.includes(option), option);
});

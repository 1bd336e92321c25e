// The built `unicode2` CLI (dist/cli.js), run as a child process on the real fixture photos:
// its stdout/stderr/exit-code contract, the pipeline end to end, bad input, and Ctrl-C.
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { readCodebook, writeCodebook } from '../../extension/engine/codebook/codebook.js';
import { readTokenGrids } from '../../extension/engine/codebook/token-files.js';
import { UNCALIBRATED_NPROBE } from '../../extension/engine/core/defaults.js';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import { withCoarseLevel } from '../../bench/coarse-level.js';
import type { Matrix } from '../../native-gpu/backend.js';
import { readNpy, writeNpy } from '../../extension/engine/io/formats/npy.js';
import { listImages } from '../../extension/engine/embed/image.js';
import { seededRandom } from '../../extension/engine/core/sampling.js';
import { cliRunner, type Run } from '../helpers/cli.js';

const ROOT = path.join(__dirname, '../..');
const IMAGES = path.join(ROOT, 'test/fixtures/images');
const BAD = path.join(ROOT, 'test/fixtures/bad');
const PHOTO_A = path.join(IMAGES, 'astronaut.jpg');
/** 640 x 400: a 14 x 22 grid under the default 'dct' (352 x 224) */
const PHOTO_B = path.join(ROOT, 'test/fixtures/wide/china-640x400.png');

let dir: string;
/** A codebook built once from the fixture photos (K=32, DCT) for the commands that need one. */
let codebook: string;
const { cli, cliJson, assertUserError } = cliRunner(() => dir);

async function writeMatrix(name: string, rows: number, cols: number, seed: number, spread = 1): Promise<{ file: string; data: Float32Array }> {
  const random = seededRandom(seed);
  const data = Float32Array.from({ length: rows * cols }, () => (random() - 0.5) * spread);
  const file = path.join(dir, name);
  await writeNpy(file, { shape: [rows, cols], dtype: 'float32', data });
  return { file, data };
}

before(async () => {
  execFileSync(process.execPath, ['scripts/build.mjs', '--quiet'], { cwd: ROOT, stdio: 'inherit' });
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-cli-'));
  codebook = path.join(dir, 'cb.safetensors');
  const r = await cli(['build', '--images', IMAGES, '--k', '32', '--iters', '3', '--out', codebook, '--quiet']);
  assert.equal(r.code, 0, r.stderr);
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

test('build --json prints exactly the summary document', async () => {
  const out = path.join(dir, 'b.safetensors');
  const s = await cliJson(['build', '--images', IMAGES, '--k', '16', '--iters', '2', '--lambda', '0.1', '--out', out]);
  for (const key of ['k', 'd', 'method', 'coarse', 'iterations', 'inertia', 'mse', 'utilization', 'perplexity', 'dead', 'seconds', 'peakRssMB', 'device']) {
    assert.ok(key in s, `missing ${key}`);
  }
  assert.equal(s.k, 16);
  // 11 photos x 196 patches x 16 codes x 768 is far below the two-level threshold
  assert.equal(s.method, 'flat');
  assert.equal(s.coarse, null);
  // every training vector is in the MSE sample here (fewer than 20,000): the exact mean of the inertia
  assert.ok(Math.abs(s.mse - s.inertia / (await readCodebook(out)).counts!.reduce((a, b) => a + b, 0)) <= 1e-4 * s.mse, `mse ${s.mse}`);
  assert.ok(s.peakRssMB > 50 && s.peakRssMB < 4096, `peak RSS ${s.peakRssMB} MB`);
  assert.equal(s.d, 768);
  assert.ok(s.iterations >= 1 && s.iterations <= 2);
  const cb = await readCodebook(out);
  assert.equal(cb.meta.lambda, 0.1);
  assert.equal(s.utilization, (16 - s.dead) / 16);
});

test('build warns, in its text and --json, when K leaves fewer than 4 training vectors a code', async () => {
  const points = await writeMatrix('few.npy', 10, 8, 5);
  const r = await cli(['build', '--embeddings', points.file, '--k', '4', '--out', path.join(dir, 'few.safetensors'), '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\nwarning: K = 4 codes from 10 training vectors, 2\.5 per code \(fewer than 4\): .*memorization/);
  const s = await cliJson(['build', '--embeddings', points.file, '--k', '2', '--out', path.join(dir, 'enough.safetensors')]);
  assert.equal(s.vectors, 10);
  assert.equal(s.warning, null);
});

test('tokenize -> decode -> stats on real photos', async () => {
  const t = await cliJson(['tokenize', '--codebook', codebook, PHOTO_A, PHOTO_B]);
  assert.equal(t.results.length, 2);
  assert.equal(typeof t.device, 'string');
  assert.deepEqual(t.results.map((r: { grid: number[] }) => r.grid), [[14, 14], [14, 22]]);
  for (const r of t.results) {
    assert.equal(r.ids.length, r.grid[0] * r.grid[1]);
    assert.ok(r.ids.every((id: number) => Number.isInteger(id) && id >= 0 && id < 32));
  }
  assert.deepEqual(t.results.map((r: { image: string }) => r.image), [PHOTO_A, PHOTO_B]);

  const tokens = path.join(dir, 't.json');
  const written = await cliJson(['tokenize', '--codebook', codebook, PHOTO_A, PHOTO_B, '--out', tokens]);
  assert.equal(written.out, tokens);
  assert.equal(written.grid, null); // the grids differ
  const onFile = JSON.parse(await fs.readFile(tokens, 'utf8'));
  assert.deepEqual(onFile.results.map((r: { ids: number[] }) => r.ids), t.results.map((r: { ids: number[] }) => r.ids));

  const png = path.join(dir, 'second.png');
  const d = await cliJson(['decode', '--codebook', codebook, '--tokens', tokens, '--index', '1', '--out', png]);
  assert.equal(d.image, PHOTO_B);
  // the 14 x 22 grid decodes to the photo's shape
  const meta = await sharp(png).metadata();
  assert.equal(meta.format, 'png');
  assert.deepEqual([meta.width, meta.height, d.width, d.height], [352, 224, 352, 224]);

  const fromTokens = await cliJson(['stats', '--codebook', codebook, '--tokens', tokens]);
  assert.equal(fromTokens.tokens, 196 + 14 * 22);
  const distinct = new Set(t.results.flatMap((r: { ids: number[] }) => r.ids)).size;
  assert.equal(fromTokens.used, distinct);
  assert.equal(fromTokens.dead, 32 - distinct);
  assert.equal(fromTokens.utilization, distinct / 32);
  const fromImages = await cliJson(['stats', '--codebook', codebook, '--images', PHOTO_A]);
  assert.equal(fromImages.tokens, 196);

  // A folder of photos of several shapes: one ragged data set, every reader takes it.
  const dataset = path.join(dir, 'tokens.npy');
  const ds = await cliJson(['tokenize', '--codebook', codebook, IMAGES, '--out', dataset]);
  const n = (await listImages(IMAGES)).length;
  const grids = await readTokenGrids(dataset);
  assert.ok(new Set(grids.map((g) => g.grid.join('x'))).size > 1);
  const longest = Math.max(...grids.map((g) => g.ids.length));
  assert.deepEqual([ds.shape, ds.grid], [[n, longest], null]);
  assert.deepEqual((await readNpy(dataset)).shape, [n, longest]);
  const all = await cliJson(['stats', '--codebook', codebook, '--tokens', dataset]);
  assert.equal(all.tokens, grids.reduce((sum, g) => sum + g.ids.length, 0));
  const wide = grids.findIndex((g) => g.grid[1] > g.grid[0]);
  const fromSet = path.join(dir, 'from-set.png');
  await cliJson(['decode', '--codebook', codebook, '--tokens', dataset, '--index', String(wide), '--out', fromSet]);
  const shown = await sharp(fromSet).metadata();
  assert.deepEqual([shown.width, shown.height], [grids[wide]!.grid[1] * 16, grids[wide]!.grid[0] * 16]);

  // The square mode: one grid, the [N, L] form
  const square = path.join(dir, 'square.npy');
  const sq = await cli(['tokenize', '--codebook', codebook, '--encoder', 'dct:224:square', IMAGES, '--out', square]);
  assert.equal(sq.code, 0, sq.stderr);
  assert.equal(sq.stdout.trim(), `wrote ${square} [${n}, 196]`);
  assert.deepEqual((await readTokenGrids(square)).map((g) => g.grid), grids.map(() => [14, 14]));
  const text = await cli(['tokenize', '--codebook', codebook, IMAGES, '--out', dataset]);
  assert.equal(text.stdout.trim(), `wrote ${dataset} [${n}, ${longest}] (grids of different shapes: rows padded with -1)`);
});

test('embed writes float32 [sum of L, d] and an index of each image\'s grid; build accepts it with the same encoder', async () => {
  const emb = path.join(dir, 'emb.npy');
  const e = await cliJson(['embed', PHOTO_A, PHOTO_B, '--out', emb]);
  assert.deepEqual(e.shape, [196 + 308, 768]);
  const arr = await readNpy(emb);
  assert.equal(arr.dtype, 'float32');
  assert.deepEqual(arr.shape, [504, 768]);
  const index = JSON.parse(await fs.readFile(`${emb}.index.json`, 'utf8'));
  assert.deepEqual(index.images, [PHOTO_A, PHOTO_B]);
  assert.deepEqual([index.grids, index.grid, index.encoder.id], [[[14, 14], [14, 22]], undefined, 'dct:224']);
  const square = path.join(dir, 'emb-square.npy');
  await cliJson(['embed', PHOTO_A, PHOTO_B, '--encoder', 'dct:224:square', '--out', square]);
  const squareIndex = JSON.parse(await fs.readFile(`${square}.index.json`, 'utf8'));
  assert.deepEqual([squareIndex.grid, squareIndex.rowsPerImage, squareIndex.grids], [[14, 14], 196, undefined]);
  // the same pair form as a token data set: the index knows the data file it belongs to
  const bytes = await fs.readFile(emb);
  assert.equal(index.dataBytes, bytes.length);
  assert.equal(index.dataSha256, createHash('sha256').update(bytes).digest('hex'));
  const out = path.join(dir, 'from-emb.safetensors');
  await cliJson(['build', '--embeddings', emb, '--encoder', 'dct', '--k', '8', '--out', out]);
  const cb = await readCodebook(out);
  assert.equal(cb.meta.encoder.kind, 'dct');
  assert.equal(cb.meta.atlas, 'dct');
});

test('refine rewrites the codebook in place with a fitted atlas, tokens unchanged', async () => {
  const copy = path.join(dir, 'refine.safetensors');
  await fs.copyFile(codebook, copy);
  const before = await readCodebook(copy);
  const atlasBefore = await before.trainable.load(); // read before the file is rewritten
  const r = await cliJson(['refine', '--codebook', copy, '--images', IMAGES]);
  assert.equal(r.out, copy);
  assert.equal(r.atlas, 'refined');
  const after = await readCodebook(copy);
  assert.equal(after.meta.atlas, 'refined');
  assert.equal(after.fingerprint, before.fingerprint);
  assert.notDeepEqual(await after.trainable.load(), atlasBefore);
  const tokens = path.join(dir, 'refine-tokens.json');
  await cliJson(['tokenize', '--codebook', copy, PHOTO_A, '--out', tokens]);
  const png = path.join(dir, 'refined.png');
  await cliJson(['decode', '--codebook', copy, '--tokens', tokens, '--out', png]);
  assert.equal((await sharp(png).metadata()).width, 224); // astronaut: square
});

test('search returns the exact nearest codes (brute-force reference)', async () => {
  const points = await writeMatrix('pts.npy', 300, 12, 1, 10);
  const cbFile = path.join(dir, 'pts.safetensors');
  await cliJson(['build', '--embeddings', points.file, '--k', '20', '--out', cbFile]);
  const queries = await writeMatrix('q.npy', 97, 12, 2, 10);
  const out = path.join(dir, 'ids.npy');
  const s = await cliJson(['search', '--codebook', cbFile, '--queries', queries.file, '--out', out]);
  assert.deepEqual(s.shape, [97]);
  // a codebook without a coarse level is searched exactly
  assert.deepEqual({ ...s, seconds: 0, device: '' }, { queries: 97, k: 20, d: 12, method: 'exact', nprobe: null, seconds: 0, recall: null, out, shape: [97], device: '' });
  assert.ok(s.seconds > 0);
  const ids = await readNpy(out);
  assert.equal(ids.dtype, 'int32');
  const frozen = (await readCodebook(cbFile)).frozen as Matrix; // built as f32
  for (let q = 0; q < 97; q++) {
    let best = -1;
    let bestD = Infinity;
    for (let k = 0; k < frozen.rows; k++) {
      let dist = 0;
      for (let j = 0; j < 12; j++) dist += (queries.data[q * 12 + j]! - frozen.data[k * 12 + j]!) ** 2;
      if (dist < bestD) [bestD, best] = [dist, k];
    }
    assert.equal((ids.data as Int32Array)[q], best, `query ${q}`);
  }
});

/** A codebook with a coarse level of `cells` cells (k-means over its codes), written beside `file`. */
async function ivfCodebook(file: string, cells: number): Promise<string> {
  const backend = await createCpuBackend();
  try {
    const out = file.replace(/\.safetensors$/, `.ivf${cells}.safetensors`);
    await writeCodebook(out, await withCoarseLevel(await readCodebook(file), cells, backend));
    return out;
  } finally {
    await backend.dispose();
  }
}

test('search on a codebook with a coarse level: IVF, --json fields, --recall against exact search, --exact', async () => {
  const points = await writeMatrix('ivf-pts.npy', 600, 10, 5, 10);
  const flat = path.join(dir, 'ivf.safetensors');
  await cliJson(['build', '--embeddings', points.file, '--k', '64', '--iters', '3', '--out', flat]);
  const cbFile = await ivfCodebook(flat, 8);
  const queries = await writeMatrix('ivf-q.npy', 200, 10, 6, 10);
  const run = async (extra: string[]) => {
    const out = path.join(dir, `ivf-ids-${extra.join('')}.npy`);
    const json = await cliJson(['search', '--codebook', cbFile, '--queries', queries.file, '--out', out, ...extra]);
    return { json, ids: (await readNpy(out)).data as Int32Array };
  };
  const exact = await run(['--exact']);
  assert.equal(exact.json.method, 'exact');
  assert.equal(exact.json.nprobe, null);

  const all = await run(['--nprobe', '8', '--recall', '50']);
  assert.equal(all.json.method, 'ivf');
  assert.equal(all.json.nprobe, 8);
  assert.equal(all.json.recall, 1);
  assert.deepEqual(all.ids, exact.ids);
  // more cells than the codebook has: all of them
  assert.equal((await run(['--nprobe', '100'])).json.nprobe, 8);

  // one cell: recall over every query (--recall >= Q samples them all) is the share equal to exact's
  const one = await run(['--nprobe', '1', '--recall', '1000']);
  let same = 0;
  for (let i = 0; i < 200; i++) if (one.ids[i] === exact.ids[i]) same++;
  assert.equal(one.json.recall, same / 200);
  assert.ok(same < 200, 'one cell of eight should miss some nearest codes');

  // no calibrated nprobe in this codebook: the fallback, recorded as what ran (at most the cells)
  assert.equal((await run([])).json.nprobe, Math.min(8, UNCALIBRATED_NPROBE));
  for (const [args, message] of [
    [['--nprobe', '0'], /--nprobe must be a whole number of at least 1 \(leave it out for the codebook's calibrated nprobe\); got 0/],
    [['--nprobe', '2.5'], /--nprobe needs a whole number, got '2.5'/],
    [['--nprobe', '-3'], /--nprobe must be a whole number of at least 1 .*; got -3/],
    [['--nprobe', '4', '--exact'], /give only one of --nprobe or --exact/],
    [['--recall', '0'], /--recall needs a whole number of at least 1, got 0/],
  ] as const) {
    await assertUserError(['search', '--codebook', cbFile, '--queries', queries.file, '--out', path.join(dir, 'never.npy'), ...args], message);
  }
  await assertUserError(['search', '--codebook', flat, '--queries', queries.file, '--out', path.join(dir, 'never.npy'), '--nprobe', '4'], /--nprobe needs a codebook with a coarse level/);
  await assert.rejects(fs.access(path.join(dir, 'never.npy')));
});

test('tokenize records its search in token JSON and in the data set index', async () => {
  const cbFile = await ivfCodebook(codebook, 4);
  const json = path.join(dir, 'ivf-tokens.json');
  const t = await cliJson(['tokenize', '--codebook', cbFile, PHOTO_A, PHOTO_B, '--out', json, '--nprobe', '2']);
  assert.deepEqual(t.search, { method: 'ivf', nprobe: 2 });
  const doc = JSON.parse(await fs.readFile(json, 'utf8'));
  for (const r of doc.results) assert.deepEqual(r.search, { method: 'ivf', nprobe: 2 });

  const npy = path.join(dir, 'ivf-tokens.npy');
  await cliJson(['tokenize', '--codebook', cbFile, PHOTO_A, PHOTO_B, '--out', npy, '--exact']);
  const index = JSON.parse(await fs.readFile(`${npy}.index.json`, 'utf8'));
  assert.deepEqual(index.search, { method: 'exact', nprobe: null });
  const grids = await readTokenGrids(npy);
  assert.deepEqual(grids[0]!.search, { method: 'exact', nprobe: null });
  // every cell probed: the ids of exact search
  const allCells = await cliJson(['tokenize', '--codebook', cbFile, PHOTO_A, PHOTO_B, '--nprobe', '4']);
  assert.deepEqual(allCells.results.map((r: { ids: number[] }) => r.ids), grids.map((g) => g.ids));
  await assertUserError(['tokenize', '--codebook', cbFile, PHOTO_A, '--nprobe', '0'], /--nprobe must be a whole number of at least 1/);
});

test('bad input exits 2 with one clear line and no stack', async () => {
  const out = path.join(dir, 'never.safetensors');
  const small = await writeMatrix('small.npy', 10, 8, 3);
  const nan = await writeMatrix('nan.npy', 10, 8, 4);
  nan.data[17] = NaN;
  await writeNpy(nan.file, { shape: [10, 8], dtype: 'float32', data: nan.data });
  const garbage = path.join(dir, 'garbage.npy');
  await fs.writeFile(garbage, 'this is not a numpy file');
  const d8 = path.join(dir, 'd8.safetensors');
  await cliJson(['build', '--embeddings', small.file, '--k', '2', '--out', d8]);

  await assertUserError(['tokenize', '--codebook', codebook, path.join(BAD, 'not-an-image.png')], /not-an-image\.png/);
  await assertUserError(['tokenize', '--codebook', codebook, path.join(BAD, 'truncated.jpg')], /truncated\.jpg/);
  await assertUserError(['tokenize', '--codebook', codebook, path.join(dir, 'nope.jpg')], /nope\.jpg/);
  await assertUserError(['tokenize', '--codebook', d8, '--encoder', 'dct', PHOTO_A], /codebook has d=8 but encoder '.*' gives d=768/);
  await assertUserError(['tokenize', '--codebook', d8, PHOTO_A], /--encoder/);
  await assertUserError(['build', '--embeddings', garbage, '--k', '2', '--out', out], /garbage\.npy/);
  await assertUserError(['build', '--embeddings', nan.file, '--k', '2', '--out', out], /nan\.npy/);
  await assertUserError(['build', '--embeddings', small.file, '--k', '0', '--out', out], /k must be/);
  await assertUserError(['build', '--embeddings', small.file, '--k', '11', '--out', out], /k=11 is larger than the number of vectors \(10\)/);
  await assertUserError(['build', '--embeddings', small.file, '--k', 'many', '--out', out], /--k needs a whole number/);
  await assertUserError(['build', '--embeddings', small.file, '--k', '2', '--out', out, '--frobnicate'], /unknown option --frobnicate/);
  await assertUserError(['build', '--embeddings', small.file, '--out', out], /missing required option --k/);
  await assertUserError(['build', '--k', '2', '--out', out], /needs --images or --embeddings/);
  await assertUserError(['build', '--embeddings', small.file, '--k', '2', '--out', out, '--device', 'tpu'], /--device must be one of/);
  await assertUserError(['search', '--codebook', codebook, '--queries', small.file, '--out', out], /d=768 .*d=8/);
  await assertUserError(['decode', '--codebook', d8, '--tokens', path.join(dir, 'absent.json'), '--out', out], /absent\.json/);
  await assertUserError(['frobnicate'], /unknown command 'frobnicate'/);
  await assert.rejects(fs.access(out));
});

test('--help for every command exits 0 and lists its options', async () => {
  for (const [command, option] of [['embed', '--encoder'], ['build', '--embeddings'], ['tokenize', '--codebook'], ['search', '--queries'], ['decode', '--tokens'], ['refine', '--images'], ['stats', '--tokens'], ['demo', '--out'], ['text', '--encoder']] as const) {
    const r = await cli([command, '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, new RegExp(`^usage: unicode2 ${command}`));
    assert.ok(r.stdout.includes(option) && r.stdout.includes('--device') && r.stdout.includes('--json'), r.stdout);
  }
});

/** Starts a long build, sends SIGINT once k-means reports progress, returns the finished run. */
function interruptedBuild(embeddings: string, out: string): Promise<Run> {
  let sent = false;
  return cli(['build', '--embeddings', embeddings, '--k', '64', '--iters', '100000', '--tolerance', '0', '--out', out], (stderr, child) => {
    if (!sent && /^kmeans /m.test(stderr)) {
      sent = true;
      child.kill('SIGINT');
    }
  });
}

test('Ctrl-C during a build exits 130 and leaves no file and no temp file', async () => {
  const points = await writeMatrix('long.npy', 2000, 32, 5);
  const sub = path.join(dir, 'sigint');
  await fs.mkdir(sub);

  const fresh = path.join(sub, 'fresh.safetensors');
  const r1 = await interruptedBuild(points.file, fresh);
  assert.equal(r1.code, 130, r1.stderr);
  assert.match(r1.stderr, /unicode2: cancelled/);
  assert.deepEqual(await fs.readdir(sub), []);

  const existing = path.join(sub, 'existing.safetensors');
  await cliJson(['build', '--embeddings', points.file, '--k', '4', '--iters', '2', '--out', existing]);
  const before = await fs.readFile(existing);
  const r2 = await interruptedBuild(points.file, existing);
  assert.equal(r2.code, 130, r2.stderr);
  assert.deepEqual(await fs.readFile(existing), before);
  assert.deepEqual(await fs.readdir(sub), ['existing.safetensors']);
});

test('demo writes a self-contained report whose metrics match what it printed', async () => {
  const out = path.join(dir, 'demo');
  const r = await cliJson(['demo', '--out', out]);
  const html = await fs.readFile(path.join(out, 'report.html'), 'utf8');
  assert.equal(r.report, path.join(out, 'report.html'));
  assert.match(html, /<img id="heatmap"[^>]* src="data:image\/png;base64,/);
  assert.equal(html.match(/class="reconstruction" style="[^"]*" src="data:image\/png;base64,/g)?.length, r.samples.length);
  assert.ok(r.samples.length >= 2);
  const value = (name: string) => Number(html.match(new RegExp(`data-metric="${name}" data-value="([^"]*)"`))![1]);
  assert.equal(value('utilization'), r.utilization);
  assert.equal(value('perplexity'), r.perplexity);
  assert.equal(value('k'), r.k);
  for (const s of r.samples) assert.ok(Number.isFinite(s.psnr) && s.psnr > 0, `${s.image}: ${s.psnr}`);
});

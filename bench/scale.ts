// `npm run bench -- --scale`: the paper's scale, two-level k-means of N = 2,000,000 embedding-like
// vectors (bench/embedding-data.ts, d = 768) into K = 500,000 codes, ours (`unicode2 build
// --method two-level`, its own process) beside FAISS's two-level clustering (faiss_twolevel.py,
// its own process), one after the other on the same f16 shards. Both: K1 = round(sqrt K) coarse
// cells, at most 256 training points per centroid at both levels, the same iteration count at
// both levels. Reported: seconds, peak RSS, and the MSE of the vectors to their nearest code,
// measured the same way for both (exact search on our CPU backend, the same seeded sample of
// 20,000 vectors). With --quick: N = 200,000 -> K = 16,384, and BENCHMARKS.md is left alone.
//
//   node --import tsx bench/scale.ts prepare   writes the shards and the evaluation sample
//   (bench.sh runs faiss_twolevel.py here)
//   node --import tsx bench/scale.ts run       runs ours, evaluates both, prints and records
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { CodebookData, Matrix } from '../native-gpu/backend.js';
import { createCpuBackend } from '../native-gpu/cpu/index.js';
import { readCodebook } from '../extension/engine/codebook/codebook.js';
import { gatherRows, shardSource } from '../extension/engine/embed/embedding-source.js';
import { readNpy, writeNpy } from '../extension/engine/io/formats/npy.js';
import { writeFileAtomic } from '../extension/engine/io/atomic-write.js';
import { derivedSeed, sampleIndices, seededRandom } from '../extension/engine/core/sampling.js';
import { defaultCoarseCells } from '../extension/engine/build/twolevel.js';
import { f32ToF16 } from '../common/half.js';
import { EmbeddingMixture } from './embedding-data.js';
import { benchDir, quickMode, updateSection } from './harness.js';

const ROOT = path.join(__dirname, '..');
const D = 768;
const SHARD_ROWS = 65_536;
const EVAL_ROWS = 20_000;
const SEED = 2025;

interface ScaleCase { n: number; k: number; k1: number; iterations: number; perCentroid: number; refine: number }

function scaleCase(): ScaleCase {
  const [n, k] = quickMode() ? [200_000, 16_384] : [2_000_000, 500_000];
  return { n, k, k1: defaultCoarseCells(k), iterations: 25, perCentroid: 256, refine: 1 };
}

const files = (dir: string) => ({
  shards: path.join(dir, 'scale-shards'),
  evalRows: path.join(dir, 'scale-eval.npy'),
  faissCentroids: path.join(dir, 'scale-faiss-centroids.npy'),
  faissJson: path.join(dir, 'scale-faiss.json'),
  ours: path.join(dir, 'scale-ours.safetensors'),
  caseJson: path.join(dir, 'scale-case.json'),
});

async function prepare(): Promise<void> {
  const dir = benchDir();
  const f = files(dir);
  const c = scaleCase();
  await fs.mkdir(f.shards, { recursive: true });
  const mixture = new EmbeddingMixture({ d: D, seed: SEED });
  for (let start = 0, i = 0; start < c.n; start += SHARD_ROWS, i++) {
    const rows = Math.min(SHARD_ROWS, c.n - start);
    const file = path.join(f.shards, `shard-${String(i).padStart(5, '0')}.npy`);
    await writeNpy(file, { shape: [rows, D], dtype: 'float16', data: f32ToF16(mixture.rows(start, rows)) });
    process.stderr.write(`\rscale: writing shards ${start + rows}/${c.n}`);
  }
  process.stderr.write('\n');
  // The evaluation sample, as f32 rows of the shards (so f16-rounded, as both sides train on).
  const picked = sampleIndices(c.n, Math.min(EVAL_ROWS, c.n), seededRandom(derivedSeed(SEED, 'scale-eval')));
  const sample = await gatherRows(await shardSource(f.shards), picked, SHARD_ROWS);
  await writeNpy(f.evalRows, { shape: [sample.rows, D], dtype: 'float32', data: sample.data });
  await writeFileAtomic(f.caseJson, JSON.stringify(c));
  // what bench.sh hands to faiss_twolevel.py
  console.log([f.shards, c.k, c.k1, c.iterations, c.perCentroid, f.faissCentroids].join(' '));
}

/** Our build in its own process, as a user runs it. */
function runOurs(c: ScaleCase, f: ReturnType<typeof files>): Promise<{ summary: Record<string, any>; wallSeconds: number }> {
  const args = [
    path.join(ROOT, 'dist/cli.js'), 'build', '--embeddings', f.shards, '--k', String(c.k), '--out', f.ours, '--method', 'two-level',
    '--coarse', String(c.k1), '--iters', String(c.iterations), '--tolerance', '0', '--refine', String(c.refine), '--device', 'cpu', '--json',
  ];
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`unicode2 build exited ${code}`));
      else resolve({ summary: JSON.parse(stdout), wallSeconds: (performance.now() - started) / 1000 });
    });
  });
}

/** Mean squared distance of the evaluation rows to their nearest code, exact search. */
async function mse(evalRows: Matrix, codes: CodebookData): Promise<number> {
  const backend = await createCpuBackend();
  try {
    const handle = await backend.loadCodebook(codes);
    const { distances } = await backend.nearest(handle, evalRows);
    handle.dispose();
    let total = 0;
    for (const v of distances) total += v;
    return total / distances.length;
  } finally {
    await backend.dispose();
  }
}

async function readF32(file: string): Promise<Matrix> {
  const a = await readNpy(file);
  if (a.dtype !== 'float32' || a.shape.length !== 2) throw new Error(`${file}: expected a 2-D float32 array`);
  return { rows: a.shape[0], cols: a.shape[1], data: a.data as Float32Array };
}

async function run(): Promise<void> {
  const dir = benchDir();
  const f = files(dir);
  const c = JSON.parse(await fs.readFile(f.caseJson, 'utf8')) as ScaleCase;
  const faiss = JSON.parse(await fs.readFile(f.faissJson, 'utf8'));
  const ours = await runOurs(c, f);
  const s = ours.summary;
  const oursClustering = Object.entries(s.phaseSeconds as Record<string, number>)
    .filter(([phase]) => phase !== 'evaluate' && phase !== 'write')
    .reduce((sum, [, v]) => sum + v, 0);

  const evalRows = await readF32(f.evalRows);
  const faissMse = await mse(evalRows, await readF32(f.faissCentroids));
  const oursMse = await mse(evalRows, (await readCodebook(f.ours)).frozen);

  const fmt = (x: number, digits = 1) => x.toFixed(digits);
  const phases = Object.entries(s.phaseSeconds as Record<string, number>).map(([p, v]) => `${p} ${fmt(v)}`).join(', ');
  const faissPhases = ['coarse', 'assign', 'cells'].map((p) => `${p} ${fmt(faiss.seconds[p])}`).join(', ');
  const section = [
    '## Two-level k-means at scale vs FAISS',
    '',
    `N = ${c.n.toLocaleString('en')} embedding-like vectors (bench/embedding-data.ts, f16 shards) x d = ${D} -> K = ${c.k.toLocaleString('en')} codes, ` +
      `K1 = ${c.k1} coarse cells, ${c.iterations} iterations at both levels, at most ${c.perCentroid} training points per centroid at both levels.`,
    '',
    '| | clustering s | whole process s | peak RSS MB | MSE (exact, 20,000-vector sample) |',
    '|---|---:|---:|---:|---:|',
    `| ours (\`unicode2 build --method two-level\`, ${s.refine} refinement pass(es), nprobe ${s.nprobe}) | ${fmt(oursClustering)} | ${fmt(ours.wallSeconds)} | ${s.peakRssMB} | ${oursMse.toFixed(4)} |`,
    `| FAISS ${faiss.versions.faiss} two-level (bench/faiss_twolevel.py) | ${fmt(faiss.seconds.clustering)} | ${fmt(faiss.seconds.load + faiss.seconds.clustering)} | ${Math.round(faiss.maxRssMb)} | ${faissMse.toFixed(4)} |`,
    '',
    `- time ours / FAISS (clustering): **${(oursClustering / faiss.seconds.clustering).toFixed(2)}x**; MSE ours / FAISS: ${(oursMse / faissMse).toFixed(4)}`,
    `- ours by phase (s): ${phases}; clustering counts every phase but evaluate and write, and includes streaming the shards from disk`,
    `- FAISS by step (s): load ${fmt(faiss.seconds.load)} (f16 shards into one f32 array; not counted as clustering), ${faissPhases}; cell sizes ${faiss.cellSizes.join('-')}`,
    `- ours: ${s.device}; whole process includes our own exact MSE on another 20,000-vector sample (evaluate) and writing the codebook`,
    `- machine: ${os.availableParallelism()} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM; command: \`npm run bench -- --scale${quickMode() ? ' --quick' : ''}\` (${new Date().toISOString()})`,
  ].join('\n');
  console.log(`\n${section}\n`);
  if (!quickMode()) await updateSection('scale', section);
}

const step = process.argv[2];
(step === 'prepare' ? prepare() : step === 'run' ? run() : Promise.reject(new Error('usage: scale.ts prepare|run'))).catch((err) => {
  console.error(err);
  process.exit(1);
});

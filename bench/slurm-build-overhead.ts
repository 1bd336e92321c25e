// The two-level build's plan on the one-node Slurm cluster (scripts/setup-slurm.sh) against the
// same build in one process: `build --embeddings DIR --method two-level ... --slurm --wait
// --tasks N --sbatch --cpus-per-task=<nproc>` (one task at a time, each with the whole node, as
// the local process has it) and the same command without --slurm. Reported, the median of ROUNDS:
//   - local: the one-process build's wall time;
//   - slurm: from the submission to the final task's end (jobs.json, final.json);
//   - per job and per task: (slurm - local) / the chain's jobs, / its tasks;
//   - equal: whether the two codebooks' tensors are byte-equal (they must be).
// The input: FILES .npy files of embedding-like f16 rows (bench/embedding-data.ts). Run as root:
//   npx tsx bench/slurm-build-overhead.ts [--tasks 2]      (not part of `npm run bench`)
import { execFileSync, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeNpy } from '../extension/engine/io/formats/npy.js';
import { readSafetensors } from '../extension/engine/io/formats/safetensors.js';
import { f32ToF16 } from '../common/half.js';
import { EmbeddingMixture } from './embedding-data.js';

const ROOT = path.join(__dirname, '..');
const CLI = path.join(ROOT, 'dist/cli.js');
const ROUNDS = 3;
const FILES = 4, ROWS = 20_000, D = 64, K = 1024;
const i = process.argv.indexOf('--tasks');
const TASKS = i >= 0 ? Number(process.argv[i + 1]) : 2;
const BUILD = ['build', '--embeddings', 'emb', '--method', 'two-level', '--k', String(K), '--iters', '10', '--refine', '1', '--memory', '512'];

function cli(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args, '--device', 'cpu', '--quiet'], { cwd, stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`unicode2 ${args.join(' ')}: exit ${code}`))));
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const readJson = async (file: string) => JSON.parse(await fs.readFile(file, 'utf8'));

async function tensorBytes(file: string): Promise<string> {
  const { tensors } = await readSafetensors(file);
  return Object.entries(tensors).sort(([a], [b]) => a.localeCompare(b)).map(([n, t]) => `${n}:${Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('base64')}`).join();
}

async function round(dir: string, r: number, cpus: number): Promise<{ local: number; slurm: number; jobs: number; tasks: number; equal: boolean }> {
  const start = Date.now();
  await cli([...BUILD, '--out', `local${r}.safetensors`], dir);
  const local = (Date.now() - start) / 1000;
  await cli([...BUILD, '--out', `slurm${r}.safetensors`, '--slurm', '--wait', '--tasks', String(TASKS), `--sbatch=--cpus-per-task=${cpus}`], dir);
  const folder = path.join(dir, `slurm${r}.safetensors.slurm`);
  const sub = (await readJson(path.join(folder, 'jobs.json'))).submissions[0];
  const final = await readJson(path.join(folder, 'final.json'));
  const equal = (await tensorBytes(path.join(dir, `local${r}.safetensors`))) === (await tensorBytes(path.join(dir, `slurm${r}.safetensors`)));
  const tasks = sub.chain.reduce((n: number, c: { tasks: string[] }) => n + c.tasks.length, 0);
  return { local, slurm: (Date.parse(final.ended) - Date.parse(sub.submitted)) / 1000, jobs: sub.chain.length, tasks, equal };
}

async function main(): Promise<void> {
  const exported = execFileSync('bash', ['scripts/setup-slurm.sh'], { cwd: ROOT, encoding: 'utf8' });
  process.env.SLURM_CONF = /^export SLURM_CONF=(.+)$/m.exec(exported)![1]!.replace(/^'(.*)'$/, '$1');
  execFileSync(process.execPath, ['scripts/build.mjs', '--quiet'], { cwd: ROOT, stdio: 'inherit' });
  const cpus = Number(execFileSync('nproc', { encoding: 'utf8' }));
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-slurm-build-bench-'));
  await fs.mkdir(path.join(dir, 'emb'));
  const mixture = new EmbeddingMixture({ d: D, components: 300, seed: 7 });
  for (let f = 0; f < FILES; f++) {
    await writeNpy(path.join(dir, 'emb', `part-${f}.npy`), { shape: [ROWS, D], dtype: 'float16', data: f32ToF16(mixture.rows(f * ROWS, ROWS)) });
  }
  const rows = [];
  for (let r = 0; r < ROUNDS; r++) rows.push(await round(dir, r, cpus));
  const local = median(rows.map((x) => x.local));
  const slurm = median(rows.map((x) => x.slurm));
  console.log(JSON.stringify({ input: `${FILES} x ${ROWS} x ${D}`, k: K, tasks: TASKS, cpus, rounds: rows, local, slurm,
    perJob: (slurm - local) / rows[0]!.jobs, perTask: (slurm - local) / rows[0]!.tasks, equal: rows.every((x) => x.equal) }, null, 1));
  await fs.rm(dir, { recursive: true, force: true });
}

void main();

// Slurm's overhead on the one-node cluster (scripts/setup-slurm.sh): `tokenize SHARDS --slurm
// --wait --tasks N --sbatch --cpus-per-task=<nproc>` (one task at a time, each with the whole
// node, as a local process has it) against the same N parts run here one after the other as
// `--shard i/N` processes. Reported, the median of ROUNDS:
//   - submit -> first task running: from the submission to the first task's status saying
//     running, less the same for the first local process (start -> running: node, the codebook,
//     the encoder), so what is left is Slurm's: sbatch, scheduling, slurmd starting the task;
//   - per task: (Slurm's wall time to the last task's end - the local wall time) / N;
//   - the merge step: the last task's end -> the merge's end (the afterok step's scheduling + a
//     process that skips every shard and writes the manifest).
// The shards are 3 fixture photos each. Run as root:
//   npx tsx bench/slurm-overhead.ts [--tasks 8]      (not part of `npm run bench`: it writes no section)
import { execFileSync, spawn } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { sampleEntries, writeTar } from '../test/helpers/shards.js';

const ROOT = path.join(__dirname, '..');
const CLI = path.join(ROOT, 'dist/cli.js');
const IMAGES = path.join(ROOT, 'test/fixtures/images');
const PHOTOS = ['astronaut.jpg', 'coffee.jpg', 'chelsea.png'];
const ROUNDS = 3;
const i = process.argv.indexOf('--tasks');
const TASKS = i >= 0 ? Number(process.argv[i + 1]) : 8;

function cli(args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args, '--device', 'cpu', '--quiet'], { cwd, env, stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`unicode2 ${args.join(' ')}: exit ${code}`))));
  });
}

const ms = (iso: string) => Date.parse(iso);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const readJson = async (file: string) => JSON.parse(await fs.readFile(file, 'utf8'));

/** The N parts here one after the other, the first recording its status as a task does: seconds
 *  of wall time, and the first's start -> running. */
async function local(dir: string, base: string[], out: string): Promise<{ wall: number; ready: number }> {
  const status = path.join(dir, out, '.local');
  await fs.mkdir(status, { recursive: true });
  const start = Date.now();
  for (let t = 1; t <= TASKS; t++) {
    await cli([...base, '--out', `${out}/`, '--shard', `${t}/${TASKS}`], dir, { ...process.env, UNICODE2_SLURM_FOLDER: status, SLURM_ARRAY_TASK_ID: String(t) });
  }
  const ready = ms((await readJson(path.join(status, 'task-1.json'))).started) - start;
  return { wall: (Date.now() - start) / 1000, ready: ready / 1000 };
}

async function onSlurm(dir: string, base: string[], out: string, cpus: number): Promise<{ wall: number; first: number; merge: number }> {
  await cli([...base, '--out', `${out}/`, '--slurm', '--wait', '--tasks', String(TASKS), `--sbatch=--cpus-per-task=${cpus}`], dir);
  const folder = path.join(dir, out, '.slurm');
  const submitted = ms((await readJson(path.join(folder, 'jobs.json'))).submissions[0].submitted);
  const tasks = await Promise.all(Array.from({ length: TASKS }, (_, t) => readJson(path.join(folder, `task-${t + 1}.json`))));
  const lastEnd = Math.max(...tasks.map((t) => ms(t.ended)));
  const merge = await readJson(path.join(folder, 'merge.json'));
  return { wall: (lastEnd - submitted) / 1000, first: (Math.min(...tasks.map((t) => ms(t.started))) - submitted) / 1000, merge: (ms(merge.ended) - lastEnd) / 1000 };
}

async function main(): Promise<void> {
  const exported = execFileSync('bash', ['scripts/setup-slurm.sh'], { cwd: ROOT, encoding: 'utf8' });
  process.env.SLURM_CONF = /^export SLURM_CONF=(.+)$/m.exec(exported)![1]!;
  execFileSync(process.execPath, ['scripts/build.mjs', '--quiet'], { cwd: ROOT, stdio: 'inherit' });
  const cpus = Number(execFileSync('nproc', { encoding: 'utf8' }));
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-slurm-bench-'));
  for (let s = 0; s < TASKS; s++) {
    writeTar(path.join(dir, `${String(s).padStart(5, '0')}.tar`), PHOTOS.flatMap((p, k) => sampleEntries(`${s}-${k}`, { [path.extname(p).slice(1)]: new Uint8Array(readFileSync(path.join(IMAGES, p))) })));
  }
  await cli(['build', '--images', IMAGES, '--k', '32', '--iters', '3', '--out', 'cb.safetensors'], dir);
  const base = ['tokenize', '--codebook', 'cb.safetensors', `{00000..${String(TASKS - 1).padStart(5, '0')}}.tar`];
  const rows = [];
  for (let r = 0; r < ROUNDS; r++) rows.push({ ...(await local(dir, base, `local${r}`)), slurm: await onSlurm(dir, base, `slurm${r}`, cpus) });
  const first = median(rows.map((x) => x.slurm.first - x.ready));
  const perTask = median(rows.map((x) => (x.slurm.wall - x.wall) / TASKS));
  console.log(JSON.stringify({ tasks: TASKS, cpus, rounds: rows, firstTaskRunning: first, perTask, merge: median(rows.map((x) => x.slurm.merge)) }, null, 1));
  await fs.rm(dir, { recursive: true, force: true });
}

void main();

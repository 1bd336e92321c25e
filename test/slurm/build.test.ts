// The slurm tier, builds: `build --slurm` on a real one-node cluster (scripts/setup-slurm.sh) runs
// the two-level plan as a chain of jobs and writes the codebook the local build writes, every
// tensor byte for byte, with the same calibration; `unicode2 jobs` shows every stage's tasks done
// and a re-run submits nothing; --dry-run's scripts pass `bash -n`; builds that cannot run as a
// plan are refused in one line. The cluster must start: a machine where it cannot fails this tier.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cliRunner } from '../helpers/cli.js';
import { writeNpy } from '../../extension/engine/io/formats/npy.js';
import { readSafetensors } from '../../extension/engine/io/formats/safetensors.js';
import { f32ToF16 } from '../../common/half.js';
import { EmbeddingMixture } from '../../bench/embedding-data.js';

const ROOT = path.join(__dirname, '../..');

let dir: string;
const { cli, cliJson, assertUserError } = cliRunner(() => dir);
/** Three input files of unequal sizes (three groups), k = 200 in 14 cells, two refinement passes. */
const BUILD = ['build', '--embeddings', 'emb', '--k', '200', '--iters', '5', '--seed', '3', '--method', 'two-level', '--refine', '2', '--memory', '64'];

before(async () => {
  // its stdout is `export SLURM_CONF=<file>`: the clients (and the CLI's sbatch) read it
  const exported = execFileSync('bash', ['scripts/setup-slurm.sh'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  process.env.SLURM_CONF = /^export SLURM_CONF=(.+)$/m.exec(exported)![1]!.replace(/^'(.*)'$/, '$1');
  execFileSync(process.execPath, ['scripts/build.mjs', '--quiet'], { cwd: ROOT, stdio: 'inherit' });
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-slurm-build-'));
  await fs.mkdir(path.join(dir, 'emb'));
  const mixture = new EmbeddingMixture({ d: 32, components: 120, seed: 5 });
  for (const [i, [start, n]] of [[0, 5000], [5000, 3000], [8000, 4500]].entries()) {
    await writeNpy(path.join(dir, 'emb', `part-${i}.npy`), { shape: [n, 32], dtype: 'float16', data: f32ToF16(mixture.rows(start, n)) });
  }
});
after(async () => {
  execFileSync('bash', ['scripts/stop-slurm.sh'], { cwd: ROOT, stdio: 'inherit' });
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

async function tensors(file: string): Promise<Record<string, Buffer>> {
  const { tensors: all } = await readSafetensors(path.join(dir, file));
  return Object.fromEntries(Object.entries(all).map(([name, t]) => [name, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)]));
}

test('build on Slurm: the codebook of the local build, every tensor byte for byte, the same calibration; jobs shows every stage; a re-run submits nothing', async () => {
  const local = await cliJson([...BUILD, '--out', 'local.safetensors']);
  const slurm = await cliJson([...BUILD, '--out', 'slurm.safetensors', '--slurm', '--wait', '--tasks', '2', '--sbatch', '--time=10 --comment="unicode2 build test"']);
  assert.deepEqual(Object.keys(slurm), [...Object.keys(local), 'slurm']);
  // coarse, partition, cells, map-1, reduce-1, map-2, reduce-2, final; 2 array tasks in each of the 4 arrays
  assert.equal(slurm.slurm.jobs.length, 8);
  assert.equal(slurm.slurm.tasks, 8);
  const [mine, theirs] = [await tensors('slurm.safetensors'), await tensors('local.safetensors')];
  assert.deepEqual(Object.keys(mine).sort(), Object.keys(theirs).sort());
  assert.ok(mine.frozen && mine.coarse && mine.coarse_assign && mine.counts);
  assert.deepEqual(mine, theirs);
  assert.deepEqual(slurm.calibration, local.calibration);
  assert.deepEqual([slurm.fingerprint, slurm.inertia, slurm.mse, slurm.vectors], [local.fingerprint, local.inertia, local.mse, local.vectors]);
  await assert.rejects(fs.access(path.join(dir, 'slurm.safetensors.checkpoint')), 'the work folder goes with the codebook written');

  // the job folder, named by the codebook: every task done, in the plan's order
  const jobs = await cliJson(['jobs', 'slurm.safetensors']);
  assert.equal(jobs.job, 'build');
  assert.deepEqual(jobs.tasks.map((t: { task: string; state: string }) => `${t.task} ${t.state}`), [
    'coarse', 'partition-1', 'partition-2', 'cells-1', 'cells-2', 'map-1-1', 'map-1-2', 'reduce-1', 'map-2-1', 'map-2-2', 'reduce-2', 'final',
  ].map((t) => `${t} done`));
  const again = await cliJson([...BUILD, '--out', 'slurm.safetensors', '--slurm', '--tasks', '2']);
  assert.deepEqual([again.jobs, again.tasks], [[], []], 'the codebook is there: nothing is submitted');
});

async function waitForFile(file: string): Promise<string> {
  for (;;) {
    const text = await fs.readFile(file, 'utf8').catch(() => null);
    if (text) return text;
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('build on Slurm: a partition task cancelled fails the build (exit 2, the task named); the same command again submits only what is missing and completes', async () => {
  const args = [...BUILD, '--out', 'cancel.safetensors', '--slurm', '--wait', '--tasks', '2'];
  const run = cli([...args, '--json', '--quiet']);
  // the partition array waits on the coarse job when the chain is recorded: its task 2 is cancelled pending
  const { submissions } = JSON.parse(await waitForFile(path.join(dir, 'cancel.safetensors.slurm/jobs.json')));
  const partition = submissions[0].chain.find((c: { stage: string }) => c.stage === 'partition').job;
  execFileSync('scancel', [`${partition}_2`]);
  const first = await run;
  assert.equal(first.code, 2, first.stderr);
  assert.notEqual(first.stdout, '', first.stderr);
  const failed = JSON.parse(first.stdout).failed as { task: string; error: string }[];
  assert.deepEqual(failed[0], { ...failed[0], task: 'partition-2', job: `${partition}_2` });
  assert.match(failed[0]!.error, /ended without finishing/);
  await assert.rejects(fs.access(path.join(dir, 'cancel.safetensors')));

  const second = await cliJson(args);
  const list = JSON.parse(await fs.readFile(path.join(dir, 'cancel.safetensors.slurm/jobs.json'), 'utf8'));
  assert.deepEqual(list.submissions[1].chain.map((c: { stage: string; array: number[] | null }) => [c.stage, c.array]),
    [['partition', [2]], ['cells', [1, 2]], ['map-1', [1, 2]], ['reduce-1', null], ['map-2', [1, 2]], ['reduce-2', null], ['final', null]]);
  assert.equal(second.slurm.tasks, 7);
  assert.deepEqual(await tensors('cancel.safetensors'), await tensors('local.safetensors'));
});

test('build --slurm --dry-run: the scripts pass bash -n, chain every stage, and nothing is submitted; other builds are refused', async () => {
  const plan = await cliJson([...BUILD, '--out', 'dry.safetensors', '--slurm', '--dry-run', '--tasks', '3', '--setup', 'source "venv dir/bin/activate" || true']);
  assert.deepEqual(plan.stages.map((s: { stage: string; array: number[] | null }) => [s.stage, s.array]),
    [['coarse', null], ['partition', [1, 2, 3]], ['cells', [1, 2, 3]], ['map-1', [1, 2, 3]], ['reduce-1', null], ['map-2', [1, 2, 3]], ['reduce-2', null], ['final', null]]);
  for (const s of plan.stages) execFileSync('bash', ['-n'], { input: s.text });
  assert.match(plan.stages[1].text, /^#SBATCH --array=1-3$/m);
  assert.match(plan.stages[1].text, / --stage=partition:"\$SLURM_ARRAY_TASK_ID"\/3 --json -- $/m);
  assert.match(plan.stages[3].text, /^#SBATCH --output=map-1-%a\.log$/m);
  assert.doesNotMatch(plan.stages[7].text, /--stage/);
  assert.deepEqual(plan.stages[1].sbatch, ['--dependency=afterok:<previous job>', 'partition.sbatch']);
  await assert.rejects(fs.stat(path.join(dir, 'dry.safetensors.slurm')), 'a dry run writes nothing');

  await assertUserError(['build', '--embeddings', 'emb', '--k', '20', '--method', 'flat', '--out', 'flat.safetensors', '--slurm'], /with the two-level method only/);
  await assertUserError(['build', '--images', path.join(ROOT, 'test/fixtures/images'), '--k', '8', '--out', 'img.safetensors', '--slurm'], /from precomputed embeddings only/);
  await assertUserError([...BUILD, '--out', 'x.safetensors', '--slurm', '--stage', 'coarse'], /--stage and --slurm/);
  await assertUserError([...BUILD, '--out', 'x.safetensors', '--wait'], /--wait applies to runs on Slurm \(--slurm\)/);
});

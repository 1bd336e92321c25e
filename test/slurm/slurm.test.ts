// The slurm tier: a real one-node Slurm cluster (slurmctld + slurmd + munge from Debian, started
// by scripts/setup-slurm.sh, stopped by scripts/stop-slurm.sh) running `tokenize --slurm` and
// `embed --slurm`: the outputs equal a local run's byte for byte; an array task cancelled with
// scancel fails its shard, and the same command run again resubmits only that task and
// completes; a data set under a folder named `data set $(touch pwned)` runs and runs nothing
// else; --dry-run's scripts pass `bash -n` and nothing is submitted. The cluster must start: a
// machine where it cannot fails this tier, it does not skip it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cliRunner } from '../helpers/cli.js';
import { sampleEntries, writeTar } from '../helpers/shards.js';

const ROOT = path.join(__dirname, '../..');
const IMAGES = path.join(ROOT, 'test/fixtures/images');
const PHOTOS = ['astronaut.jpg', 'brick.png', 'chelsea.png', 'coffee.jpg', 'flower.jpg', 'rocket.jpg', 'china.jpg'];
const HOSTILE = 'data set $(touch pwned)';

let dir: string;
let cwd: string;
let codebook: string;
let local: Record<string, unknown>;
const pattern = () => path.join(dir, 'wds/{00000..00003}.tar');
const { cli, cliJson, assertUserError } = cliRunner(() => cwd);

before(async () => {
  // its stdout is `export SLURM_CONF=<file>`: the clients (and the CLI's sbatch) read it
  const exported = execFileSync('bash', ['scripts/setup-slurm.sh'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  process.env.SLURM_CONF = /^export SLURM_CONF=(.+)$/m.exec(exported)![1]!.replace(/^'(.*)'$/, '$1');
  execFileSync(process.execPath, ['scripts/build.mjs', '--quiet'], { cwd: ROOT, stdio: 'inherit' });
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-slurm-'));
  cwd = dir;
  codebook = path.join(dir, 'cb.safetensors');
  const r = await cli(['build', '--images', IMAGES, '--k', '32', '--iters', '3', '--out', codebook, '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  // four shards and their local run: what every run on Slurm is compared with
  await writeShards(path.join(dir, 'wds'), 4);
  local = await cliJson(['tokenize', '--codebook', codebook, pattern(), '--out', 'local/']);
});
after(async () => {
  execFileSync('bash', ['scripts/stop-slurm.sh'], { cwd: ROOT, stdio: 'inherit' });
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

/** `count` webdataset shards of 3 photos each in `folder`, named 00000.tar, ... */
async function writeShards(folder: string, count: number, names?: string[]): Promise<string[]> {
  await fs.mkdir(folder, { recursive: true });
  return Array.from({ length: count }, (_, s) => {
    const file = path.join(folder, names?.[s] ?? `${String(s).padStart(5, '0')}.tar`);
    const entries = [0, 1, 2].flatMap((i) => {
      const photo = PHOTOS[(s * 3 + i) % PHOTOS.length]!;
      return sampleEntries(String(s * 3 + i).padStart(6, '0'), { [path.extname(photo).slice(1)]: new Uint8Array(readFileSync(path.join(IMAGES, photo))), txt: photo });
    });
    writeTar(file, entries);
    return file;
  });
}

/** Every output in a folder (the job folder and locks left out), by name. */
async function outputsOf(folder: string): Promise<Map<string, Buffer>> {
  const names = (await fs.readdir(folder)).filter((n) => !n.startsWith('.') && !n.endsWith('.lock')).sort();
  return new Map(await Promise.all(names.map(async (n) => [n, await fs.readFile(path.join(folder, n))] as const)));
}

async function waitForFile(file: string): Promise<string> {
  for (;;) {
    const text = await fs.readFile(file, 'utf8').catch(() => null);
    if (text) return text;
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('tokenize on Slurm: the same outputs as the local run, byte for byte, and the summary with slurm filled', async () => {
  const shards = pattern();
  const slurm = await cliJson(['tokenize', '--codebook', codebook, shards, '--out', 'slurm/', '--slurm', '--wait', '--tasks', '3', '--sbatch', '--time=10 --comment="unicode2 test"']);
  assert.deepEqual(Object.keys(slurm), ['shards', 'images', 'done', 'skipped', 'failed', 'seconds', 'slurm']);
  assert.deepEqual({ ...slurm, seconds: 0, slurm: { ...slurm.slurm, jobs: slurm.slurm.jobs.length } }, { ...local, seconds: 0, slurm: { jobs: 2, tasks: 3 } });
  const [mine, theirs] = [await outputsOf(path.join(dir, 'slurm')), await outputsOf(path.join(dir, 'local'))];
  assert.deepEqual([...mine.keys()], [...theirs.keys()]);
  assert.ok(mine.has('manifest.json') && mine.has('00003.tokens.npy'));
  assert.deepEqual(mine, theirs);

  // the job folder: every task done with its counts, the merge after them
  const jobs = await cliJson(['jobs', 'slurm/']);
  assert.deepEqual(jobs.tasks.map((t: { task: unknown; state: string; shards: number; images: number }) => [t.task, t.state, t.shards, t.images]), [[1, 'done', 2, 6], [2, 'done', 1, 3], [3, 'done', 1, 3], ['merge', 'done', 4, 12]]);
  assert.equal(jobs.submissions[0].array, slurm.slurm.jobs[0]);
  const again = await cliJson(['tokenize', '--codebook', codebook, shards, '--out', 'slurm/', '--slurm']);
  assert.deepEqual([again.tasks, again.jobs], [[], []], 'nothing is missing: nothing is submitted');
});

test('embed on Slurm: the same embedding sets as the local run, byte for byte, and the summary with slurm filled', async () => {
  const here = await cliJson(['embed', pattern(), '--out', 'emb-local/']);
  const slurm = await cliJson(['embed', pattern(), '--out', 'emb-slurm/', '--slurm', '--wait', '--tasks', '2', '--sbatch', '--time=10']);
  assert.deepEqual({ ...slurm, seconds: 0, slurm: { ...slurm.slurm, jobs: slurm.slurm.jobs.length } }, { ...here, seconds: 0, slurm: { jobs: 2, tasks: 2 } });
  const [mine, theirs] = [await outputsOf(path.join(dir, 'emb-slurm')), await outputsOf(path.join(dir, 'emb-local'))];
  assert.ok(mine.has('manifest.json') && mine.has('00003.npy') && mine.has('00003.npy.index.json'));
  assert.deepEqual(mine, theirs);
});

test('tokenize on Slurm: an array task cancelled fails its shard alone; the same command again resubmits only it', async () => {
  const shards = pattern();
  const args = ['tokenize', '--codebook', codebook, shards, '--out', 'cancel/', '--slurm', '--wait', '--json', '--quiet'];
  const run = cli(args);
  // four tasks on a node of two CPUs: task 4 waits for a free one when it is cancelled
  const { submissions } = JSON.parse(await waitForFile(path.join(dir, 'cancel/.slurm/jobs.json')));
  execFileSync('scancel', [`${submissions[0].array}_4`]);
  const first = await run;
  assert.equal(first.code, 2, first.stderr);
  const summary = JSON.parse(first.stdout);
  assert.deepEqual([summary.done, summary.skipped, summary.images, summary.slurm.tasks], [3, 0, 9, 4]);
  assert.deepEqual(summary.failed.map((f: { shard: string }) => path.basename(f.shard)), ['00003.tar']);
  assert.match(summary.failed[0].error, new RegExp(`^Slurm task 4 \\(job ${submissions[0].array}_4\\) ended without finishing`));
  const shown = await cliJson(['jobs', 'cancel/']);
  assert.deepEqual(shown.tasks.map((t: { state: string }) => t.state), ['done', 'done', 'done', 'failed', 'failed']);

  const second = await cliJson(args.slice(0, -2));
  assert.deepEqual([second.done, second.skipped, second.images, second.failed, second.slurm.tasks], [1, 3, 12, [], 1]);
  const list = JSON.parse(await fs.readFile(path.join(dir, 'cancel/.slurm/jobs.json'), 'utf8'));
  assert.deepEqual(list.submissions.map((s: { tasks: number[] }) => s.tasks), [[1, 2, 3, 4], [4]]);
  assert.deepEqual(await outputsOf(path.join(dir, 'cancel')), await outputsOf(path.join(dir, 'local')));
});

test('tokenize on Slurm: a data set under a folder named `data set $(touch pwned)` runs, and runs nothing else', async () => {
  const hostile = path.join(dir, HOSTILE);
  await writeShards(hostile, 2, ['00000.tar', "it's $(touch pwned).tar"]);
  await fs.copyFile(codebook, path.join(hostile, 'cb $(touch pwned).safetensors'));
  cwd = hostile;
  try {
    const r = await cliJson(['tokenize', '--codebook', 'cb $(touch pwned).safetensors', '00000.tar', "it's $(touch pwned).tar", '--out', 'out $(touch pwned)/',
      '--slurm', '--wait', '--sbatch', "--comment='$(touch pwned)'", '--setup', 'echo "setup in $PWD"']);
    assert.deepEqual([r.shards, r.done, r.images, r.failed], [2, 2, 6, []]);
  } finally {
    cwd = dir;
  }
  const out = path.join(hostile, 'out $(touch pwned)');
  assert.ok((await fs.stat(path.join(out, "it's $(touch pwned).tokens.npy"))).size > 0);
  assert.match(await fs.readFile(path.join(out, '.slurm/task-1.log'), 'utf8'), new RegExp(`setup in ${hostile.replace(/[$()]/g, '\\$&')}`));
  for (const folder of [dir, hostile, out, path.join(out, '.slurm'), ROOT, os.homedir(), '/']) {
    await assert.rejects(fs.stat(path.join(folder, 'pwned')), `a file named pwned in ${folder}`);
  }
});

test('tokenize --slurm --dry-run: the scripts pass bash -n, name every part, and nothing is submitted; jobs --cancel', async () => {
  const shards = pattern();
  const plan = await cliJson(['tokenize', '--codebook', codebook, shards, '--out', 'dry/', '--slurm', '--dry-run', '--tasks', '2', '--setup', 'source "venv dir/bin/activate" || true']);
  assert.deepEqual([plan.count, plan.tasks], [2, [1, 2]]);
  for (const s of plan.scripts) execFileSync('bash', ['-n'], { input: s.text });
  assert.match(plan.scripts[0].text, /^#SBATCH --array=1-2$/m);
  assert.match(plan.scripts[0].text, /--shard "\$SLURM_ARRAY_TASK_ID"\/2 --json -- /);
  assert.match(plan.scripts[1].text, /^#SBATCH --output=merge\.log$/m);
  await assert.rejects(fs.stat(path.join(dir, 'dry')), 'a dry run writes nothing');
  // --pooled is part of the job: its tasks and merge run with it
  const pooled = await cliJson(['tokenize', '--codebook', codebook, shards, '--out', 'dry/', '--pooled', '--slurm', '--dry-run', '--tasks', '2']);
  for (const s of pooled.scripts) assert.match(s.text, /cli\.js tokenize .*--pooled /);
  const tokenize = ['tokenize', '--codebook', codebook, shards, '--out', 'dry/'];
  await assertUserError([...tokenize, '--wait'], /--wait applies to runs on Slurm \(--slurm\)/);
  await assertUserError([...tokenize, '--slurm', '--shard', '1/2'], /on Slurm the job runs every part itself/);
  await assertUserError([...tokenize, '--slurm', '--sbatch', '--time=10 --array=1-3'], /the sbatch option --array=1-3 is set by the job itself/);
  await assertUserError([...tokenize, '--slurm', '--sbatch', "--comment='open"], /the sbatch options: the quote ' at character 11 is never closed/);
  await assertUserError(['tokenize', '--codebook', codebook, IMAGES, '--slurm'], /runs on Slurm are over data-set shards/);

  // submitted, then cancelled from the job folder: both jobs, every task then reads failed
  const sub = await cliJson(['tokenize', '--codebook', codebook, shards, '--out', 'dry/', '--slurm', '--tasks', '2', '--sbatch', '--begin=now+3600']);
  const cancelled = await cliJson(['jobs', 'dry/', '--cancel']);
  assert.deepEqual(cancelled.cancelled, sub.jobs);
  const shown = await cliJson(['jobs', 'dry/']);
  assert.deepEqual(shown.tasks.map((t: { state: string }) => t.state), ['failed', 'failed', 'failed']);
});

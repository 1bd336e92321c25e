// The slurm tier, VS Code's side: what Tokenize Folder's "Run on Slurm" and its Lab cell run
// (extension/state/slurm-jobs.ts: the request from the settings, following a job folder, Cancel)
// against the real one-node cluster of scripts/setup-slurm.sh — sbatch, squeue, scontrol and
// scancel as they are. Jobs are submitted held (sbatch --hold, one of the user's options), so the
// cell's first view of the tasks is pending whatever the machine's speed; the test then releases
// them (a run to the end) or cancels them through the follower (Cancel). Following takes only the
// job folder, as a reloaded window re-attaching does.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cliRunner, CLI } from '../helpers/cli.js';
import { sampleEntries, writeTar } from '../helpers/shards.js';
import {
  buildOnSlurmResult, listShards, openBackend, planBuildOnSlurm, planSlurmJob, readCodebook, readJobsFile, slurmSummary, submitBuildOnSlurm, submitSlurmJob, taskViews,
  CancelledError, type SlurmRequest,
} from '../../extension/engine/index.js';
import { buildSlurmRequest, followJobFolder, slurmOnPath, tokenizeSlurmRequest, type SlurmSettings } from '../../extension/state/slurm-jobs.js';
import type { SlurmView } from '../../common/protocol/lab.js';

const ROOT = path.join(__dirname, '../..');
const IMAGES = path.join(ROOT, 'test/fixtures/images');
const PHOTOS = ['astronaut.jpg', 'brick.png', 'chelsea.png', 'coffee.jpg', 'flower.jpg', 'rocket.jpg'];

let dir: string;
let codebook: string;
let shardFiles: string[];
let local: Record<string, unknown>;
const { cli, cliJson } = cliRunner(() => dir);

before(async () => {
  const exported = execFileSync('bash', ['scripts/setup-slurm.sh'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  process.env.SLURM_CONF = /^export SLURM_CONF=(.+)$/m.exec(exported)![1]!.replace(/^'(.*)'$/, '$1');
  execFileSync(process.execPath, ['scripts/build.mjs', '--quiet'], { cwd: ROOT, stdio: 'inherit' });
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-vscode-slurm-'));
  codebook = path.join(dir, 'cb.safetensors');
  const r = await cli(['build', '--images', IMAGES, '--k', '32', '--iters', '3', '--out', codebook, '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  // a folder of three webdataset shards of two photos each, as Tokenize Folder finds them
  await fs.mkdir(path.join(dir, 'laion'));
  shardFiles = [0, 1, 2].map((s) => {
    const file = path.join(dir, 'laion', `0000${s}.tar`);
    writeTar(file, [0, 1].flatMap((i) => {
      const photo = PHOTOS[s * 2 + i]!;
      return sampleEntries(`${s}${i}`, { [path.extname(photo).slice(1)]: new Uint8Array(readFileSync(path.join(IMAGES, photo))) });
    }));
    return file;
  });
  local = await cliJson(['tokenize', '--codebook', codebook, ...shardFiles, '--out', 'local/']);
});
after(async () => {
  execFileSync('bash', ['scripts/stop-slurm.sh'], { cwd: ROOT, stdio: 'inherit' });
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

/** The request Tokenize Folder makes with these settings (held: `--hold` among the user's options). */
async function request(out: string, settings: SlurmSettings): Promise<SlurmRequest> {
  return tokenizeSlurmRequest({
    shards: listShards(shardFiles), out: path.join(dir, out), codebook, cb: await readCodebook(codebook),
    search: { search: 'auto', nprobe: 0 }, settings, cli: CLI,
  });
}

const statesOf = (view: SlurmView) => view.tasks.map((t) => `${t.task}:${t.state}`);

/** The output folder's files (the job folder and locks left out), by name. */
async function outputsOf(folder: string): Promise<Map<string, Buffer>> {
  const names = (await fs.readdir(folder)).filter((n) => !n.startsWith('.') && !n.endsWith('.lock')).sort();
  return new Map(await Promise.all(names.map(async (n) => [n, await fs.readFile(path.join(folder, n))] as const)));
}

test('sbatch is found on the PATH (the offer of "Run on Slurm"), and not on a PATH without it', () => {
  assert.equal(slurmOnPath(), true);
  assert.equal(slurmOnPath({ PATH: path.join(dir, 'laion') }), false);
});

test('Run on Slurm: the settings\' options reach sbatch, the cell sees the tasks pending, then done; the outputs are the local run\'s, byte for byte', async () => {
  const req = await request('slurm', { sbatch: '--time=10 --hold --comment="unicode2 vscode"', tasks: 2, setup: 'export UNICODE2_TEST_SETUP=1' });
  const plan = await planSlurmJob(req);
  assert.deepEqual([plan.count, plan.pending], [2, [1, 2]]);
  assert.match(plan.scripts[0]!.text, /^export UNICODE2_TEST_SETUP=1$/m);
  const sub = await submitSlurmJob(req, plan);
  const views: SlurmView[] = [];
  // from here on only the folder: what a reloaded window re-attaches with
  const { jobs, views: final } = await followJobFolder(plan.folder, {
    signal: new AbortController().signal,
    pollMs: 250,
    onView: (view) => {
      if (views.length === 0) execFileSync('scontrol', ['release', String(sub.array), String(sub.merge)]);
      views.push(view);
    },
  });
  // held: the first view has every task pending, with its Slurm job once squeue lists it
  assert.deepEqual(statesOf(views[0]!), ['1:pending', '2:pending', 'merge:pending']);
  assert.deepEqual(views[0]!.jobs, [sub.array, sub.merge]);
  assert.equal(views[0]!.folder, plan.folder);
  assert.deepEqual(statesOf(views.at(-1)!), ['1:done', '2:done', 'merge:done']);
  assert.deepEqual(views.at(-1)!.tasks.map((t) => t.job), [`${sub.array}_1`, `${sub.array}_2`, String(sub.merge)]);
  assert.deepEqual(final.map((v) => v.state), ['done', 'done', 'done']);
  // the cell's summary is the CLI's
  const summary = await slurmSummary({ ...req, count: jobs.count }, sub, final, 0);
  assert.deepEqual({ ...summary, seconds: 0, slurm: summary.slurm?.tasks }, { ...local, seconds: 0, slurm: 2 });
  const [here, there] = await Promise.all([outputsOf(path.join(dir, 'local')), outputsOf(req.out)]);
  const differing = [...here.keys()].filter((n) => n !== 'manifest.json' && !here.get(n)!.equals(there.get(n) ?? Buffer.alloc(0)));
  assert.deepEqual([...there.keys()], [...here.keys()]);
  assert.deepEqual(differing, []);
});

test('Cancel: the follower cancels the jobs with scancel; every task then reads failed, ended without finishing', async () => {
  const req = await request('cancelled', { sbatch: '--time=10 --hold', tasks: 0, setup: '' });
  const plan = await planSlurmJob(req);
  assert.equal(plan.count, 3, 'tasks 0: one per shard');
  const sub = await submitSlurmJob(req, plan);
  const abort = new AbortController();
  const following = followJobFolder(plan.folder, { signal: abort.signal, pollMs: 250, onView: () => abort.abort() });
  await assert.rejects(following, CancelledError);
  const queued = execFileSync('squeue', ['--noheader', '--array', '--format=%F|%T']).toString().split('\n').filter((l) => [String(sub.array), String(sub.merge)].includes(l.split('|')[0]!));
  // scancel of a held job ends it at once; one still listed is on its way out
  assert.ok(queued.every((l) => /CANCELLED|COMPLETING/.test(l)), `still queued after Cancel: ${queued.join(', ')}`);
  const jobs = (await readJobsFile(plan.folder))!;
  let views = await taskViews(plan.folder, jobs);
  while (views.some((v) => v.state === 'pending' || v.state === 'running')) {
    await new Promise((r) => setTimeout(r, 200));
    views = await taskViews(plan.folder, jobs);
  }
  assert.deepEqual(views.map((v) => v.state), ['failed', 'failed', 'failed', 'failed']);
  for (const v of views) assert.match(v.error ?? '', /ended without finishing/);
  // nothing ran: no output was written
  assert.deepEqual([...(await outputsOf(req.out)).keys()], []);
});

test('Build on Slurm from a folder of embedding files: the settings\' request runs the two-level plan\'s chain; the cell follows every stage to the codebook', async () => {
  // two embedding files, as `unicode2 embed` writes them: the plan's groups
  await fs.mkdir(path.join(dir, 'emb'));
  for (const [i, photos] of [PHOTOS.slice(0, 3), PHOTOS.slice(3)].entries()) {
    await fs.mkdir(path.join(dir, `photos-${i}`));
    for (const p of photos) await fs.copyFile(path.join(IMAGES, p), path.join(dir, `photos-${i}`, p));
    assert.equal((await cli(['embed', path.join(dir, `photos-${i}`), '--out', path.join(dir, 'emb', `part-${i}.npy`), '--quiet'])).code, 0);
  }
  const out = path.join(dir, 'built.safetensors');
  const req = buildSlurmRequest({
    embeddings: path.join(dir, 'emb'), out, params: { k: 16, lambda: 0, iterations: 3, tolerance: 0, seed: 0, encoder: 'dct' },
    settings: { sbatch: '--time=10', tasks: 2, setup: '' }, cli: CLI,
  });
  const backend = await openBackend('cpu');
  const plan = await planBuildOnSlurm(req, backend);
  const sub = await submitBuildOnSlurm(req, plan);
  assert.ok(sub?.chain, 'a chain of jobs');
  const views: SlurmView[] = [];
  const { views: final } = await followJobFolder(plan.folder, { signal: new AbortController().signal, pollMs: 250, onView: (v) => views.push(v) });
  // every job of the chain is the cell's, and every task of the plan ended done, the final write last
  assert.deepEqual(views[0]!.jobs, sub.chain.map((c) => c.job));
  assert.deepEqual(final.map((v) => v.state), final.map(() => 'done'), JSON.stringify(final.map((v) => [v.task, v.state, v.error])));
  assert.deepEqual([final[0]!.task, final.at(-1)!.task], ['coarse', 'final']);
  assert.ok(final.some((v) => /^partition/.test(String(v.task))), 'the partition tasks are shown');
  const { summary } = await buildOnSlurmResult(plan.folder);
  assert.equal(summary?.k, 16);
  assert.equal(summary?.method, 'two-level');
  assert.equal((await readCodebook(out)).frozen.rows, 16);
});


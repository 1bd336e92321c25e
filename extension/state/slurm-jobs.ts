// Runs on Slurm from VS Code: whether Slurm's client is here (sbatch on the PATH: a Remote-SSH
// window on a login node), the unicode2.slurm.* settings as the CLI's flags take them, the request
// of a tokenize job over shards, and following a job folder for a Lab cell (each task's state;
// Cancel runs scancel). Following reads only the folder (jobs.json, the task status files) and
// the queue, so it is the same for every job over a job folder, and a reloaded window re-attaches
// from the folder alone. No vscode here: the slurm test tier drives this module on a real cluster.
import { accessSync, constants } from 'node:fs';
import * as path from 'node:path';
import {
  buildOnSlurmRequest, cancelJobs, submissionJobs, readJobsFile, shellSplit, taskViews, tokenizeIdentity, waitForJobs, UserError,
  type BuildOnSlurm, type BuildRequest, type Codebook, type JobsFile, type SearchOptions, type ShardFile, type SlurmRequest, type Submission, type TaskView,
} from '../engine/index.js';
import type { SlurmView } from '../../common/protocol/lab.js';

/** Whether `sbatch` is an executable on the PATH. */
export function slurmOnPath(env: NodeJS.ProcessEnv = process.env): boolean {
  return (env.PATH ?? '').split(path.delimiter).some((dir) => {
    try {
      accessSync(path.join(dir, 'sbatch'), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** unicode2.slurm.*: what the CLI's --sbatch, --tasks and --setup take. */
export interface SlurmSettings {
  /** sbatch options for every job, one string */
  sbatch: string;
  /** array tasks; 0 = one per shard (capped as the CLI caps it) */
  tasks: number;
  /** a shell line run before each task */
  setup: string;
}

/** How a task runs the CLI again: this process's node and the extension's own CLI bundle. VS Code's
 *  desktop extension host is Electron, which runs as node only when told so; a Remote-SSH or
 *  code-server host is node already. */
function taskRuntime(cli: string, setup: string): Pick<SlurmRequest, 'node' | 'cli' | 'setup'> {
  const lines = [...(process.versions.electron ? ['export ELECTRON_RUN_AS_NODE=1'] : []), ...(setup.trim() ? [setup] : [])];
  return { node: process.execPath, cli, ...(lines.length > 0 && { setup: lines.join('\n') }) };
}

/** A tokenize job over shards as a Slurm request: the same job `unicode2 tokenize SHARDS --out
 *  DIR/ --slurm` submits, every path absolute. */
export interface TokenizeOnSlurm {
  shards: ShardFile[];
  /** the output folder */
  out: string;
  codebook: string;
  cb: Codebook;
  /** the encoder spec when it is not the codebook's own, and the id it opens as */
  encoder?: { spec: string; id: string };
  search: Required<SearchOptions>;
  settings: SlurmSettings;
  /** the CLI bundle (dist/cli.js) */
  cli: string;
}

export function tokenizeSlurmRequest(t: TokenizeOnSlurm): SlurmRequest {
  const out = path.resolve(t.out);
  const search = t.search.search === 'exact' ? ['--exact'] : t.search.nprobe > 0 ? [`--nprobe=${t.search.nprobe}`] : [];
  const argv = ['tokenize', `--codebook=${path.resolve(t.codebook)}`, `--out=${out}${path.sep}`, ...(t.encoder ? [`--encoder=${t.encoder.spec}`] : []), ...search];
  return {
    job: 'tokenize',
    argv,
    operands: t.shards.map((s) => path.resolve(s.path)),
    cwd: path.dirname(out),
    ...taskRuntime(t.cli, t.settings.setup),
    out,
    shards: t.shards,
    identity: tokenizeIdentity(t.cb, t.encoder?.id ?? t.cb.meta.encoder.id),
    ...slurmOptions(t.settings),
  };
}

/** The user's sbatch options and task count, as a request takes them. */
function slurmOptions(settings: SlurmSettings): { sbatch: string[]; tasks?: number } {
  return { sbatch: shellSplit(settings.sbatch, 'the sbatch options (unicode2.slurm.sbatch)'), ...(settings.tasks > 0 && { tasks: settings.tasks }) };
}

/** A build from a folder of embedding files as a Slurm request: the two-level plan `unicode2 build
 *  --embeddings DIR --method two-level --slurm` submits, every path absolute. The memory budget
 *  is fixed by buildOnSlurmRequest: it shapes the plan, so every task must have the one the plan was made with. */
export interface BuildFromEmbeddingsOnSlurm {
  embeddings: string;
  out: string;
  params: { k: number; lambda: number; iterations: number; tolerance: number; seed: number; encoder: string };
  settings: SlurmSettings;
  cli: string;
}

export function buildSlurmRequest(b: BuildFromEmbeddingsOnSlurm): BuildOnSlurm {
  const out = path.resolve(b.out);
  const build: BuildRequest = { ...b.params, embeddings: path.resolve(b.embeddings), out, method: 'two-level' };
  const options = slurmOptions(b.settings);
  return buildOnSlurmRequest(build, { ...taskRuntime(b.cli, b.settings.setup), cwd: path.dirname(out), ...options });
}

/** What a Lab cell shows of a job folder: each task's state, job, shards and, failed, why. */
export function slurmView(folder: string, sub: Submission, views: TaskView[]): SlurmView {
  return {
    folder,
    jobs: submissionJobs(sub),
    tasks: views.map((v) => ({
      task: v.task, state: v.state, job: v.job, shards: v.shards,
      ...(v.images !== undefined && { images: v.images }),
      ...(v.error !== undefined && { error: v.error }),
      ...(v.tail && { tail: v.tail }),
    })),
  };
}

export interface Following {
  signal: AbortSignal;
  /** each view of the tasks that differs from the last */
  onView(view: SlurmView): void;
  /** array tasks ended, of all submitted */
  onTick?(ended: number, total: number): void;
  pollMs?: number;
}

export interface Followed {
  jobs: JobsFile;
  sub: Submission;
  views: TaskView[];
}

/** Follows the folder's last submission until its jobs leave the queue, showing the tasks as they
 *  go; an abort cancels the jobs (scancel) and rejects. Resolves to the tasks' final views. */
export async function followJobFolder(folder: string, following: Following): Promise<Followed> {
  const jobs = await readJobsFile(folder);
  const sub = jobs?.submissions.at(-1);
  if (!jobs || !sub) throw new UserError(`${folder}: no jobs were submitted from this folder (no jobs.json)`);
  let shown = '';
  const show = async () => {
    const views = await taskViews(folder, jobs);
    const view = slurmView(folder, sub, views);
    if (JSON.stringify(view) !== shown) following.onView(view);
    shown = JSON.stringify(view);
    return views;
  };
  // one view at a time: a poll that comes while the last is still reading the folder skips
  let showing: Promise<unknown> | null = null;
  const onTick = (ended: number, total: number) => {
    following.onTick?.(ended, total);
    showing ??= show().catch(() => undefined).finally(() => (showing = null));
  };
  try {
    await waitForJobs(sub, { signal: following.signal, pollMs: following.pollMs ?? 2000, onTick });
  } catch (err) {
    if (following.signal.aborted) {
      await cancelJobs(folder);
      await showing;
      await show().catch(() => undefined);
    }
    throw err;
  }
  await showing;
  return { jobs, sub, views: await show() };
}

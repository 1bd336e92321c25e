// Following a job folder: each task's state (its status file, checked against the queue: a task
// that says pending or running but is no longer queued ended without finishing — cancelled or
// killed), waiting until the jobs end, the run's summary as a local run gives it, and cancel.
import * as path from 'node:path';
import { CancelledError } from '../../../common/errors.js';
import { completeRecord, shardsOfPart, type ShardSummary } from '../io/shard-job.js';
import type { ShardFile } from '../io/shard-list.js';
import { logName, logTail, readJobsFile, readTaskStatus, submissionJobs, type ChainJob, type JobsFile, type Submission, type TaskStatus } from './job-folder.js';
import { doomedJobs, endedState, scancel, squeue, type QueuedJob } from './slurm.js';

/** A task as `unicode2 jobs` shows it: its status, and a failed task's log's last lines. */
export interface TaskView extends TaskStatus {
  tail?: string;
}

/** The Slurm job a task of `sub` is: '12_3', or the merge's id. */
const jobOf = (sub: Submission, task: number | 'merge') => (task === 'merge' ? String(sub.merge) : `${sub.array}_${task}`);

/** The submission that last ran `task` (the newest that names it). */
const submissionOf = (jobs: JobsFile, task: number | 'merge') => [...jobs.submissions].reverse().find((s) => task === 'merge' || s.tasks.includes(task));

async function viewOf(folder: string, jobs: JobsFile, task: number | 'merge', queued: QueuedJob[]): Promise<TaskView | null> {
  const sub = submissionOf(jobs, task);
  const status = await readTaskStatus(folder, task);
  if (!sub || !status) return null;
  const live = queued.find((q) => (task === 'merge' ? q.job === sub.merge : q.job === sub.array && q.task === task));
  return settle(folder, { ...status, job: jobOf(sub, task) }, live);
}

/** Every task's view (1..count, then the merge; a plan's tasks in its order), as the folder and
 *  the queue say now. */
export async function taskViews(folder: string, jobs: JobsFile): Promise<TaskView[]> {
  const queued = await squeue(jobs.submissions.flatMap(submissionJobs));
  if (jobs.submissions.some((s) => s.chain)) return chainViews(folder, jobs, queued);
  const tasks: (number | 'merge')[] = [...Array.from({ length: jobs.count }, (_, i) => i + 1), 'merge'];
  const views = await Promise.all(tasks.map((t) => viewOf(folder, jobs, t, queued)));
  return views.filter((v): v is TaskView => v !== null);
}

/** A plan's tasks, each as the newest submission that ran it says. */
async function chainViews(folder: string, jobs: JobsFile, queued: QueuedJob[]): Promise<TaskView[]> {
  const newest = new Map<string, { chain: ChainJob; index: number }>();
  for (const sub of jobs.submissions) for (const chain of sub.chain ?? []) chain.tasks.forEach((name, index) => newest.set(name, { chain, index }));
  const views = await Promise.all([...newest].map(async ([name, { chain, index }]) => {
    const status = await readTaskStatus(folder, name);
    if (!status) return null;
    const id = chain.array?.[index];
    const view: TaskView = { ...status, job: id === undefined ? String(chain.job) : `${chain.job}_${id}` };
    return settle(folder, view, queued.find((q) => q.job === chain.job && (id === undefined || q.task === id)));
  }));
  return views.filter((v): v is TaskView => v !== null);
}

/** A view as the queue says: a task still queued is pending or running, one that says so but is
 *  not queued ended without finishing; a failed one gets its log's last lines. */
async function settle(folder: string, view: TaskView, live: QueuedJob | undefined): Promise<TaskView> {
  if (view.state === 'pending' || view.state === 'running') {
    if (live) return { ...view, state: live.state === 'PENDING' ? 'pending' : 'running' };
    const ended = await endedState(view.job);
    Object.assign(view, { state: 'failed', error: `ended without finishing (${ended ?? 'cancelled or killed'})` });
  }
  if (view.state === 'failed') view.tail = await logTail(path.join(folder, logName(view.task)));
  return view;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const onAbort = () => (clearTimeout(timer), reject(new CancelledError()));
    const timer = setTimeout(() => (signal?.removeEventListener('abort', onAbort), resolve()), ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/** Waits until the submission's jobs have left the queue; jobs left waiting on a failed one
 *  (their dependency can never be met) are cancelled. `onTick`: tasks ended of all (array tasks,
 *  or every task of a plan). */
export async function waitForJobs(sub: Submission, options: { signal?: AbortSignal; pollMs?: number; onTick?(ended: number, total: number): void } = {}): Promise<void> {
  const total = sub.chain ? sub.chain.reduce((n, c) => n + c.tasks.length, 0) : sub.tasks.length;
  for (;;) {
    const queued = await squeue(submissionJobs(sub));
    const tasks = sub.chain ? queued : queued.filter((q) => q.job === sub.array);
    options.onTick?.(total - tasks.length, total);
    if (queued.length === 0) return;
    const doomed = doomedJobs(submissionJobs(sub), queued);
    if (doomed.length > 0) return scancel(doomed.map(String));
    await sleep(options.pollMs ?? 1000, options.signal);
  }
}

/** Cancels the jobs of the folder's last submission that are still queued or running. */
export async function cancelJobs(folder: string): Promise<number[]> {
  const last = (await readJobsFile(folder))?.submissions.at(-1);
  if (!last) return [];
  const queued = new Set((await squeue(submissionJobs(last))).map((q) => q.job));
  const ids = submissionJobs(last).filter((id) => queued.has(id));
  await scancel(ids.map(String));
  return ids;
}

/** What a run on Slurm did, as a local run reports it: the submitted tasks' counts, the parts not
 *  submitted (complete already) as skipped; a task that ended without its counts fails its
 *  shards that have no complete output, naming the task and its log. */
export async function slurmSummary(job: { out: string; shards: ShardFile[]; identity: Record<string, string>; count: number }, sub: Submission | null, views: TaskView[], seconds: number): Promise<ShardSummary> {
  const summary: ShardSummary = { shards: job.shards.length, images: 0, done: 0, skipped: 0, failed: [], seconds, slurm: { jobs: sub ? [sub.array, sub.merge] : [], tasks: sub?.tasks.length ?? 0 } };
  for (let index = 1; index <= job.count; index++) {
    const view = sub?.tasks.includes(index) ? views.find((v) => v.task === index) : undefined;
    if (view?.done !== undefined) {
      summary.images += view.images ?? 0;
      summary.done += view.done;
      summary.skipped += view.skipped ?? 0;
      summary.failed.push(...(view.failed ?? []));
      continue;
    }
    for (const shard of shardsOfPart(job.shards, { index, count: job.count })) {
      const record = await completeRecord(job.out, shard, job.identity);
      if (record) summary.images += record.images;
      if (record) summary[view ? 'done' : 'skipped']++;
      else summary.failed.push({ shard: shard.path, error: `Slurm task ${index} (job ${view?.job ?? '?'}) ${view?.error ?? 'did not run'}; log: ${view?.log ?? ''}` });
    }
  }
  return summary;
}

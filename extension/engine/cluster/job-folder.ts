// A job's folder on the shared filesystem, inside its output folder: `<out>/.slurm/` (a build,
// whose output is a file: `<out>.slurm/` beside it). It holds the sbatch scripts, jobs.json (what
// was submitted: the array and merge job ids, which tasks; a build's chain of stage jobs), one
// status file per task (task-<i>.json, merge.json; a build's coarse.json, partition-<i>.json, ...,
// final.json) and the tasks' logs (task-<i>.log, merge.log; coarse.log, ...). Every file is
// written atomically, so the CLI, the extension and a re-attached window read the same state;
// the task itself writes its status as it starts and ends.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../../common/errors.js';
import { writeFileAtomic } from '../io/atomic-write.js';
import { readJsonFile } from '../io/files.js';
import { MAX_CONFIG_BYTES, MAX_JSON_BYTES } from '../core/limits.js';

export const JOB_FOLDER = '.slurm';
export const JOB_FORMAT = 'unicode2.slurm';

export const jobFolderOf = (out: string): string => path.join(out, JOB_FOLDER);

/** One submission: the array job (its tasks) and the merge job that waits for it; a plan of
 *  stages (a two-level build) is a chain of jobs, `array` its first and `merge` its last. */
export interface Submission {
  array: number;
  merge: number;
  tasks: number[];
  submitted: string;
  /** a plan's jobs in order, each with afterok on the one before */
  chain?: ChainJob[];
}

/** One job of a plan's chain: a stage (an array job for the parallel stages) and its tasks by
 *  name ('partition-3': its status file partition-3.json, its log partition-3.log). */
export interface ChainJob {
  stage: string;
  job: number;
  /** array task ids, or null for a single job */
  array: number[] | null;
  tasks: string[];
}

/** Every Slurm job of a submission. */
export const submissionJobs = (sub: Submission): number[] => (sub.chain ? sub.chain.map((c) => c.job) : [sub.array, sub.merge]);

/** `<out>/.slurm/jobs.json` */
export interface JobsFile {
  format: typeof JOB_FORMAT;
  /** what the job is: 'tokenize', 'build' */
  job: string;
  /** what the work is keyed by (a build's arguments and input), when a re-run must tell */
  key?: string;
  /** the number of parts (array tasks) the shards are split into */
  count: number;
  submissions: Submission[];
}

export type TaskState = 'pending' | 'running' | 'done' | 'failed';

/** A task's status file, as the task (or, before it starts, the submitter) writes it. */
export interface TaskStatus {
  /** the part (1-based), 'merge', or a plan's task by name ('coarse', 'partition-3', 'final') */
  task: number | string;
  state: TaskState;
  /** the Slurm job: '12_3' for an array task */
  job: string;
  log: string;
  shards: number;
  images?: number;
  done?: number;
  skipped?: number;
  failed?: { shard: string; error: string }[];
  started?: string;
  ended?: string;
  /** why a task failed before or outside its shards (a bad codebook, a cancelled job) */
  error?: string;
  /** a plan's last task: what the command printed (a build's summary) and the output it wrote */
  summary?: unknown;
  output?: { size: number; mtimeMs: number };
}

const statusName = (task: number | string) => (typeof task === 'number' ? `task-${task}.json` : `${task}.json`);
export const logName = (task: number | string) => (typeof task === 'number' ? `task-${task}.log` : `${task}.log`);

export async function writeTaskStatus(folder: string, status: TaskStatus): Promise<void> {
  await writeFileAtomic(path.join(folder, statusName(status.task)), JSON.stringify(status, null, 2) + '\n');
}

/** A task's status file, or null when there is none (or it is unreadable: treated as unknown). */
export async function readTaskStatus(folder: string, task: number | string): Promise<TaskStatus | null> {
  const doc = (await readJsonFile(path.join(folder, statusName(task)), 'task status', MAX_CONFIG_BYTES).catch(() => null)) as TaskStatus | null;
  return doc && typeof doc === 'object' && typeof doc.state === 'string' ? doc : null;
}

export async function writeJobsFile(folder: string, jobs: JobsFile): Promise<void> {
  await writeFileAtomic(path.join(folder, 'jobs.json'), JSON.stringify(jobs, null, 2) + '\n');
}

/** The folder's jobs.json; null when nothing was ever submitted from it. */
export async function readJobsFile(folder: string): Promise<JobsFile | null> {
  const file = path.join(folder, 'jobs.json');
  if (!(await fs.stat(file).catch(() => null))) return null;
  const doc = (await readJsonFile(file, 'job list', MAX_JSON_BYTES)) as Partial<JobsFile> | null;
  if (!doc || doc.format !== JOB_FORMAT || !Array.isArray(doc.submissions)) throw new UserError(`${file} is not a job list (format "${JOB_FORMAT}")`);
  return doc as JobsFile;
}

/** The last `lines` lines of a log (its last 64 KiB at most); '' when there is none. */
export async function logTail(file: string, lines = 10): Promise<string> {
  const handle = await fs.open(file, 'r').catch(() => null);
  if (!handle) return '';
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, 65_536);
    const { buffer } = await handle.read(Buffer.alloc(length), 0, length, size - length);
    return buffer.toString('utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } finally {
    await handle.close();
  }
}

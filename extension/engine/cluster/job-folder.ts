// A job's folder on the shared filesystem, inside its output folder: `<out>/.slurm/`. It holds
// the sbatch scripts, jobs.json (what was submitted: the array and merge job ids, which tasks),
// one status file per task (task-<i>.json, merge.json) and the tasks' logs (task-<i>.log,
// merge.log). Every file is written atomically, so the CLI, the extension and a re-attached
// window read the same state; the task itself writes its status as it starts and ends.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../../common/errors.js';
import { writeFileAtomic } from '../io/atomic-write.js';
import { readJsonFile } from '../io/files.js';
import { MAX_CONFIG_BYTES, MAX_JSON_BYTES } from '../core/limits.js';

export const JOB_FOLDER = '.slurm';
export const JOB_FORMAT = 'unicode2.slurm';

export const jobFolderOf = (out: string): string => path.join(out, JOB_FOLDER);

/** One submission: the array job (its tasks) and the merge job that waits for it. */
export interface Submission {
  array: number;
  merge: number;
  tasks: number[];
  submitted: string;
}

/** `<out>/.slurm/jobs.json` */
export interface JobsFile {
  format: typeof JOB_FORMAT;
  /** what the job is: 'tokenize' */
  job: string;
  /** the number of parts (array tasks) the shards are split into */
  count: number;
  submissions: Submission[];
}

export type TaskState = 'pending' | 'running' | 'done' | 'failed';

/** A task's status file, as the task (or, before it starts, the submitter) writes it. */
export interface TaskStatus {
  /** the part (1-based) or 'merge' */
  task: number | 'merge';
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
}

const statusName = (task: number | 'merge') => (task === 'merge' ? 'merge.json' : `task-${task}.json`);
export const logName = (task: number | 'merge') => (task === 'merge' ? 'merge.log' : `task-${task}.log`);

export async function writeTaskStatus(folder: string, status: TaskStatus): Promise<void> {
  await writeFileAtomic(path.join(folder, statusName(status.task)), JSON.stringify(status, null, 2) + '\n');
}

/** A task's status file, or null when there is none (or it is unreadable: treated as unknown). */
export async function readTaskStatus(folder: string, task: number | 'merge'): Promise<TaskStatus | null> {
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

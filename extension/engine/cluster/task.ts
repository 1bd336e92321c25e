// Inside a Slurm task: the command records its state in the job folder's status file as it
// starts and ends (its shard counts, or why it failed), so the job's state is readable from
// outside. The task's script names the folder; Slurm names the task.
import * as path from 'node:path';
import type { ShardSummary } from '../io/shard-job.js';
import { logName, readTaskStatus, writeTaskStatus, type TaskStatus } from './job-folder.js';

/** The environment variable a task's script sets to its job folder. */
export const TASK_FOLDER_ENV = 'UNICODE2_SLURM_FOLDER';

/** Which task of which job folder this process is, or null outside a job's script. */
export interface TaskPlace {
  folder: string;
  task: number | 'merge';
  job: string;
}

export function taskPlaceOf(env: NodeJS.ProcessEnv): TaskPlace | null {
  const folder = env[TASK_FOLDER_ENV];
  if (!folder) return null;
  const id = env.SLURM_ARRAY_TASK_ID;
  if (id === undefined) return { folder, task: 'merge', job: env.SLURM_JOB_ID ?? '' };
  return { folder, task: Number(id), job: `${env.SLURM_ARRAY_JOB_ID ?? ''}_${id}` };
}

/** Runs a shard job's part, its status file saying running, then done or failed. */
export async function trackTask(place: TaskPlace, shards: number, run: () => Promise<ShardSummary>): Promise<ShardSummary> {
  const base: TaskStatus = { task: place.task, state: 'running', job: place.job, log: path.join(place.folder, logName(place.task)), shards, started: new Date().toISOString() };
  await writeTaskStatus(place.folder, base);
  try {
    const s = await run();
    const counts = { images: s.images, done: s.done, skipped: s.skipped, failed: s.failed };
    await writeTaskStatus(place.folder, { ...base, state: s.failed.length > 0 ? 'failed' : 'done', ...counts, ended: new Date().toISOString() });
    return s;
  } catch (err) {
    const error = (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
    await writeTaskStatus(place.folder, { ...base, state: 'failed', error, ended: new Date().toISOString() });
    throw err;
  }
}

/** Where this process runs as a task of a plan (a build on Slurm): the job folder its script
 *  names and its Slurm job ('12_3' for an array task); null outside a job's script. */
export function planTaskOf(env: NodeJS.ProcessEnv): { folder: string; job: string } | null {
  const folder = env[TASK_FOLDER_ENV];
  if (!folder) return null;
  return { folder, job: env.SLURM_ARRAY_TASK_ID !== undefined ? `${env.SLURM_ARRAY_JOB_ID ?? ''}_${env.SLURM_ARRAY_TASK_ID}` : env.SLURM_JOB_ID ?? '' };
}

/** Runs a plan's task `name`, its status file saying running, then done (with what `ended`
 *  adds: a summary, the output written) or failed with why. */
export async function trackPlanTask<T>(place: { folder: string; job: string }, name: string, run: () => Promise<T>,
                                       ended: (result: T) => Promise<Partial<TaskStatus>> = async () => ({})): Promise<T> {
  // the input files it covers, as the submitter counted them
  const shards = (await readTaskStatus(place.folder, name))?.shards ?? 0;
  const base: TaskStatus = { task: name, state: 'running', job: place.job, log: path.join(place.folder, logName(name)), shards, started: new Date().toISOString() };
  await writeTaskStatus(place.folder, base);
  try {
    const result = await run();
    await writeTaskStatus(place.folder, { ...base, ...(await ended(result)), state: 'done', ended: new Date().toISOString() });
    return result;
  } catch (err) {
    const error = (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
    await writeTaskStatus(place.folder, { ...base, state: 'failed', error, ended: new Date().toISOString() });
    throw err;
  }
}

// A job over shards on Slurm: the plan (N parts, the ones whose outputs are missing), its
// scripts, and the submission (the array job, then the merge step with afterok on it), recorded
// in the job folder. A re-run of the same command plans only the parts still missing, and is
// refused while the folder's jobs are still queued or running.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../../common/errors.js';
import { writeFileAtomic } from '../io/atomic-write.js';
import { completeRecord, shardsOfPart, type JobIdentity } from '../io/shard-job.js';
import type { ShardFile } from '../io/shard-list.js';
import { MAX_SLURM_TASKS } from '../core/limits.js';
import { JOB_FORMAT, jobFolderOf, logName, readJobsFile, submissionJobs, writeJobsFile, writeTaskStatus, type Submission } from './job-folder.js';
import { mergeScript, tasksScript, MERGE_SCRIPT, TASKS_SCRIPT, type Invocation } from './scripts.js';
import { doomedJobs, sbatch, scancel, squeue } from './slurm.js';
import { shellQuote } from './shell.js';

export interface SlurmRequest extends Invocation {
  out: string;
  /** every shard of the job, in order */
  shards: ShardFile[];
  /** what the outputs depend on besides the shard (as the local run records it) */
  identity: JobIdentity;
  /** parts (array tasks); default one per shard */
  tasks?: number;
  /** the user's sbatch options, one word each */
  sbatch: string[];
}

/** One script as it is written and submitted. */
export interface PlannedScript {
  file: string;
  text: string;
  /** sbatch's arguments, the script last ('<array job>' stands for the id not known yet) */
  sbatch: string[];
}

export interface SlurmPlan {
  folder: string;
  /** the number of parts */
  count: number;
  /** the parts whose outputs are missing: the array tasks to submit */
  pending: number[];
  scripts: PlannedScript[];
}

/** Options that would take the job's own places: refused in the user's sbatch options. */
const OWN_OPTIONS = /^(-a|-d|-o|-e|-J|--array|--dependency|--output|--error|--job-name|--parsable|--wrap)(=|$)/;

export function checkSbatchOptions(options: string[]): void {
  const own = options.find((o) => OWN_OPTIONS.test(o));
  if (own) throw new UserError(`the sbatch option ${own} is set by the job itself (array, dependency, logs, name); leave it out`);
}

/** The parts (1..count) with a shard whose complete output is not there. */
async function pendingParts(request: SlurmRequest, count: number): Promise<number[]> {
  const pending: number[] = [];
  for (let index = 1; index <= count; index++) {
    for (const shard of shardsOfPart(request.shards, { index, count })) {
      if (!(await completeRecord(request.out, shard, request.identity))) {
        pending.push(index);
        break;
      }
    }
  }
  return pending;
}

export async function planSlurmJob(request: SlurmRequest): Promise<SlurmPlan> {
  checkSbatchOptions(request.sbatch);
  const wanted = request.tasks ?? request.shards.length;
  if (!(Number.isInteger(wanted) && wanted >= 1)) throw new UserError(`the number of tasks must be a whole number of at least 1, got ${wanted}`);
  const count = Math.min(wanted, request.shards.length, MAX_SLURM_TASKS);
  const folder = path.resolve(jobFolderOf(request.out));
  const pending = await pendingParts(request, count);
  const scripts = [
    { file: path.join(folder, TASKS_SCRIPT), text: tasksScript(request, folder, pending, count), sbatch: [...request.sbatch, TASKS_SCRIPT] },
    { file: path.join(folder, MERGE_SCRIPT), text: mergeScript(request, folder), sbatch: [...request.sbatch, '--dependency=afterok:<array job>', MERGE_SCRIPT] },
  ];
  return { folder, count, pending, scripts };
}

/** The sbatch command line of a planned script, as a user would type it from the job folder. */
export const sbatchLine = (s: PlannedScript): string => ['sbatch', '--parsable', ...s.sbatch].map((w) => (w === '<array job>' ? w : shellQuote(w))).join(' ');

/** Refuses while the folder's last submission is still queued or running; jobs left waiting on
 *  a failed one (their dependency can never be met: doomedJobs) are cancelled instead. */
export async function checkNothingRunning(folder: string): Promise<void> {
  const last = (await readJobsFile(folder))?.submissions.at(-1);
  if (!last) return;
  const jobs = submissionJobs(last);
  const queued = await squeue(jobs);
  const doomed = doomedJobs(jobs, queued);
  await scancel(doomed.map(String));
  if (queued.some((j) => !doomed.includes(j.job))) {
    throw new UserError(`${folder}: its jobs ${jobs.join(', ')} are still queued or running`, {
      cli: `follow them with unicode2 jobs ${shellQuote(last.chain ? folder : path.dirname(folder))}, or cancel them with --cancel there`,
      vscode: "follow them in the Lab, or cancel them from the job's cell",
    });
  }
}

/** Writes the scripts, marks the pending tasks, submits the array and the merge step after it,
 *  and records the submission in jobs.json. */
export async function submitSlurmJob(request: SlurmRequest, plan: SlurmPlan): Promise<Submission> {
  await fs.mkdir(plan.folder, { recursive: true });
  await checkNothingRunning(plan.folder);
  for (const s of plan.scripts) await writeFileAtomic(s.file, s.text);
  // before submitting: a task that starts at once writes its own status over this one
  const shardsOf = (index: number) => shardsOfPart(request.shards, { index, count: plan.count }).length;
  for (const task of plan.pending) {
    await writeTaskStatus(plan.folder, { task, state: 'pending', job: '', log: path.join(plan.folder, logName(task)), shards: shardsOf(task) });
  }
  await writeTaskStatus(plan.folder, { task: 'merge', state: 'pending', job: '', log: path.join(plan.folder, logName('merge')), shards: request.shards.length });
  const array = await sbatch(TASKS_SCRIPT, request.sbatch, plan.folder);
  let merge: number;
  try {
    merge = await sbatch(MERGE_SCRIPT, [...request.sbatch, `--dependency=afterok:${array}`], plan.folder);
  } catch (err) {
    await scancel([String(array)]);
    throw err;
  }
  const submission: Submission = { array, merge, tasks: plan.pending, submitted: new Date().toISOString() };
  const previous = (await readJobsFile(plan.folder))?.submissions ?? [];
  await writeJobsFile(plan.folder, { format: JOB_FORMAT, job: request.job, count: plan.count, submissions: [...previous, submission] });
  return submission;
}

// The Slurm commands a job folder needs, run with an argument list (never through a shell):
// sbatch --parsable, squeue for what is queued or running, scontrol show job for how a job ended
// (no sacct: it needs the accounting daemon, which many clusters and the tests lack), scancel.
import { execFile } from 'node:child_process';
import { UserError } from '../../../common/errors.js';

/** Runs a Slurm client; its stdout. A missing client or a refusal is one line. */
function slurmCommand(command: string, args: string[], cwd?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd, maxBuffer: 64 * 2 ** 20 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return reject(new UserError(`${command}: not found on the PATH (Slurm's client commands are needed to run on a cluster)`));
      const why = stderr.trim().split('\n').pop() || err.message.split('\n')[0];
      reject(new UserError(`${command} failed: ${why}`));
    });
  });
}

/** Submits a batch script from `cwd` (relative paths in its directives are the folder's);
 *  the job id. */
export async function sbatch(script: string, options: string[], cwd: string): Promise<number> {
  const out = (await slurmCommand('sbatch', ['--parsable', ...options, script], cwd)).trim();
  // --parsable prints "id" or "id;cluster"
  const id = Number(out.split(';')[0]);
  if (!Number.isInteger(id) || id <= 0) throw new UserError(`sbatch answered '${out}' where a job id was expected`);
  return id;
}

/** One queued or running job or array task, as squeue lists it. */
export interface QueuedJob {
  /** the job id, or the array's job id for an array task */
  job: number;
  /** the array task id; null for a plain job */
  task: number | null;
  /** PENDING, RUNNING, COMPLETING, ... */
  state: string;
  reason: string;
}

/** This user's queued and running jobs among `jobs` (array tasks one by one). */
export async function squeue(jobs: number[]): Promise<QueuedJob[]> {
  if (jobs.length === 0) return [];
  // --me and a filter here, not --jobs: squeue refuses a list holding one id it has forgotten
  const text = await slurmCommand('squeue', ['--me', '--array', '--noheader', '--format=%F|%K|%T|%r']);
  const wanted = new Set(jobs);
  return text.split('\n').flatMap((line) => {
    const [job, task, state, reason] = line.trim().split('|');
    if (!job || !wanted.has(Number(job))) return [];
    return [{ job: Number(job), task: /^\d+$/.test(task ?? '') ? Number(task) : null, state: state ?? '', reason: reason ?? '' }];
  });
}

/** How a job (or array task: `12_3`) ended, as scontrol remembers it for a while after:
 *  'COMPLETED', 'FAILED', 'CANCELLED', ...; null once it is forgotten. */
export async function endedState(job: string): Promise<string | null> {
  const text = await slurmCommand('scontrol', ['show', 'job', '--oneliner', job]).catch(() => '');
  return /\bJobState=(\S+)/.exec(text)?.[1] ?? null;
}

/** Cancels jobs (or array tasks, `12_3`). */
export async function scancel(jobs: string[]): Promise<void> {
  if (jobs.length > 0) await slurmCommand('scancel', jobs);
}

/** Of the jobs `order` (a submission's, each depending on those before it), the ones that can
 *  never run and are still queued: from the first whose dependency can never be met (a job it
 *  waits on failed) on, once no job before it is queued (a merge waits while array tasks run). */
export function doomedJobs(order: number[], queued: QueuedJob[]): number[] {
  const at = (q: QueuedJob) => order.indexOf(q.job);
  const stuck = queued.filter((q) => /DependencyNeverSatisfied/.test(q.reason)).map(at);
  if (stuck.length === 0) return [];
  const first = Math.min(...stuck);
  if (queued.some((q) => at(q) < first)) return [];
  return [...new Set(queued.map((q) => q.job))];
}

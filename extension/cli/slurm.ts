// `--slurm` on the commands over data-set shards (tokenize, embed): the same command as a Slurm array
// job (task i runs it with `--shard i/N`) and a merge step after it. Prints the scripts
// (--dry-run), or submits and prints the job ids, or (--wait) follows the jobs and prints the
// summary a local run prints, `slurm` filled. `unicode2 jobs DIR` follows a job folder later.
import * as path from 'node:path';
import type { OptionSpec } from './args.js';
import { num, str, type Context } from './command.js';
import { shardResult } from './shards.js';
import { planSlurmJob, readJobsFile, sbatchLine, shellQuote, shellSplit, slurmSummary, submitSlurmJob, taskViews, waitForJobs, UserError, type SlurmPlan, type SlurmRequest, type Submission } from '../engine/index.js';

export const SLURM_OPTIONS: Record<string, OptionSpec> = {
  slurm: { kind: 'flag', help: 'over data-set shards: run on Slurm as an array job (task i runs this command with --shard i/N) and a merge step after it; prints the job ids' },
  wait: { kind: 'flag', help: 'with --slurm: follow the jobs until they end, then print the summary a local run prints' },
  'dry-run': { kind: 'flag', help: 'with --slurm: print the sbatch scripts and submit nothing' },
  sbatch: { kind: 'string', value: 'OPTIONS', optionsValue: true, help: "with --slurm: sbatch options for every job, split as a shell would but never evaluated ('--partition=gpu --gres=gpu:1 --time=04:00:00')" },
  tasks: { kind: 'int', value: 'N', help: 'with --slurm: array tasks (parts of the shard list; default one per shard, at most 1000)' },
  setup: { kind: 'string', value: 'LINE', help: "with --slurm: a shell line run before each task ('module load cuda; source venv/bin/activate')" },
};

/** Options the tasks do not take: the launcher's own, and what the scripts set themselves. */
const NOT_FORWARDED = new Set([...Object.keys(SLURM_OPTIONS), 'shard', 'json', 'quiet', 'help']);

/** Whether --slurm is asked for; the launcher's options are refused without it. */
export function isSlurmRun(ctx: Context): boolean {
  const given = Object.keys(SLURM_OPTIONS).filter((o) => o !== 'slurm' && ctx.args.options[o] !== undefined);
  if (ctx.args.options.slurm !== true) {
    if (given.length > 0) throw new UserError(`--${given[0]} applies to runs on Slurm (--slurm)`);
    return false;
  }
  if (str(ctx.args, 'shard') !== undefined) throw new UserError('--shard and --slurm: on Slurm the job runs every part itself (--tasks sets how many)');
  return true;
}

/** The command as its tasks run it: its options as given, less the launcher's. */
function taskArgv(ctx: Context, command: string): string[] {
  const options = Object.entries(ctx.args.options).filter(([name]) => !NOT_FORWARDED.has(name));
  // --name=value: a value that begins with -- stays the option's
  const words = options.flatMap(([name, value]) => (value === true ? [`--${name}`] : value === undefined || value === false ? [] : [`--${name}=${value}`]));
  return [command, ...words];
}

/** What every job this process submits runs with: this node and CLI, from here, with the
 *  cluster options of --sbatch, --setup and --tasks. */
export function slurmRuntime(ctx: Context): { node: string; cli: string; cwd: string; sbatch: string[]; setup?: string; tasks?: number } {
  const sbatch = str(ctx.args, 'sbatch');
  const setup = str(ctx.args, 'setup');
  const tasks = num(ctx.args, 'tasks');
  return {
    node: process.execPath,
    cli: path.resolve(process.argv[1]!),
    cwd: process.cwd(),
    sbatch: sbatch === undefined ? [] : shellSplit(sbatch, 'the sbatch options'),
    ...(setup !== undefined && { setup }),
    ...(tasks !== undefined && { tasks }),
  };
}

/** The launcher's request for `command` over `run`'s shards, with the job's identity. */
export function slurmRequest(ctx: Context, command: string, run: Pick<SlurmRequest, 'out' | 'shards' | 'identity'>): SlurmRequest {
  return { ...run, job: command, argv: taskArgv(ctx, command), operands: ctx.args.operands, ...slurmRuntime(ctx) };
}

/** What --dry-run prints of the scripts a job folder would get: each with its sbatch line. */
export function scriptsText(folder: string, scripts: readonly Parameters<typeof sbatchLine>[0][]): string {
  return scripts.map((s) => `# ${s.file}\n# submitted from ${folder} as: ${sbatchLine(s)}\n${s.text}`).join('\n');
}

/** --wait: follows the submitted jobs to their end, the tasks ended as progress. */
export async function followSubmission(ctx: Context, sub: Submission, submitted: string): Promise<void> {
  ctx.progress.note(`unicode2: submitted ${submitted}`);
  let reported = -1;
  const onTick = (done: number, total: number) => done !== reported && ctx.progress.report({ phase: 'slurm tasks', done: (reported = done), total });
  await waitForJobs(sub, { signal: ctx.signal, onTick });
}

function dryRun(plan: SlurmPlan): { json: unknown; text: string } {
  const text = scriptsText(plan.folder, plan.scripts);
  const note = plan.pending.length === 0 ? `# nothing to submit: every part's outputs are complete\n` : '';
  return { json: { folder: plan.folder, count: plan.count, tasks: plan.pending, scripts: plan.scripts }, text: note + text };
}

/** Runs `request` on Slurm as the options say: dry run, submit, or submit and wait. */
export async function runOnSlurm(ctx: Context, request: SlurmRequest): Promise<{ json: unknown; text: string; exitCode?: number }> {
  const started = performance.now();
  const plan = await planSlurmJob(request);
  if (ctx.args.options['dry-run'] === true) return dryRun(plan);
  const sub = plan.pending.length > 0 ? await submitSlurmJob(request, plan) : null;
  const follow = `unicode2 jobs ${shellQuote(request.out)}`;
  if (ctx.args.options.wait !== true) {
    const json = { folder: plan.folder, count: plan.count, tasks: sub?.tasks ?? [], jobs: sub ? [sub.array, sub.merge] : [] };
    const text = sub
      ? `submitted ${request.job}: array job ${sub.array} (${sub.tasks.length} of ${plan.count} tasks), merge job ${sub.merge} after it; follow with: ${follow}`
      : `nothing to submit: every part's outputs are complete in ${request.out}`;
    return { json, text };
  }
  if (sub) await followSubmission(ctx, sub, `array job ${sub.array} (${sub.tasks.length} tasks) and merge job ${sub.merge}`);
  const jobs = await readJobsFile(plan.folder);
  const views = jobs ? await taskViews(plan.folder, jobs) : [];
  const summary = await slurmSummary({ ...request, count: plan.count }, sub, views, (performance.now() - started) / 1000);
  return shardResult(summary, request.out);
}

// `unicode2 build --slurm`: a two-level build from embedding files as a chain of Slurm jobs
// (engine/build/build-slurm.ts). Prints the scripts (--dry-run), or submits and prints the job
// ids, or (--wait) follows the jobs and prints the summary a local build prints, `slurm` filled.
// `--stage` is what the chain's tasks run; its last task is the build command itself, which
// finds every stage done. `unicode2 jobs <out>.slurm` follows the job folder later.
import { promises as fs } from 'node:fs';
import type { OptionSpec } from './args.js';
import { str, type Context } from './command.js';
import { followSubmission, scriptsText, slurmRuntime, SLURM_OPTIONS } from './slurm.js';
import {
  buildOnSlurmRequest, buildOnSlurmResult, parseStage, planBuildOnSlurm, planTaskOf, runBuildStage, shellQuote, stageName,
  submitBuildOnSlurm, trackPlanTask, FINAL_TASK, UserError, type BuildRequest, type BuildSlurmPlan, type BuildSummary, type Submission,
} from '../engine/index.js';

type Result = { json: unknown; text: string; exitCode?: number };

export const BUILD_SLURM_OPTIONS: Record<string, OptionSpec> = {
  ...SLURM_OPTIONS,
  slurm: { kind: 'flag', help: 'two-level from --embeddings: run the plan on Slurm as a chain of jobs (coarse, partition, cells, each refinement pass\'s map and reduce, the final write), each after the one before; prints the job ids' },
  tasks: { kind: 'int', value: 'N', help: 'with --slurm: array tasks per parallel stage (default one per input .npy file, at most 1000)' },
  stage: { kind: 'string', value: 'STAGE', help: "one task of the two-level plan, in <out>.checkpoint/ (what --slurm's jobs run): coarse, partition:I/N, cells:I/N, map:P:I/N, reduce:P" },
};

/** The array tasks of a submission (partition, cells, maps): what `slurm.tasks` counts. */
const arrayTasks = (sub: Submission | null) => (sub?.chain ?? []).reduce((n, c) => n + (c.array ? c.tasks.length : 0), 0);

function dryRun(plan: BuildSlurmPlan): Result {
  const text = scriptsText(plan.folder, plan.stages);
  const note = plan.stages.length === 0 ? `# nothing to submit: the codebook is written already\n` : '';
  return { json: { folder: plan.folder, stages: plan.stages }, text: note + text };
}

/** `build ... --slurm`: the plan's missing tasks as a chain of jobs, as the options say. */
export async function buildOnSlurm(ctx: Context, req: BuildRequest, show: (s: BuildSummary) => Result): Promise<Result> {
  const started = performance.now();
  if (str(ctx.args, 'stage') !== undefined) throw new UserError('--stage and --slurm: on Slurm the jobs run every stage themselves');
  const device = str(ctx.args, 'device');
  const request = buildOnSlurmRequest(req, { ...slurmRuntime(ctx), ...(device !== undefined && { device }) });
  const plan = await planBuildOnSlurm(request, await ctx.backend());
  if (ctx.args.options['dry-run'] === true) return dryRun(plan);
  const sub = await submitBuildOnSlurm(request, plan);
  const jobs = sub?.chain?.map((c) => c.job) ?? [];
  if (ctx.args.options.wait !== true) {
    const follow = `unicode2 jobs ${shellQuote(plan.folder)}`;
    const text = sub
      ? `submitted build: jobs ${sub.chain!.map((c) => `${c.stage} ${c.job}`).join(', ')}, each after the one before; follow with: ${follow}`
      : `nothing to submit: ${req.out} is written already`;
    return { json: { folder: plan.folder, jobs, tasks: sub?.chain?.flatMap((c) => c.tasks) ?? [] }, text };
  }
  if (sub) await followSubmission(ctx, sub, `jobs ${jobs.join(', ')}`);
  const { summary, failed } = await buildOnSlurmResult(plan.folder);
  const slurm = { jobs, tasks: arrayTasks(sub) };
  if (summary) {
    const shown = show({ ...summary, seconds: (performance.now() - started) / 1000 });
    return { json: { ...(shown.json as object), slurm }, text: `${shown.text}\non Slurm: jobs ${jobs.join(', ') || 'none (written already)'}, ${slurm.tasks} array tasks` };
  }
  const lines = failed.map((f) => [`  ${f.task} (job ${f.job}): ${f.error ?? 'failed'}; log: ${f.log}`, ...(f.tail ? f.tail.split('\n').map((l) => `    | ${l}`) : [])].join('\n'));
  return {
    json: { out: req.out, failed: failed.map((f) => ({ task: f.task, job: f.job, error: f.error ?? 'failed', log: f.log })), slurm },
    text: `the build on Slurm did not finish; ${req.out} is not written\n${lines.join('\n') || '  (no task says why: see unicode2 jobs)'}`,
    exitCode: 2,
  };
}

/** `build ... --stage S`: one task of the plan, its status file following it inside a job. */
export async function runStageTask(ctx: Context, req: BuildRequest, text: string): Promise<Result> {
  const stage = parseStage(text);
  const backend = await ctx.backend();
  const run = () => runBuildStage(req, stage, backend, { signal: ctx.signal, onProgress: (e) => ctx.progress.report(e) });
  const place = planTaskOf(process.env);
  await (place ? trackPlanTask(place, stageName(stage), run) : run());
  return { json: { stage: text, out: req.out }, text: `stage ${text} of the build of ${req.out} done` };
}

/** The build itself; inside a job, the plan's last task: its status file gets the summary and
 *  the output written (how a re-run knows there is nothing left to do). */
export async function asFinalTask(run: () => Promise<BuildSummary>): Promise<BuildSummary> {
  const place = planTaskOf(process.env);
  if (!place) return run();
  return trackPlanTask(place, FINAL_TASK, run, async (summary) => {
    const { size, mtimeMs } = await fs.stat(summary.out);
    return { summary, output: { size, mtimeMs } };
  });
}

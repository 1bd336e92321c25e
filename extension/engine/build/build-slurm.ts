// A two-level build on Slurm: its plan's stages (twolevel.ts) as a chain of sbatch jobs, each
// with afterok on the one before: the coarse level (one job), the partition (an array job: task i
// of N takes input files i, i+N, ...), the cells' k-means (an array job over ranges of cells),
// each refinement pass's map (an array job over the input files) and reduce (one job), then the
// build itself (one job: it finds every stage done, calibrates nprobe and writes the codebook,
// as the same command run here would). The tasks run the same command with `--stage`, so they
// share the one checkpoint folder (`<out>.checkpoint/`, on the shared filesystem) and give the
// codebook a local build gives. The job folder is `<out>.slurm/` beside the codebook. A re-run of
// the same command submits only the tasks whose outputs are missing.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { ComputeBackend } from '../../../native-gpu/backend.js';
import { UserError } from '../../../common/errors.js';
import { writeFileAtomic } from '../io/atomic-write.js';
import { MAX_SLURM_TASKS } from '../core/limits.js';
import { JOB_FORMAT, logName, readJobsFile, readTaskStatus, writeJobsFile, writeTaskStatus, type ChainJob, type Submission } from '../cluster/job-folder.js';
import { arrayRanges, jobScript, type Invocation } from '../cluster/scripts.js';
import { checkNothingRunning, checkSbatchOptions } from '../cluster/submit.js';
import { taskViews, type TaskView } from '../cluster/follow.js';
import { sbatch, scancel } from '../cluster/slurm.js';
import { checkpointFolder, defaultMemoryMB, twoLevelBuildInput, type BuildRequest, type BuildSummary } from './build.js';
import { cellRange, stageName, twoLevelDone, twoLevelKey, type TwoLevelDone, type TwoLevelStage } from './twolevel.js';

/** A build to run on Slurm: the request, and how its tasks run the CLI again (`argv`: the build
 *  command and its options as the tasks take them, --memory fixed: every task must plan alike). */
export interface BuildOnSlurm extends Omit<Invocation, 'job' | 'operands'> {
  build: BuildRequest;
  /** array tasks per parallel stage; default one per input file */
  tasks?: number;
  /** the user's sbatch options, one word each */
  sbatch: string[];
}

/** How the tasks run the CLI (the extension's own node and CLI script, its settings). */
export interface SlurmRuntime {
  node: string;
  cli: string;
  /** the directory the tasks run in (the paths below are made absolute anyway) */
  cwd: string;
  setup?: string;
  tasks?: number;
  sbatch: string[];
  /** the compute device the tasks ask for (the CLI's --device), when not the default */
  device?: string;
}

/** A build request as a run on Slurm: the `build` command line its tasks run, with every path
 *  absolute and --memory fixed (the extension's Run on Slurm; the CLI forwards its own options). */
export function buildOnSlurmRequest(req: BuildRequest, runtime: SlurmRuntime): BuildOnSlurm {
  const build = { ...req, embeddings: req.embeddings && path.resolve(runtime.cwd, req.embeddings), out: path.resolve(runtime.cwd, req.out), memoryMB: req.memoryMB ?? defaultMemoryMB() };
  const options: [string, string | number | undefined][] = [
    ['embeddings', build.embeddings], ['encoder', req.encoder], ['precision', req.encoderOptions?.precision], ['layer', req.encoderOptions?.layer],
    ['k', req.k], ['iters', req.iterations], ['lambda', req.lambda], ['seed', req.seed], ['sample', req.sample], ['tolerance', req.tolerance],
    ['method', req.method], ['coarse', req.coarse], ['refine', req.refine], ['nprobe', req.nprobe], ['memory', build.memoryMB], ['dtype', req.dtype],
    ['out', build.out], ['device', runtime.device],
  ];
  const argv = ['build', ...options.flatMap(([name, value]) => (value === undefined ? [] : [`--${name}=${value}`]))];
  const { tasks, setup } = runtime;
  return { build, argv, node: runtime.node, cli: runtime.cli, cwd: runtime.cwd, sbatch: runtime.sbatch, ...(setup !== undefined && { setup }), ...(tasks !== undefined && { tasks }) };
}

/** One job of the chain as it is written and submitted. */
export interface PlannedStage {
  /** 'coarse', 'partition', 'cells', 'map-1', 'reduce-1', 'final' */
  stage: string;
  /** the array task ids to submit; null for a single job */
  array: number[] | null;
  /** the parts the stage is split into (the array's N) */
  parts: number;
  /** its tasks by name (their status and log files) */
  tasks: string[];
  file: string;
  text: string;
  /** sbatch's arguments, the script last ('<previous job>' stands for the id not known yet) */
  sbatch: string[];
}

export interface BuildSlurmPlan {
  folder: string;
  /** the stages with missing outputs, in order; empty when the codebook is written already */
  stages: PlannedStage[];
  /** what the work is keyed by (arguments and input), recorded in jobs.json */
  key: string;
  /** the input files (the groups of the plan) */
  files: number;
}

export const FINAL_TASK = 'final';

/** A build's job folder: beside its output. */
export const buildJobFolder = (out: string): string => `${path.resolve(out)}.slurm`;

/** Part i of n of `count` things taken round-robin (the input files a partition or map takes). */
const roundRobin = (count: number, part: number, parts: number) => Array.from({ length: count }, (_, g) => g).filter((g) => g % parts === part - 1);
const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

/** The plan's stages with the parts whose outputs are missing: [stage, part count, pending parts]. */
function pendingStages(done: TwoLevelDone, refine: number, cells: number, wanted: number): { stage: TwoLevelStage['stage'] | 'final'; pass?: number; parts: number; pending: number[] | null }[] {
  const groups = done.groups.length;
  const gp = Math.min(wanted, groups, MAX_SLURM_TASKS);
  const cp = Math.min(wanted, cells, MAX_SLURM_TASKS);
  const stages: ReturnType<typeof pendingStages> = [];
  if (!done.coarse) stages.push({ stage: 'coarse', parts: 1, pending: null });
  const partition = upTo(gp).filter((i) => roundRobin(groups, i, gp).some((g) => !done.groups[g]));
  if (partition.length > 0) stages.push({ stage: 'partition', parts: gp, pending: partition });
  if (done.level < 0) {
    const cellsDone = done.cells;
    const pending = upTo(cp).filter((i) => { const { lo, hi } = cellRange(cells, i, cp); return !cellsDone || cellsDone.slice(lo, hi).includes(false); });
    if (pending.length > 0) stages.push({ stage: 'cells', parts: cp, pending });
  }
  for (let pass = Math.max(1, done.level + 1); pass <= refine; pass++) {
    const maps = upTo(gp).filter((i) => pass !== done.level + 1 || roundRobin(groups, i, gp).some((g) => !done.maps[g]));
    if (maps.length > 0) stages.push({ stage: 'map', pass, parts: gp, pending: maps });
    stages.push({ stage: 'reduce', pass, parts: 1, pending: null });
  }
  stages.push({ stage: 'final', parts: 1, pending: null });
  return stages;
}

/** The task a stage's part is, as its command line names it. */
function stageOf(stage: TwoLevelStage['stage'], pass: number | undefined, part: number | string, parts: number): string {
  if (stage === 'coarse') return 'coarse';
  if (stage === 'reduce') return `reduce:${pass}`;
  return stage === 'map' ? `map:${pass}:${part}/${parts}` : `${stage}:${part}/${parts}`;
}

/** Whether the folder's last run wrote the codebook of this key, and it is there unchanged. */
async function finalDone(folder: string, key: string, out: string): Promise<boolean> {
  const jobs = await readJobsFile(folder);
  const status = await readTaskStatus(folder, FINAL_TASK);
  if (jobs?.key !== key || status?.state !== 'done' || !status.output) return false;
  const stat = await fs.stat(out).catch(() => null);
  return stat !== null && stat.size === status.output.size && stat.mtimeMs === status.output.mtimeMs;
}

export async function planBuildOnSlurm(request: BuildOnSlurm, backend: ComputeBackend): Promise<BuildSlurmPlan> {
  checkSbatchOptions(request.sbatch);
  const { build } = request;
  const { source, subset, options } = await twoLevelBuildInput(build, backend);
  const key = createHash('sha256').update(JSON.stringify(twoLevelKey(source, subset, options, backend.device))).digest('hex').slice(0, 16);
  const folder = buildJobFolder(build.out);
  const files = source.files?.length ?? 1;
  if (await finalDone(folder, key, build.out)) return { folder, stages: [], key, files };
  const wanted = request.tasks ?? files;
  if (!(Number.isInteger(wanted) && wanted >= 1)) throw new UserError(`the number of tasks must be a whole number of at least 1, got ${wanted}`);
  const done = await twoLevelDone(source, subset, options, backend.device, checkpointFolder(build.out));
  const run: Invocation = { ...request, job: 'build', operands: [] };
  const stages = pendingStages(done, options.refine, options.coarse, wanted).map(({ stage, pass, parts, pending }): PlannedStage => {
    const name = stage === 'map' || stage === 'reduce' ? `${stage}-${pass}` : stage;
    const file = `${name}.sbatch`;
    const comment = `unicode2 build on Slurm, stage ${name}${pending ? ` (task i of ${parts}, i = $SLURM_ARRAY_TASK_ID)` : ''}`;
    const directives = [`--job-name=unicode2-build-${name}`, ...(pending ? [`--array=${arrayRanges(pending)}`, `--output=${name}-%a.log`] : [`--output=${logName(name)}`])];
    const command = stage === 'final' ? '' : ` --stage=${stageOf(stage, pass, pending ? '"$SLURM_ARRAY_TASK_ID"' : 1, parts)}`;
    const tasks = pending ? pending.map((i) => stageName(stage === 'map' ? { stage, pass: pass!, part: i, parts } : { stage: stage as 'partition', part: i, parts })) : [stage === 'final' ? FINAL_TASK : stageName(stage === 'coarse' ? { stage } : { stage: 'reduce', pass: pass! })];
    return { stage: name, array: pending, parts, tasks, file: path.join(folder, file), text: jobScript(run, folder, directives, comment, command), sbatch: [...request.sbatch, file] };
  });
  return { folder, stages: stages.map((s, i) => (i === 0 ? s : { ...s, sbatch: [...request.sbatch, '--dependency=afterok:<previous job>', path.basename(s.file)] })), key, files };
}

/** Input files a task covers, for its status (`shards`): a partition's or map's own, else all. */
const filesOf = (stage: PlannedStage, index: number, files: number): number =>
  stage.array && /^(partition|map-)/.test(stage.stage) ? roundRobin(files, stage.array[index]!, stage.parts).length : files;

/** Writes the scripts, marks every task pending, submits the chain (each job with afterok on the
 *  one before) and records the submission in jobs.json; null when nothing is missing. */
export async function submitBuildOnSlurm(request: BuildOnSlurm, plan: BuildSlurmPlan): Promise<Submission | null> {
  if (plan.stages.length === 0) return null;
  await fs.mkdir(plan.folder, { recursive: true });
  await checkNothingRunning(plan.folder);
  for (const s of plan.stages) {
    await writeFileAtomic(s.file, s.text);
    // before submitting: a task that starts at once writes its own status over this one
    for (const [i, task] of s.tasks.entries()) await writeTaskStatus(plan.folder, { task, state: 'pending', job: '', log: path.join(plan.folder, logName(task)), shards: filesOf(s, i, plan.files) });
  }
  const chain: ChainJob[] = [];
  try {
    for (const s of plan.stages) {
      const after = chain.at(-1);
      const job = await sbatch(path.basename(s.file), [...request.sbatch, ...(after ? [`--dependency=afterok:${after.job}`] : [])], plan.folder);
      chain.push({ stage: s.stage, job, array: s.array, tasks: s.tasks });
    }
  } catch (err) {
    await scancel(chain.map((c) => String(c.job)));
    throw err;
  }
  const submission: Submission = { array: chain[0]!.job, merge: chain.at(-1)!.job, tasks: [], submitted: new Date().toISOString(), chain };
  const previous = (await readJobsFile(plan.folder))?.submissions ?? [];
  const count = chain.reduce((n, c) => n + c.tasks.length, 0);
  await writeJobsFile(plan.folder, { format: JOB_FORMAT, job: 'build', key: plan.key, count, submissions: [...previous, submission] });
  return submission;
}

/** What a build on Slurm ended with: the summary its last task wrote (null when it did not
 *  finish) and the tasks that failed, each with its log's last lines. */
export async function buildOnSlurmResult(folder: string): Promise<{ summary: BuildSummary | null; failed: TaskView[] }> {
  const jobs = await readJobsFile(folder);
  const views = jobs ? await taskViews(folder, jobs) : [];
  const final = await readTaskStatus(folder, FINAL_TASK);
  return { summary: final?.state === 'done' ? (final.summary as BuildSummary) : null, failed: views.filter((v) => v.state === 'failed') };
}


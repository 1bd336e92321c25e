// Build Codebook from a folder of embedding files (.npy, as `unicode2 embed` writes them) on
// Slurm: the chain of jobs `build --embeddings DIR --method two-level --slurm` submits (coarse,
// partition, cells, each refinement pass's map and reduce, the final write), with the
// unicode2.slurm.* settings. Its Lab cell follows the tasks; a reloaded window re-attaches.
import { promises as fs } from 'node:fs';
import { buildOnSlurmResult, planBuildOnSlurm, submitBuildOnSlurm, UserError, type BuildSummary } from '../engine/index.js';
import type { LabCell } from '../../common/protocol/lab.js';
import type { Studio } from '../state/studio.js';
import type { JobContext } from '../state/jobs.js';
import { readSettings } from '../state/config.js';
import { buildSlurmRequest, type BuildFromEmbeddingsOnSlurm } from '../state/slurm-jobs.js';
import { pct } from './command.js';
import { askWhere, cliBundle, followInCell } from './slurm-run.js';

/** Whether a folder holds embedding files (.npy): it is built from them, not from images. */
export async function holdsEmbeddings(folder: string): Promise<boolean> {
  const entries = await fs.readdir(folder, { withFileTypes: true }).catch(() => []);
  return entries.some((e) => e.isFile() && e.name.toLowerCase().endsWith('.npy'));
}

/** Here or on Slurm (asked only when sbatch is on the PATH); undefined when dismissed. */
export const askWhereBuild = (): Promise<boolean | undefined> =>
  askWhere('build from embedding files', 'a two-level build as a chain of jobs, one task per file and stage');

/** A build's figures as its cell shows them, here or on Slurm. */
export function buildMetrics(summary: BuildSummary): Record<string, string | number> {
  return {
    K: summary.k, d: summary.d, method: summary.method, iterations: summary.iterations, MSE: summary.mse.toPrecision(4), utilization: pct(summary.utilization),
    perplexity: Math.round(summary.perplexity), dead: summary.dead, 'training vectors': summary.vectors, seconds: summary.seconds.toFixed(1), device: summary.device,
    ...(summary.calibration && { nprobe: summary.calibration.nprobe }),
  };
}

/** Submits the build's plan and follows it in the cell. */
export async function buildOnSlurm(studio: Studio, ctx: JobContext, run: { folder: string; out: string; params: BuildFromEmbeddingsOnSlurm['params'] }) {
  const request = buildSlurmRequest({ embeddings: run.folder, out: run.out, params: run.params, settings: readSettings().slurm, cli: cliBundle(studio) });
  const plan = await planBuildOnSlurm(request, await studio.backend.get());
  const sub = await submitBuildOnSlurm(request, plan);
  if (sub) studio.log.appendLine(`[build] submitted jobs ${sub.chain?.map((c) => `${c.stage} ${c.job}`).join(', ')} from ${plan.folder}`);
  return finish(studio, ctx, plan.folder, run.out, sub !== null);
}

/** The build's outcome once its jobs end: the codebook its last task wrote, or the tasks that failed. */
async function finish(studio: Studio, ctx: JobContext, folder: string, out: string, submitted: boolean) {
  const seconds = submitted ? (await followInCell(studio, ctx, folder)).seconds : 0;
  const { summary, failed } = await buildOnSlurmResult(folder);
  if (!summary) {
    const why = failed.map((f) => `${f.task} (job ${f.job}): ${f.error ?? 'failed'}`).join('; ');
    throw new UserError(`the build on Slurm did not finish, and ${out} is not written: ${why || 'no task says why'}`, {
      cli: `see unicode2 jobs ${folder}`,
      vscode: "open the failed tasks' logs in the Lab cell",
    });
  }
  studio.setActiveCodebook(out);
  return { metrics: buildMetrics({ ...summary, seconds: submitted ? seconds : summary.seconds }), files: [out], ...(summary.warning && { warning: summary.warning }) };
}

/** Re-attaches a reloaded window to a cell's build on Slurm: follows its job folder again. */
export async function reattach(studio: Studio, cell: LabCell): Promise<void> {
  const folder = cell.slurm!.folder;
  const out = cell.inputs.output;
  if (!out) throw new UserError(`this Lab cell does not record its output; its jobs on Slurm are in ${folder}`);
  await studio.jobs.run({ kind: 'build', title: cell.title, inputs: cell.inputs, params: cell.params, ...(cell.replay && { replay: cell.replay }), resume: cell.id }, (ctx) => finish(studio, ctx, folder, out, true));
}

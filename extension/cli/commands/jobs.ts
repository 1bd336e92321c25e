// `unicode2 jobs DIR`: the state of a job folder a `--slurm` run left in its output folder DIR
// (DIR/.slurm; a build's beside its codebook, CB.slurm, named by the codebook or itself): each
// task pending, running, done or failed, a failed task with its log's last lines; `--cancel`
// cancels its jobs still queued or running (scancel).
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { COMMON, type Command } from '../command.js';
import { buildJobFolder, cancelJobs, jobFolderOf, readJobsFile, taskViews, UserError, type JobsFile, type TaskView } from '../../engine/index.js';

/** The job folder of an output folder, of a build's codebook (`<out>.slurm` beside it), or the
 *  job folder itself. */
function folderOf(dir: string): string {
  if (path.basename(path.resolve(dir)) === path.basename(jobFolderOf('.')) || dir.endsWith('.slurm')) return dir;
  return existsSync(buildJobFolder(dir)) ? buildJobFolder(dir) : jobFolderOf(dir);
}

function taskLine(view: TaskView, count: number): string {
  const name = typeof view.task === 'string' ? view.task : `task ${view.task}/${count}`;
  const counts = view.done !== undefined ? `, ${view.done} done, ${view.skipped ?? 0} skipped, ${view.failed?.length ?? 0} failed, ${view.images ?? 0} images` : '';
  const times = view.started ? `  ${view.started}${view.ended ? ` .. ${view.ended}` : ''}` : '';
  const lines = [`  ${name.padEnd(12)} ${view.state.padEnd(8)} ${view.job || '-'}  ${view.shards} ${typeof view.task === 'string' && view.task !== 'merge' ? 'input files' : 'shards'}${counts}${times}`];
  if (view.error) lines.push(`      ${view.error}`);
  for (const f of view.failed ?? []) lines.push(`      failed: ${f.shard}: ${f.error}`);
  if (view.tail) lines.push(`      log ${view.log}:`, ...view.tail.split('\n').map((l) => `      | ${l}`));
  return lines.join('\n');
}

function report(folder: string, jobs: JobsFile, views: TaskView[]): string {
  const last = jobs.submissions.at(-1)!;
  const states = (['pending', 'running', 'done', 'failed'] as const).map((s) => `${views.filter((v) => v.task !== 'merge' && v.state === s).length} ${s}`);
  const submitted = last.chain ? `jobs ${last.chain.map((c) => `${c.stage} ${c.job}`).join(', ')}` : `array job ${last.array}, merge job ${last.merge}`;
  return [
    `${jobs.job} on Slurm in ${folder}: ${jobs.count} tasks (${states.join(', ')}); last submitted ${last.submitted}: ${submitted}`,
    ...views.map((v) => taskLine(v, jobs.count)),
  ].join('\n');
}

export const jobs: Command = {
  spec: {
    name: 'jobs',
    summary: 'The state of a Slurm job folder (a --slurm run\'s DIR/.slurm, or a build\'s OUT.slurm): each task, a failed one with its log; --cancel.',
    operands: { name: 'DIR', min: 1, max: 1 },
    options: {
      cancel: { kind: 'flag', help: "cancel the folder's jobs still queued or running (scancel)" },
      ...COMMON,
    },
  },
  async run(ctx) {
    const folder = path.resolve(folderOf(ctx.args.operands[0]!));
    const list = await readJobsFile(folder);
    if (!list) throw new UserError(`${folder}: no jobs were submitted from this folder (no jobs.json)`);
    if (ctx.args.options.cancel === true) {
      const cancelled = await cancelJobs(folder);
      return { json: { folder, cancelled }, text: cancelled.length > 0 ? `cancelled jobs ${cancelled.join(', ')}` : 'nothing to cancel: no job of this folder is queued or running' };
    }
    const views = await taskViews(folder, list);
    return { json: { folder, job: list.job, count: list.count, submissions: list.submissions, tasks: views }, text: report(folder, list, views) };
  },
};

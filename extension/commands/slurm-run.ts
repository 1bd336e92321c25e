// What the commands that offer "Run on Slurm" share (Tokenize Folder over shards, Build from a
// folder of embeddings): the question (asked only when sbatch is on the PATH), the mark a cell's
// run on Slurm carries (its re-run submits again), the CLI the tasks run, and following a job
// folder in the run's Lab cell (the tasks' states; Cancel runs scancel).
import * as vscode from 'vscode';
import * as path from 'node:path';
import type { LabCell } from '../../common/protocol/lab.js';
import type { Studio } from '../state/studio.js';
import type { JobContext } from '../state/jobs.js';
import { followJobFolder, slurmOnPath, type Followed } from '../state/slurm-jobs.js';

/** The param that marks a cell's run as one on Slurm. */
export const ON_SLURM = { on: 'Slurm' };

export const ranOnSlurm = (cell: LabCell): boolean => cell.params.on === ON_SLURM.on;

/** Here or on Slurm: false without asking when sbatch is not on the PATH; undefined when the
 *  question is dismissed. `what`: the job on Slurm, for the choice's description. */
export async function askWhere(title: string, what: string): Promise<boolean | undefined> {
  if (!slurmOnPath()) return false;
  const items = [
    { label: '$(server-process) Run on Slurm', slurm: true, description: `${what} (settings: unicode2.slurm.*)` },
    { label: '$(play) Run here', slurm: false, description: 'in this window' },
  ];
  const item = await vscode.window.showQuickPick(items, { title: `UniCode²: ${title}`, ignoreFocusOut: true });
  return item?.slurm;
}

/** The CLI the tasks run: the extension's own bundle. */
export const cliBundle = (studio: Studio): string => path.join(studio.extensionUri.fsPath, 'dist', 'cli.js');

/** Follows a job folder in the run's cell until its jobs end: each view of the tasks goes into the
 *  cell (kept with the workspace: a reloaded window re-attaches from it), the tasks ended into
 *  the progress. Resolves to the tasks' final views and the seconds since the cell started. */
export async function followInCell(studio: Studio, ctx: JobContext, folder: string): Promise<Followed & { seconds: number }> {
  const startedAt = Date.parse(studio.lab.get(ctx.cell)?.startedAt ?? '');
  const followed = await followJobFolder(folder, {
    signal: ctx.signal,
    onView: (slurm) => studio.lab.update(ctx.cell, { slurm }),
    onTick: (ended, total) => ctx.progress({ phase: 'slurm tasks', done: ended, total }),
  });
  return { ...followed, seconds: Number.isFinite(startedAt) ? (Date.now() - startedAt) / 1000 : 0 };
}

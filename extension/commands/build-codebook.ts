// "UniCode²: Build Codebook from Folder…": images -> a new codebook, named when it is built
// (`<workspace>/.unicode2/codebooks/<name>.safetensors`; a build never replaces a codebook), with
// the build settings of today (recorded in the cell, so a re-run builds the same way).
import * as vscode from 'vscode';
import * as path from 'node:path';
import { buildCodebook, listImages, UserError, type BuildMethod } from '../engine/index.js';
import type { LabCell } from '../../common/protocol/lab.js';
import type { Studio } from '../state/studio.js';
import { readSettings, workspaceDataDir } from '../state/config.js';
import { CODEBOOKS_FOLDER, codebookName, codebooksDir, nameProblem, newCodebookFile, suggestedName, uniqueName } from '../state/codebook-names.js';
import { showCodebook } from '../panels/codebook-panel.js';
import { pct, Recorded, thumbnails } from './command.js';
import { pick } from './prompts.js';

export const id = 'unicode2.buildCodebook';

export interface BuildRun {
  folder: string;
  out: string;
  params: { k: number; lambda: number; iterations: number; tolerance: number; seed: number; encoder: string; method: BuildMethod };
}

/** `<workspace>/.unicode2/codebooks`, or a UserError without a workspace. */
function codebooksFolder(): string {
  const dataDir = workspaceDataDir();
  if (!dataDir) throw new UserError('open a folder first: codebooks are written to <folder>/.unicode2/codebooks');
  return codebooksDir(dataDir);
}

export async function prompt(studio: Studio, folder?: string): Promise<void> {
  folder ??= await pick('folder', 'Build a codebook from the images in…');
  if (!folder) return;
  const dir = codebooksFolder();
  const s = readSettings();
  const params = { k: s.k, lambda: s.lambda, iterations: s.iterations, tolerance: s.tolerance, seed: s.seed, encoder: s.encoder, method: s.method };
  const name = await vscode.window.showInputBox({
    title: `UniCode²: name the codebook built from ${path.basename(folder)}`,
    prompt: `K = ${s.k}, encoder ${s.encoder}, method ${s.method}. Written to .unicode2/codebooks/<name>.safetensors; an existing codebook is never replaced.`,
    value: uniqueName(dir, suggestedName(params)),
    validateInput: (value) => nameProblem(dir, value),
    ignoreFocusOut: true,
  });
  if (!name) return;
  await run(studio, { folder, out: newCodebookFile(dir, name), params });
}

export async function run(studio: Studio, { folder, out, params }: BuildRun): Promise<void> {
  const result = await studio.jobs.run(
    {
      kind: 'build', title: `Build codebook ${codebookName(out)} (K = ${params.k}) from ${path.basename(folder)}`, inputs: { folder, output: out }, params,
      cancelledMessage: `UniCode²: build of ${codebookName(out)} cancelled — nothing written`,
      // no `output`: buildCodebook takes the output's lock itself
    },
    async ({ signal, progress }) => {
      const backend = await studio.backend.get();
      // a model named by Hugging Face id and not in the cache downloads within the job (its bytes, its Cancel)
      const summary = await buildCodebook({ images: folder, out, ...params, encoderOptions: { download: { signal, onProgress: progress } } }, backend, { signal, onProgress: progress });
      studio.setActiveCodebook(out);
      if (summary.skipped.length) studio.log.appendLine(`[build] skipped ${summary.skipped.map((x) => `${x.path}: ${x.reason}`).join('; ')}`);
      return {
        metrics: {
          K: summary.k, d: summary.d, method: summary.method, iterations: summary.iterations, MSE: summary.mse.toPrecision(4), utilization: pct(summary.utilization),
          perplexity: Math.round(summary.perplexity), dead: summary.dead, 'training vectors': summary.vectors, seconds: summary.seconds.toFixed(1), device: summary.device,
          ...(summary.calibration && { nprobe: summary.calibration.nprobe }),
        },
        thumbnails: await thumbnails(studio, await listImages(folder)),
        files: [out],
        ...(summary.warning && { warning: summary.warning }),
      };
    },
  );
  if (!result) return;
  await showCodebook(out);
  if (result.warning) void vscode.window.showWarningMessage(`UniCode²: built ${codebookName(out)}, but ${result.warning}`);
}

/** Builds the cell's build again into a codebook of its own, named after the cell's (`<name>-2`,
 *  …): the codebook the cell made, and what was made with it, stay as they are. */
export function rerun(studio: Studio, cell: LabCell): Promise<void> {
  const r = new Recorded(cell);
  const recorded = r.input('output');
  // a cell of an earlier version built into .unicode2/codebook.safetensors: its re-run joins the others
  const dir = path.basename(path.dirname(recorded)) === CODEBOOKS_FOLDER ? path.dirname(recorded) : codebooksDir(path.dirname(recorded));
  return run(studio, {
    folder: r.input('folder'), out: newCodebookFile(dir, uniqueName(dir, codebookName(recorded).replace(/-\d+$/, ''))),
    params: {
      k: r.number('k'), lambda: r.number('lambda'), iterations: r.number('iterations'), tolerance: r.number('tolerance'), seed: r.number('seed'),
      encoder: r.text('encoder'), method: r.oneOf('method', ['auto', 'flat', 'two-level'] as const),
    },
  });
}

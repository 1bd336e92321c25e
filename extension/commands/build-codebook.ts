// "UniCode²: Build Codebook from Folder…": images -> a new codebook, named when it is built
// (`<workspace>/.unicode2/codebooks/<name>.safetensors`; a build never replaces a codebook), with
// the build settings of today (recorded in the cell, so a re-run builds the same way). A folder of
// embedding files (.npy) is built from them, here or on Slurm (build-on-slurm.ts).
import * as vscode from 'vscode';
import * as path from 'node:path';
import { buildCodebook, listImages, PRECISIONS, UserError, type BuildMethod, type Precision } from '../engine/index.js';
import type { LabCell } from '../../common/protocol/lab.js';
import type { Studio } from '../state/studio.js';
import { encoderSettings, readSettings, workspaceDataDir } from '../state/config.js';
import { CODEBOOKS_FOLDER, codebookName, codebooksDir, nameProblem, newCodebookFile, suggestedName, uniqueName } from '../state/codebook-names.js';
import { showCodebook } from '../panels/codebook-panel.js';
import { Recorded, thumbnails } from './command.js';
import { pick } from './prompts.js';
import { askWhereBuild, buildMetrics, buildOnSlurm, holdsEmbeddings } from './build-on-slurm.js';
import { ON_SLURM, ranOnSlurm } from './slurm-run.js';

export { reattach } from './build-on-slurm.js';

export const id = 'unicode2.buildCodebook';

export interface BuildRun {
  folder: string;
  out: string;
  /** precision and layer: a model's (unicode2.encoderPrecision, unicode2.encoderLayer), when not its defaults */
  params: { k: number; lambda: number; iterations: number; tolerance: number; seed: number; encoder: string; method: BuildMethod; precision?: Precision; layer?: number };
  /** from a folder of embedding files: run the two-level plan on Slurm instead of here */
  slurm?: boolean;
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
  const params = { k: s.k, lambda: s.lambda, iterations: s.iterations, tolerance: s.tolerance, seed: s.seed, encoder: s.encoder, method: s.method, ...encoderSettings(s.encoder, s) };
  const name = await vscode.window.showInputBox({
    title: `UniCode²: name the codebook built from ${path.basename(folder)}`,
    prompt: `K = ${s.k}, encoder ${s.encoder}, method ${s.method}. Written to .unicode2/codebooks/<name>.safetensors; an existing codebook is never replaced.`,
    value: uniqueName(dir, suggestedName(params)),
    validateInput: (value) => nameProblem(dir, value),
    ignoreFocusOut: true,
  });
  if (!name) return;
  const slurm = (await holdsEmbeddings(folder)) ? await askWhereBuild() : false;
  if (slurm === undefined) return;
  await run(studio, { folder, out: newCodebookFile(dir, name), params, slurm });
}

export async function run(studio: Studio, { folder, out, params, slurm }: BuildRun): Promise<void> {
  const embeddings = await holdsEmbeddings(folder);
  const result = await studio.jobs.run(
    {
      kind: 'build', title: `Build codebook ${codebookName(out)} (K = ${params.k}) from ${path.basename(folder)}${slurm ? ' on Slurm' : ''}`, inputs: { folder, output: out },
      params: { ...params, ...(slurm && ON_SLURM) },
      cancelledMessage: `UniCode²: build of ${codebookName(out)} cancelled — nothing written`,
      // no `output`: buildCodebook takes the output's lock itself
    },
    slurm ? (ctx) => buildOnSlurm(studio, ctx, { folder, out, params }) : async ({ signal, progress }) => {
      const backend = await studio.backend.get();
      // a model named by Hugging Face id and not in the cache downloads within the job (its bytes, its Cancel)
      const { precision, layer, ...build } = params;
      const encoderOptions = { ...(precision && { precision }), ...(layer !== undefined && { layer }), download: { signal, onProgress: progress } };
      const summary = await buildCodebook({ ...(embeddings ? { embeddings: folder } : { images: folder }), out, ...build, encoderOptions }, backend, { signal, onProgress: progress });
      studio.setActiveCodebook(out);
      if (summary.skipped.length) studio.log.appendLine(`[build] skipped ${summary.skipped.map((x) => `${x.path}: ${x.reason}`).join('; ')}`);
      return {
        metrics: buildMetrics(summary),
        thumbnails: embeddings ? [] : await thumbnails(studio, await listImages(folder)),
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
      ...optionalModelParams(r),
    },
    slurm: ranOnSlurm(cell),
  });
}

/** The precision and layer a build cell recorded (cells of earlier versions recorded neither). */
function optionalModelParams(r: Recorded): Pick<BuildRun['params'], 'precision' | 'layer'> {
  const precision = r.optionalText('precision');
  const layer = r.optionalNumber('layer');
  return { ...(precision && Object.hasOwn(PRECISIONS, precision) && { precision: precision as Precision }), ...(layer !== undefined && { layer }) };
}

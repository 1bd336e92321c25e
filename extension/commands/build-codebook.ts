// "UniCode²: Build Codebook from Folder…": images -> codebook at <workspace>/.unicode2/codebook.safetensors,
// with the build settings of today (recorded in the cell, so a re-run builds the same way).
import * as path from 'node:path';
import { buildCodebook, listImages, UserError, type BuildMethod } from '../engine/index.js';
import type { LabCell } from '../../common/protocol/lab.js';
import type { Studio } from '../state/studio.js';
import { defaultCodebookPath, readSettings } from '../state/config.js';
import { showCodebook } from '../panels/codebook-panel.js';
import { pct, Recorded, thumbnails } from './command.js';
import { pick } from './prompts.js';

export const id = 'unicode2.buildCodebook';

export interface BuildRun {
  folder: string;
  out: string;
  params: { k: number; lambda: number; iterations: number; tolerance: number; seed: number; encoder: string; method: BuildMethod };
}

export async function prompt(studio: Studio, folder?: string): Promise<void> {
  folder ??= await pick('folder', 'Build a codebook from the images in…');
  if (!folder) return;
  const out = defaultCodebookPath();
  if (!out) throw new UserError('open a folder first: the codebook is written to <folder>/.unicode2/codebook.safetensors');
  const s = readSettings();
  await run(studio, {
    folder, out, params: { k: s.k, lambda: s.lambda, iterations: s.iterations, tolerance: s.tolerance, seed: s.seed, encoder: s.encoder, method: s.method },
  });
}

export async function run(studio: Studio, { folder, out, params }: BuildRun): Promise<void> {
  const result = await studio.jobs.run(
    {
      kind: 'build', title: `Build codebook (K = ${params.k}) from ${path.basename(folder)}`, inputs: { folder, output: out }, params,
      cancelledMessage: 'UniCode²: build cancelled — previous codebook kept',
      // no `output`: buildCodebook takes the output's lock itself
    },
    async ({ signal, progress }) => {
      const backend = await studio.backend.get();
      const summary = await buildCodebook({ images: folder, out, ...params }, backend, { signal, onProgress: progress });
      studio.setActiveCodebook(out);
      if (summary.skipped.length) studio.log.appendLine(`[build] skipped ${summary.skipped.map((x) => `${x.path}: ${x.reason}`).join('; ')}`);
      return {
        metrics: {
          K: summary.k, d: summary.d, method: summary.method, iterations: summary.iterations, MSE: summary.mse.toPrecision(4), utilization: pct(summary.utilization),
          perplexity: Math.round(summary.perplexity), dead: summary.dead, seconds: summary.seconds.toFixed(1), device: summary.device,
          ...(summary.calibration && { nprobe: summary.calibration.nprobe }),
        },
        thumbnails: await thumbnails(studio, await listImages(folder)),
        files: [out],
      };
    },
  );
  if (result) await showCodebook(out);
}

export function rerun(studio: Studio, cell: LabCell): Promise<void> {
  const r = new Recorded(cell);
  return run(studio, {
    folder: r.input('folder'), out: r.input('output'),
    params: {
      k: r.number('k'), lambda: r.number('lambda'), iterations: r.number('iterations'), tolerance: r.number('tolerance'), seed: r.number('seed'),
      encoder: r.text('encoder'), method: r.oneOf('method', ['auto', 'flat', 'two-level'] as const),
    },
  });
}

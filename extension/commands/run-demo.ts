// "UniCode²: Run Demo": build, tokenize and decode the sample images, with an HTML report; the
// demo's codebook becomes the active one when there is none.
import * as vscode from 'vscode';
import * as path from 'node:path';
import { runDemo } from '../engine/index.js';
import type { LabCell } from '../../common/protocol/lab.js';
import type { Studio } from '../state/studio.js';
import { workspaceDataDir } from '../state/config.js';
import { showCodebook } from '../panels/codebook-panel.js';
import { pct, Recorded, thumbnails } from './command.js';

export const id = 'unicode2.runDemo';

export interface DemoRun {
  output: string;
}

export function prompt(studio: Studio): Promise<void> {
  return run(studio, { output: path.join(workspaceDataDir() ?? studio.context.globalStorageUri.fsPath, 'demo') });
}

export async function run(studio: Studio, { output }: DemoRun): Promise<void> {
  let codebook: string | undefined;
  const result = await studio.jobs.run(
    { kind: 'demo', title: 'Demo: build, tokenize, decode the sample images', inputs: { output }, params: {}, output },
    async ({ signal, progress }) => {
      const demo = await runDemo(output, await studio.backend.get(), { signal, onProgress: progress });
      codebook = demo.codebook;
      return {
        metrics: {
          K: demo.summary.k, utilization: pct(demo.stats.utilization), perplexity: Math.round(demo.stats.perplexity),
          'mean PSNR': `${demo.meanPsnr.toFixed(2)} dB`, device: demo.summary.device,
        },
        thumbnails: await thumbnails(studio, demo.samples.map((s) => s.image)),
        files: [demo.report, demo.codebook, demo.tokens],
      };
    },
  );
  if (!result || !codebook) return;
  if (!studio.codebookPath()) studio.setActiveCodebook(codebook);
  await showCodebook(codebook);
  void vscode.window.showInformationMessage(`UniCode²: demo report written to ${result.files![0]}`);
}

export function rerun(studio: Studio, cell: LabCell): Promise<void> {
  return run(studio, { output: new Recorded(cell).input('output') });
}

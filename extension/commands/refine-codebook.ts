// "UniCode²: Refine Trainable Codebook…": the codebook's pixel atlas (its trainable half) learnt
// from a folder of images: each code's mean pixel patch; the codebook file is rewritten.
import * as path from 'node:path';
import { listImages, refineAtlas, stepsOf, writeCodebook, UserError } from '../engine/index.js';
import type { LabCell } from '../../common/protocol/lab.js';
import type { Studio } from '../state/studio.js';
import { showCodebook } from '../panels/codebook-panel.js';
import { Recorded, thumbnails } from './command.js';
import { askCodebookRun, pick } from './prompts.js';

export const id = 'unicode2.refineCodebook';

export interface RefineRun {
  folder: string;
  codebook: string;
  /** absent in cells of earlier versions: the codebook's own */
  encoder?: string;
}

export async function prompt(studio: Studio, folder?: string): Promise<void> {
  const title = 'Refine the trainable codebook (pixel atlas) on the images in…';
  const asked = await askCodebookRun(studio, async () => folder ?? (await pick('folder', title)), { encoder: true });
  if (asked) await run(studio, { folder: asked.target, codebook: asked.codebook, encoder: asked.encoder });
}

export async function run(studio: Studio, { folder, codebook, encoder: spec }: RefineRun): Promise<void> {
  const result = await studio.jobs.run(
    {
      kind: 'refine', title: `Refine ${path.basename(codebook)} on ${path.basename(folder)}`, inputs: { folder, codebook },
      params: spec ? { encoder: spec } : {}, output: codebook,
    },
    async ({ signal, progress }) => {
      const cb = await studio.codebook(codebook);
      const images = await listImages(folder);
      if (!images.length) throw new UserError(`no images in ${folder}`);
      const encoder = await studio.encoderFor(cb, spec);
      const refined = await refineAtlas(cb, encoder, images, await studio.backend.get(), { signal, onProgress: stepsOf('refine', progress) });
      const { fingerprint: _unchanged, ...rest } = refined;
      await writeCodebook(codebook, rest);
      return { metrics: { images: images.length, atlas: refined.meta.atlas }, thumbnails: await thumbnails(studio, images), files: [codebook] };
    },
  );
  if (result) await showCodebook(codebook);
}

export function rerun(studio: Studio, cell: LabCell): Promise<void> {
  const r = new Recorded(cell);
  return run(studio, { folder: r.input('folder'), codebook: r.input('codebook'), encoder: r.optionalText('encoder') });
}

// "UniCode²: Tokenize Image…": one image -> its token grid, shown in a Token Grid panel beside its
// reconstruction; the tokens are saved as JSON under <workspace>/.unicode2/tokens
// (`<image>.<codebook>.tokens.json`).
import * as path from 'node:path';
import { decodeTokens, hasPixelAtlas, resample, stepsOf, tokenizeImages, UserError, type RgbImage, type TokenGrid } from '../engine/index.js';
import type { LabCell } from '../../common/protocol/lab.js';
import type { Studio } from '../state/studio.js';
import { TokenGridPanel } from '../panels/token-grid-panel.js';
import { Recorded, saveTokens, thumbnail, thumbnails, tokenizeParams, type TokenizeWith } from './command.js';
import { askCodebookRun, pick, searchSettings } from './prompts.js';

export const id = 'unicode2.tokenizeImage';

export interface TokenizeImageRun extends TokenizeWith {
  image: string;
}

export async function prompt(studio: Studio, image?: string): Promise<void> {
  const asked = await askCodebookRun(studio, async () => image ?? (await pick('image', 'Tokenize an image')), { encoder: true });
  if (asked) await run(studio, { image: asked.target, codebook: asked.codebook, encoder: asked.encoder, search: searchSettings() });
}

export async function run(studio: Studio, tokenize: TokenizeImageRun): Promise<void> {
  const { image: file, codebook, encoder: spec, search } = tokenize;
  let grid: TokenGrid | undefined;
  await studio.jobs.run(
    { kind: 'tokenize', title: `Tokenize ${path.basename(file)}`, inputs: { image: file, codebook }, ...tokenizeParams(tokenize) },
    async ({ signal, progress }) => {
      const cb = await studio.codebook(codebook);
      const encoder = await studio.encoderFor(cb, spec);
      const backend = await studio.backend.get();
      const { results, skipped } = await tokenizeImages(cb, encoder, [file], backend, { signal, withDistances: true, onProgress: stepsOf('tokenize', progress), search });
      grid = results[0];
      if (!grid) throw new UserError(`cannot tokenize ${file}: ${skipped[0]?.reason ?? 'unreadable image'}`);
      const files = await saveTokens(path.parse(file).name, codebook, [grid]);
      studio.addTokenSet(path.basename(file), [grid], files[0]);
      // the photo as it is, and its reconstruction (the encoder's input: a model's is square) at the photo's aspect beside it
      const photo = await thumbnail(studio, file);
      const pictures: (string | RgbImage)[] = [];
      if (photo && hasPixelAtlas(cb.meta)) {
        pictures.push(resample(await decodeTokens(cb, Int32Array.from(grid.ids), grid.grid, backend), photo.width, photo.height));
      }
      const distances = grid.distances ?? [];
      return {
        metrics: {
          grid: `${grid.grid[0]}×${grid.grid[1]}`, 'distinct codes': new Set(grid.ids).size,
          ...(distances.length ? { 'mean distance²': (distances.reduce((a, b) => a + b, 0) / distances.length).toPrecision(4) } : {}),
        },
        thumbnails: [...(photo ? [photo.uri] : []), ...(await thumbnails(studio, pictures))], tokenPreview: { grid: grid.grid, ids: grid.ids }, files,
      };
    },
  );
  if (grid) TokenGridPanel.show(studio, codebook, grid);
}

export function rerun(studio: Studio, cell: LabCell): Promise<void> {
  const r = new Recorded(cell);
  return run(studio, { image: r.input('image'), ...r.tokenizeWith() });
}

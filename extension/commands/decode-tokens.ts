// "UniCode²: Decode Tokens…": a tokens file -> one PNG per grid through the codebook's atlas, under
// <workspace>/.unicode2/decoded; the first few join the Generation panel's gallery, which opens on
// them, and the grids become a source of that panel.
import * as path from 'node:path';
import { checkTokensMatchCodebook, decodeTokens, readTokenGrids, throwIfCancelled, writePng, UserError, type RgbImage } from '../engine/index.js';
import type { LabCell } from '../../common/protocol/lab.js';
import type { Studio } from '../state/studio.js';
import { workspaceDataDir } from '../state/config.js';
import { codebookName, madeFile } from '../state/codebook-names.js';
import { GenerationPanel } from '../panels/generation-panel.js';
import { MAX_THUMBS, Recorded, thumbnails } from './command.js';
import { askCodebookRun, pick } from './prompts.js';

export const id = 'unicode2.decodeTokens';
/** decoded images the Generation panel shows (all are written) */
const MAX_SHOWN = 8;

export interface DecodeRun {
  tokens: string;
  codebook: string;
}

export async function prompt(studio: Studio, tokens?: string): Promise<void> {
  const asked = await askCodebookRun(studio, async () => tokens ?? (await pick('tokens', 'Decode tokens from a tokens file')), { encoder: false });
  if (asked) await run(studio, { tokens: asked.target, codebook: asked.codebook });
}

export async function run(studio: Studio, { tokens, codebook }: DecodeRun): Promise<void> {
  const dataDir = workspaceDataDir();
  if (!dataDir) throw new UserError('open a folder first: results are written to <folder>/.unicode2');
  const outDir = path.join(dataDir, 'decoded');
  const shown: Parameters<typeof GenerationPanel.showDecoded>[1] = [];
  const result = await studio.jobs.run(
    { kind: 'decode', title: `Decode ${path.basename(tokens)}`, inputs: { tokens, codebook }, params: { decoder: 'atlas' }, output: outDir },
    async ({ signal, progress }) => {
      const cb = await studio.codebook(codebook);
      const grids = await readTokenGrids(tokens);
      checkTokensMatchCodebook(cb, grids, tokens);
      const backend = await studio.backend.get();
      const written: string[] = [];
      const images: RgbImage[] = [];
      for (const [i, g] of grids.entries()) {
        throwIfCancelled(signal);
        const started = Date.now();
        const img = await decodeTokens(cb, Int32Array.from(g.ids), g.grid, backend);
        const out = madeFile(outDir, path.parse(g.image || `grid-${i}`).name, codebook, '.png');
        await writePng(out, img);
        written.push(out);
        if (images.length < MAX_THUMBS) images.push(img);
        if (shown.length < MAX_SHOWN) {
          shown.push({
            image: img,
            about: { label: `Decoded ${path.basename(out)}`, grid: g.grid, settings: [['decoder', 'atlas'], ['codebook', codebookName(codebook)]], device: backend.name, seconds: (Date.now() - started) / 1000 },
            // its file: "Open in a panel" on the cell finds it in the gallery
            kept: { file: out },
          });
        }
        progress({ phase: 'decode', done: i + 1, total: grids.length });
      }
      studio.addTokenSet(path.basename(tokens), grids, tokens);
      return {
        metrics: { grids: grids.length, grid: `${grids[0]!.grid[0]}×${grids[0]!.grid[1]}` },
        thumbnails: await thumbnails(studio, images),
        files: written.slice(0, 8),
      };
    },
  );
  if (result) await GenerationPanel.showDecoded(studio, shown);
}

export function rerun(studio: Studio, cell: LabCell): Promise<void> {
  const r = new Recorded(cell);
  return run(studio, { tokens: r.input('tokens'), codebook: r.input('codebook') });
}

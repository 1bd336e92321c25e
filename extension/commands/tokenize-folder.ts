// "UniCode²: Tokenize Folder…": every image of a folder -> token grids, saved as JSON and as the
// data set researchers load in PyTorch (int32 [N, L] + an index of image paths). A folder of
// data-set shards gives a token set per shard, here or on Slurm (tokenize-shards.ts).
import * as vscode from 'vscode';
import * as path from 'node:path';
import { codeStats, listImages, pooledPathOf, stepsOf, tokenizeImages, writeTokenDataset, UserError } from '../engine/index.js';
import type { LabCell } from '../../common/protocol/lab.js';
import type { Studio } from '../state/studio.js';
import { workspaceDataDir } from '../state/config.js';
import { codebookName, tokensFile } from '../state/codebook-names.js';
import { TOKEN_SET_VIEW_TYPE } from '../panels/token-set-editor.js';
import { pct, Recorded, saveTokens, thumbnails, tokenizeParams, type TokenizeWith } from './command.js';
import { askCodebookRun, pick, searchSettings } from './prompts.js';
import { askWhereShards, runShards, shardsIn, type TokenizeShardsRun } from './tokenize-shards.js';
import { ranOnSlurm } from './slurm-run.js';

export const id = 'unicode2.tokenizeFolder';

export type TokenizeFolderRun = TokenizeShardsRun;

export async function prompt(studio: Studio, folder?: string): Promise<void> {
  const asked = await askCodebookRun(studio, async () => folder ?? (await pick('folder', 'Tokenize the images in…')), { encoder: true });
  if (!asked) return;
  const shards = await shardsIn(asked.target);
  const slurm = shards.length > 0 ? await askWhereShards(shards.length) : false;
  if (slurm !== undefined) await run(studio, { folder: asked.target, codebook: asked.codebook, encoder: asked.encoder, search: searchSettings(), slurm });
}

/** `open: false`: the set is not opened in the token set editor when done (the Codebook editor's
 *  "tokenize the build corpus" stays where it is, to show the code's patches). */
export async function run(studio: Studio, tokenize: TokenizeFolderRun & { open?: boolean }): Promise<void> {
  const shards = await shardsIn(tokenize.folder);
  if (shards.length > 0) return runShards(studio, tokenize, shards);
  const { folder: dir, codebook, encoder: spec, search } = tokenize;
  const dataDir = workspaceDataDir();
  const dataset = dataDir ? tokensFile(path.join(dataDir, 'tokens'), path.basename(dir), codebook, '.tokens.npy') : undefined;
  let tokenized = 0;
  const result = await studio.jobs.run(
    { kind: 'tokenize', title: `Tokenize folder ${path.basename(dir)}`, inputs: { folder: dir, codebook }, ...tokenizeParams(tokenize), output: dataset },
    async ({ signal, progress }) => {
      const cb = await studio.codebook(codebook);
      const images = await listImages(dir);
      if (!images.length) throw new UserError(`no images in ${dir}`);
      const encoder = await studio.encoderFor(cb, spec);
      const backend = await studio.backend.get();
      // a model with a pooled output keeps it beside the data set: the token set editor searches it by words
      const pooled = !!dataset && encoder.encodeWithPooled !== undefined;
      const { results, skipped, pooled: kept } = await tokenizeImages(cb, encoder, images, backend, { signal, onProgress: stepsOf('tokenize', progress), search, pooled });
      if (!results.length) throw new UserError(`none of the ${images.length} images in ${dir} could be read`);
      tokenized = results.length;
      const files = await saveTokens(path.basename(dir), codebook, results);
      if (dataset) {
        await writeTokenDataset(dataset, results, kept ? { pooled: kept } : {});
        if (kept) files.push(pooledPathOf(dataset));
        files.push(dataset);
      }
      studio.addTokenSet(`${path.basename(dir)} (${results.length} images)`, results, files[0]);
      const stats = codeStats(await backend.histogram(Int32Array.from(results.flatMap((r) => r.ids)), cb.frozen.rows));
      return {
        metrics: {
          images: results.length, skipped: skipped.length, tokens: stats.tokens, utilization: pct(stats.utilization), perplexity: Math.round(stats.perplexity),
          search: results[0]!.search?.method === 'ivf' ? `IVF, nprobe ${results[0]!.search.nprobe}` : 'exact',
        },
        thumbnails: await thumbnails(studio, results.map((r) => r.image)),
        tokenPreview: { grid: results[0]!.grid, ids: results[0]!.ids },
        files,
      };
    },
  );
  if (result) await showResult(dir, codebook, tokenized, tokenize.open === false ? undefined : result.files?.at(-1));
}

/** Says what was made, and opens the data set in the token set editor. */
async function showResult(dir: string, codebook: string, images: number, file: string | undefined): Promise<void> {
  const what = `UniCode²: tokenized ${images} image${images === 1 ? '' : 's'} of ${path.basename(dir)}/ with ${codebookName(codebook)}`;
  if (!file) {
    void vscode.window.showInformationMessage(`${what}; the set is in "Counts from" and the Generation panel`);
    return;
  }
  await vscode.commands.executeCommand('vscode.openWith', vscode.Uri.file(file), TOKEN_SET_VIEW_TYPE);
  void vscode.window.showInformationMessage(`${what} → ${path.basename(file)}`);
}

export function rerun(studio: Studio, cell: LabCell): Promise<void> {
  const r = new Recorded(cell);
  return run(studio, { folder: r.input('folder'), ...r.tokenizeWith(), slurm: ranOnSlurm(cell) });
}

// The Codebook editor: a codebook `.safetensors` opens here (Explorer: Open With… > UniCode²
// Codebook, or the Open Codebook command). Loads the codebook, computes the heatmap order, counts
// codes over the selected data set (the build corpus' stored counts or a token set of this
// session), measures how far training moved each code (its trainable row from its frozen row),
// and answers "what is code k": the image patches that use it and its nearest codewords.
// A custom editor rather than a free panel: VS Code ties it to the file (one tab per codebook,
// reopened after a reload without any state of ours), and the file watcher refreshes it after a
// rebuild.
import * as vscode from 'vscode';
import * as path from 'node:path';
import { existsSync } from 'node:fs';
import { checkTokensMatchCodebook, coarseCells, codeStats, cropPatch, fewVectorsWarning, nearestCodewords, similarityOrder, trainingDrift, readTokenGrids, UserError, type Codebook, type RgbImage } from '../engine/index.js';
import { codebookProtocol, type CodebookView, type CodeDetail, type CodePatch, type CodeNeighbour, type DatasetInfo } from '../../common/protocol/codebook.js';
import type { Studio, TokenSet } from '../state/studio.js';
import { codebookName, tokensFile } from '../state/codebook-names.js';
import { workspaceDataDir } from '../state/config.js';
import { connectWebview, readonlyEditor, watchFile } from './webview-host.js';
import { pngDataUri } from './images.js';

export const CODEBOOK_VIEW_TYPE = 'unicode2.codebook';
const BUILD = 'build';
const MAX_PATCHES = 24;
const NEIGHBOURS = 8;
/** Tokenizes a folder with a given codebook as a Lab cell (Tokenize Folder's run, handed in by
 *  commands/index.ts: panels do not import commands). The job reports its own errors; one before
 *  it starts (the encoder question) goes back to the panel. */
export type TokenizeFolderWith = (folder: string, codebook: string) => Promise<void>;

/** Opens a codebook file in its editor, or brings its open editor to the front. */
export function showCodebook(file: string): Thenable<unknown> {
  return vscode.commands.executeCommand('vscode.openWith', vscode.Uri.file(path.resolve(file)), CODEBOOK_VIEW_TYPE);
}

/** Read-only: the editor never changes the file (Build and Refine rewrite it, and it follows). */
export function codebookEditor(studio: Studio, tokenizeFolderWith: TokenizeFolderWith): vscode.CustomReadonlyEditorProvider {
  return readonlyEditor(studio.extensionUri, (panel, uri) => new CodebookPanel(studio, panel, uri, tokenizeFolderWith));
}

/** The training drift as the webview shows it; a trainable half that cannot be read (damaged)
 *  is said in its place, the rest of the editor still shown. */
async function driftOf(cb: Codebook): Promise<CodebookView['drift']> {
  try {
    const { distances, note } = await trainingDrift(cb);
    return { distances: distances && Array.from(distances), note };
  } catch (err) {
    return { distances: null, note: (err as Error).message };
  }
}

class CodebookPanel {
  private dataset = BUILD;
  private counts: number[] = [];
  /** heatmap orders of one version of the file (a rebuilt codebook is ordered again): of the codes,
   *  and of the coarse cells when there are any; and its training drift */
  private order: { cb: Codebook; codes: Promise<number[]>; cells: number[] | null; drift: Promise<CodebookView['drift']> } | null = null;
  private readonly file: string;

  constructor(
    private readonly studio: Studio,
    panel: vscode.WebviewPanel,
    uri: vscode.Uri,
    private readonly tokenizeFolderWith: TokenizeFolderWith,
  ) {
    this.file = uri.fsPath;
    const { endpoint, disposable } = connectWebview(panel.webview, studio.extensionUri, 'codebook', codebookProtocol, panel.title, studio.log, {
      init: () => this.data(),
      // a set that cannot be counted here is refused before it is chosen: the panel keeps showing
      // the counts it showed (and a restored panel never fails on a choice replayed from its state)
      selectDataset: async ({ dataset }) => {
        const set = this.studio.tokenSet(dataset);
        if (set) await this.checkFits(set);
        this.dataset = set ? dataset : BUILD;
        return this.data();
      },
      addTokensFile: async () => {
        const set = await this.studio.pickTokensFile();
        if (!set) return null;
        await this.checkFits(set);
        this.dataset = set.id;
        return this.data();
      },
      codeDetail: ({ code }) => this.detail(code),
      tokenizeCorpus: async () => {
        const folder = this.corpusFolder();
        if (!folder) throw new UserError('the folder this codebook was built from is not known here (no Lab cell of its build): tokenize a folder with it from the palette');
        await this.tokenizeFolderWith(folder, this.file);
        return null;
      },
      reopenWith: async () => {
        await vscode.commands.executeCommand('workbench.action.reopenWithEditor', uri);
        return null;
      },
    });
    const onSets = studio.onDidChangeTokenSets(() => void this.codebook().then((cb) => endpoint.notify('datasets', { datasets: this.datasets(cb) }), () => undefined));
    // a rebuilt or refined codebook is shown as it now is
    const watcher = watchFile(uri, () => endpoint.notify('fileChanged', {}));
    panel.onDidDispose(() => {
      disposable.dispose();
      onSets.dispose();
      watcher.dispose();
    });
  }

  private codebook(): Promise<Codebook> {
    return this.studio.codebook(this.file);
  }

  /** The data sets to count over: the build corpus, and this session's token sets (those made
   *  with another codebook listed disabled, saying which). */
  private datasets(cb: Codebook): DatasetInfo[] {
    return [
      { id: BUILD, label: 'Build corpus (stored counts)' },
      ...this.studio.allTokenSets().map((s) => {
        const other = this.studio.otherCodebookOf(s.grids, cb);
        return { id: s.id, label: s.label, ...(other ? { disabled: other } : {}) };
      }),
    ];
  }

  /** A UserError, saying which codebook made it, when `set` cannot be counted with this codebook. */
  private async checkFits(set: TokenSet): Promise<void> {
    const cb = await this.codebook();
    const other = this.studio.otherCodebookOf(set.grids, cb);
    if (other) throw new UserError(`${set.label} was ${other}, not with ${codebookName(this.file)}: its codes mean nothing here; tokenize its images with ${codebookName(this.file)}, or open that codebook`);
    checkTokensMatchCodebook(cb, set.grids, set.label);
  }

  private async data(): Promise<CodebookView> {
    const cb = await this.codebook();
    if (this.order?.cb !== cb) {
      this.order = {
        cb,
        codes: Promise.resolve().then(() => similarityOrder(cb.frozen)),
        cells: cb.coarse ? similarityOrder(cb.coarse.centroids) : null,
        drift: driftOf(cb),
      };
    }
    this.counts = await this.countsOf(cb);
    const s = codeStats(this.counts);
    return {
      summary: {
        file: path.basename(this.file), k: cb.frozen.rows, d: cb.frozen.cols, encoder: cb.meta.encoder.id, lambda: cb.meta.lambda,
        iterations: cb.meta.iterations, ...trainingVectorsOf(cb), fingerprint: cb.fingerprint, atlas: cb.meta.atlas,
        tokens: s.tokens, used: s.used, utilization: s.utilization, perplexity: s.perplexity, dead: s.dead,
      },
      counts: this.counts,
      order: await this.order.codes,
      datasets: this.datasets(cb),
      dataset: this.dataset,
      coarse: this.coarse(cb, this.order.cells),
      drift: await this.order.drift,
    };
  }

  /** The coarse cells and their use under the current counts. */
  private coarse(cb: Codebook, order: number[] | null): CodebookView['coarse'] {
    const cells = coarseCells(cb, this.counts);
    if (!cells || !order) return null;
    return { order, cells: cells.map((c) => ({ codes: Array.from(c.codes), tokens: c.tokens, used: c.used })) };
  }

  private async countsOf(cb: Codebook): Promise<number[]> {
    const chosen = this.studio.tokenSet(this.dataset);
    // a set chosen before the file changed under it no longer counts here: back to the build's counts
    const set = chosen && !this.studio.otherCodebookOf(chosen.grids, cb) ? chosen : undefined;
    if (!set) {
      this.dataset = BUILD;
      return cb.counts ? Array.from(cb.counts) : new Array<number>(cb.frozen.rows).fill(0);
    }
    checkTokensMatchCodebook(cb, set.grids, set.label);
    const ids = Int32Array.from(set.grids.flatMap((g) => g.ids));
    const backend = await this.studio.backend.get();
    return Array.from(await backend.histogram(ids, cb.frozen.rows));
  }

  private async detail(code: number): Promise<CodeDetail> {
    const cb = await this.studio.codebook(this.file);
    // the file may have been rebuilt smaller since the webview drew its heatmap
    if (code >= cb.frozen.rows) throw new UserError(`code ${code} is not in this codebook: its codes run from 0 to ${cb.frozen.rows - 1} (K = ${cb.frozen.rows})`);
    const tokens = this.counts.reduce((a, b) => a + b, 0);
    const count = this.counts[code] ?? 0;
    await this.loadCorpusTokens(cb);
    const [patches, neighbours] = await Promise.all([this.patches(cb, code), this.neighbours(cb, code)]);
    return { code, count, share: tokens > 0 ? count / tokens : 0, patches, neighbours, ...(patches.length ? {} : this.noPatches(cb, count)) };
  }

  /** Why a code shows no patches, and (build corpus selected, none of its images tokenized with
   *  this codebook) the corpus to tokenize with one click. */
  private noPatches(cb: Codebook, count: number): Pick<CodeDetail, 'note' | 'corpus'> {
    const folder = this.dataset === BUILD ? this.corpusFolder() : undefined;
    const grids = this.studio.allTokenSets().flatMap((s) => s.grids).filter((g) => g.codebook === cb.fingerprint);
    const tokenized = grids.length > 0;
    if (folder && !grids.some((g) => g.image.startsWith(folder + path.sep))) {
      const uses = count ? ` it has ${count.toLocaleString('en-US')} uses in the build corpus, but` : '';
      return {
        note: `No image tokenized with this codebook yet:${uses} a build keeps how often each code was used, not where. Tokenize the build corpus, ${path.basename(folder)}/, to see its patches.`,
        corpus: path.basename(folder),
      };
    }
    if (tokenized) return { note: 'No image of the tokenized data sets uses this code.' };
    return { note: 'Tokenize an image or a folder with this codebook to see the patches that use each code.' };
  }

  /** The folder this codebook was built from, as its build's Lab cell records it. */
  private corpusFolder(): string | undefined {
    return this.studio.lab.all().find((c) => c.kind === 'build' && c.inputs.output === this.file)?.inputs.folder;
  }

  /** The build corpus' token set saved by an earlier Tokenize Folder (`<folder>.<codebook>.tokens.json`),
   *  read into the session once (after a reload the session holds no sets). */
  private async loadCorpusTokens(cb: Codebook): Promise<void> {
    const folder = this.corpusFolder();
    const dataDir = workspaceDataDir();
    if (!folder || !dataDir) return;
    const file = tokensFile(path.join(dataDir, 'tokens'), path.basename(folder), this.file, '.tokens.json');
    if (!existsSync(file) || this.studio.allTokenSets().some((s) => s.file === file)) return;
    const grids = await readTokenGrids(file).catch(() => null);
    if (grids && !this.studio.otherCodebookOf(grids, cb)) this.studio.addTokenSet(`${path.basename(folder)} (${grids.length} images)`, grids, file);
  }

  /** Crops of the source images at the cells holding `code`: from the selected token set, or
   *  from every token set of this session when the build corpus is selected. */
  private async patches(cb: Codebook, code: number): Promise<CodePatch[]> {
    const set = this.studio.tokenSet(this.dataset);
    const grids = (set ? [set] : this.studio.allTokenSets()).flatMap((s) => s.grids).filter((g) => g.codebook === cb.fingerprint);
    const hits: { image: string; cell: number; grid: [number, number] }[] = [];
    for (const g of grids) {
      g.ids.forEach((id, cell) => id === code && hits.length < MAX_PATCHES && hits.push({ image: g.image, cell, grid: g.grid }));
      if (hits.length >= MAX_PATCHES) break;
    }
    if (!hits.length) return [];
    const encoder = await this.studio.encoderFor(cb);
    const loaded = new Map<string, Promise<RgbImage | null>>();
    const out: CodePatch[] = [];
    for (const hit of hits) {
      if (!loaded.has(hit.image)) loaded.set(hit.image, encoder.load(hit.image).catch(() => null));
      const img = await loaded.get(hit.image)!;
      if (!img) continue; // the image moved since it was tokenized: skip its patches
      const row = Math.floor(hit.cell / hit.grid[1]);
      const col = hit.cell % hit.grid[1];
      const src = await pngDataUri(cropPatch(img, row, col, encoder.patch, Math.max(1, Math.round(48 / encoder.patch))));
      out.push({ src, image: path.basename(hit.image), row, col });
    }
    return out;
  }

  private async neighbours(cb: Codebook, code: number): Promise<CodeNeighbour[]> {
    const nearest = await nearestCodewords(cb, code, NEIGHBOURS, await this.studio.backend.get());
    return nearest.map((b) => ({ ...b, count: this.counts[b.code] ?? 0 }));
  }
}

/** The vectors that trained a codebook: recorded by its build, or (codebooks of earlier versions)
 *  the sum of its build's counts, the vectors the codes are the means of; with the warning when few per code. */
function trainingVectorsOf(cb: Codebook): { trainingVectors?: number; trainingWarning?: string } {
  const recorded = cb.meta.trainingVectors;
  const vectors = typeof recorded === 'number' ? recorded : cb.counts ? Math.round(cb.counts.reduce((a, b) => a + b, 0)) || undefined : undefined;
  if (vectors === undefined) return {};
  const warning = fewVectorsWarning(cb.frozen.rows, vectors);
  return { trainingVectors: vectors, ...(warning && { trainingWarning: warning }) };
}

// The operations behind the commands. Each has two halves: a prompt that asks for what is missing
// (file dialogs, the encoder of a codebook that needs one) and reads today's settings, and a run
// that takes everything explicitly and records it in its Lab cell. The Lab's "run again" reads a
// cell back (Recorded) into the same run, so a re-run repeats the cell's inputs, parameters,
// codebook and encoder — what the cell shows — not today's settings or active codebook.
import * as vscode from 'vscode';
import * as path from 'node:path';
import { existsSync } from 'node:fs';
import {
  buildCodebook, checkEncoderMatches, checkTokensMatchCodebook, codeStats, decodeTokens, listImages, readTokenGrids, refineAtlas, runDemo,
  stepsOf, tokenizeImages, writeCodebook, throwIfCancelled, writePng, writeTokenDataset, writeTokenJson, IMAGE_EXTENSIONS, UserError,
  type BuildMethod, type Codebook, type RgbImage, type SearchOptions, type TokenGrid,
} from '../engine/index.js';
import type { LabCell } from '../../common/protocol/lab.js';
import type { Studio } from '../state/studio.js';
import { errorText, showError } from '../state/errors.js';
import { defaultCodebookPath, readSettings, workspaceDataDir } from '../state/config.js';
import { resample, thumbnailUri } from '../panels/images.js';
import { showCodebook } from '../panels/codebook-panel.js';
import { TokenGridPanel } from '../panels/token-grid-panel.js';
import { GenerationPanel } from '../panels/generation-panel.js';

const FILTERS: Record<'image' | 'tokens' | 'codebook', Record<string, string[]>> = {
  image: { Images: [...IMAGE_EXTENSIONS] },
  tokens: { 'UniCode² tokens': ['json', 'npy'] },
  codebook: { Codebook: ['safetensors'] },
};
const MAX_THUMBS = 4;
const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

async function pick(kind: 'folder' | 'image' | 'tokens' | 'codebook', title: string): Promise<string | undefined> {
  const picked = await vscode.window.showOpenDialog({
    title, canSelectMany: false, canSelectFiles: kind !== 'folder', canSelectFolders: kind === 'folder',
    filters: kind === 'folder' ? undefined : FILTERS[kind],
    defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
  });
  return picked?.[0]?.fsPath;
}

function requireDataDir(): string {
  const dir = workspaceDataDir();
  if (!dir) throw new UserError('open a folder first: results are written to <folder>/.unicode2');
  return dir;
}

// ---------------------------------------------------------------------------------------------
// What each run takes: everything it needs, recorded in its Lab cell as inputs (paths) and params.

interface BuildRun {
  folder: string;
  out: string;
  params: { k: number; lambda: number; iterations: number; tolerance: number; seed: number; encoder: string; method: BuildMethod };
}
interface TokenizeRun {
  /** one image (Token Grid panel) or a folder (token data set) */
  source: { image: string } | { folder: string };
  codebook: string;
  /** the encoder spec to tokenize with; absent in cells of earlier versions: the codebook's own */
  encoder?: string;
  /** IVF through the codebook's coarse level or exact, and nprobe */
  search: Required<SearchOptions>;
}
interface DecodeRun {
  tokens: string;
  codebook: string;
}
interface RefineRun {
  folder: string;
  codebook: string;
  encoder?: string;
}
interface DemoRun {
  output: string;
}

/** A Lab cell read back into a run: a value the cell lacks is a clear error, not a guess. */
class Recorded {
  constructor(private readonly cell: LabCell) {}

  private missing(name: string): UserError {
    return new UserError(`this Lab cell does not record its ${name} (it was made by an earlier version); start the run again from the palette`);
  }

  input(name: string): string {
    const value = this.cell.inputs[name];
    if (typeof value !== 'string' || !value) throw this.missing(name);
    return value;
  }

  number(name: string): number {
    const value = this.cell.params[name];
    if (typeof value !== 'number' || !Number.isFinite(value)) throw this.missing(name);
    return value;
  }

  text(name: string): string {
    const value = this.optionalText(name);
    if (value === undefined) throw this.missing(name);
    return value;
  }

  oneOf<T extends string>(name: string, choices: readonly T[]): T {
    const value = this.text(name);
    if (!choices.includes(value as T)) throw this.missing(name);
    return value as T;
  }

  optionalText(name: string): string | undefined {
    const value = this.cell.params[name];
    return typeof value === 'string' && value ? value : undefined;
  }
}

export class Operations {
  constructor(private readonly studio: Studio) {}

  /** Reports an error thrown before a job started (e.g. while checking inputs). */
  private async reportErrors(work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (err) {
      showError(err, this.studio.log);
    }
  }

  /** A thumbnail for a Lab cell, or null (logged) when it cannot be made: a finished job never
   *  fails because of its pictures. */
  private async thumbnail(source: string | RgbImage): Promise<Awaited<ReturnType<typeof thumbnailUri>> | null> {
    try {
      return await thumbnailUri(source);
    } catch (err) {
      this.studio.log.appendLine(`[thumbnail] ${typeof source === 'string' ? `${source}: ` : ''}${errorText(err)}`);
      return null;
    }
  }

  /** Thumbnails of the first few images or pictures; those that cannot be made are left out. */
  private async thumbnails(sources: (string | RgbImage)[]): Promise<string[]> {
    const out: string[] = [];
    for (const source of sources.slice(0, MAX_THUMBS)) {
      const thumb = await this.thumbnail(source);
      if (thumb) out.push(thumb.uri);
    }
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // Build

  build(folder?: string): Promise<void> {
    return this.reportErrors(async () => {
      folder ??= await pick('folder', 'Build a codebook from the images in…');
      if (!folder) return;
      const out = defaultCodebookPath();
      if (!out) throw new UserError('open a folder first: the codebook is written to <folder>/.unicode2/codebook.safetensors');
      const s = readSettings();
      await this.runBuild({
        folder, out, params: { k: s.k, lambda: s.lambda, iterations: s.iterations, tolerance: s.tolerance, seed: s.seed, encoder: s.encoder, method: s.method },
      });
    });
  }

  private async runBuild({ folder, out, params }: BuildRun): Promise<void> {
    const result = await this.studio.jobs.run(
      {
        kind: 'build', title: `Build codebook (K = ${params.k}) from ${path.basename(folder)}`, inputs: { folder, output: out }, params,
        cancelledMessage: 'UniCode²: build cancelled — previous codebook kept',
        // no `output`: buildCodebook takes the output's lock itself
      },
      async ({ signal, progress }) => {
        const backend = await this.studio.backend.get();
        const summary = await buildCodebook({ images: folder, out, ...params }, backend, { signal, onProgress: progress });
        this.studio.setActiveCodebook(out);
        if (summary.skipped.length) this.studio.log.appendLine(`[build] skipped ${summary.skipped.map((x) => `${x.path}: ${x.reason}`).join('; ')}`);
        return {
          metrics: {
            K: summary.k, d: summary.d, method: summary.method, iterations: summary.iterations, MSE: summary.mse.toPrecision(4), utilization: pct(summary.utilization),
            perplexity: Math.round(summary.perplexity), dead: summary.dead, seconds: summary.seconds.toFixed(1), device: summary.device,
            ...(summary.calibration && { nprobe: summary.calibration.nprobe }),
          },
          thumbnails: await this.thumbnails(await listImages(folder)),
          files: [out],
        };
      },
    );
    if (result) await showCodebook(out);
  }

  openCodebook(file?: string): Promise<void> {
    return this.reportErrors(async () => {
      file ??= await pick('codebook', 'Open a UniCode² codebook');
      if (!file) return;
      await this.studio.codebook(file); // a bad file fails here, before it becomes the active one
      this.studio.setActiveCodebook(file);
      await showCodebook(file);
    });
  }

  /** Opens the active codebook in its editor (the walkthrough's "open the codebook" step). */
  showActiveCodebook(): Promise<void> {
    return this.reportErrors(async () => {
      const file = await this.activeCodebookOrOffer();
      if (file) await showCodebook(file);
    });
  }

  /** The active codebook, or undefined after offering to build or open one. */
  private async activeCodebookOrOffer(): Promise<string | undefined> {
    const file = this.studio.codebookPath();
    if (file) return file;
    const choice = await vscode.window.showWarningMessage(
      'UniCode²: no active codebook. Build one from a folder of images, or open an existing one.',
      'Build Codebook…', 'Open Codebook…',
    );
    if (choice === 'Build Codebook…') await this.build();
    if (choice === 'Open Codebook…') await this.openCodebook();
    return undefined;
  }

  // -------------------------------------------------------------------------------------------
  // The encoder of a codebook

  /**
   * The encoder spec to use with a codebook: its own, or — for a codebook whose own cannot be
   * reopened here (built from external embeddings, or its model is not on this machine) — the one
   * chosen for it before, or asked for now and remembered for that codebook. Undefined when the
   * user dismissed the question.
   */
  private async encoderSpec(codebook: string): Promise<string | undefined> {
    const cb = await this.studio.codebook(codebook);
    const chosen = this.studio.encoderChoice(cb);
    if (chosen && isAvailable(chosen)) return chosen;
    const problem = this.studio.encoderProblem(cb);
    if (!problem) return cb.meta.encoder.id;
    const spec = await askEncoder(cb, codebook, problem);
    if (!spec) return undefined;
    // Remembered only once it opens and fits the codebook.
    checkEncoderMatches(cb, await this.studio.encoderFor(cb, spec));
    await this.studio.rememberEncoderChoice(cb, spec);
    this.studio.log.appendLine(`[encoder] ${codebook}: using ${spec} (${problem})`);
    return spec;
  }

  // -------------------------------------------------------------------------------------------
  // Tokenize

  tokenizeImage(image?: string): Promise<void> {
    return this.tokenizePrompt(async () => image ?? (await pick('image', 'Tokenize an image')), (file) => ({ image: file }));
  }

  tokenizeFolder(folder?: string): Promise<void> {
    return this.tokenizePrompt(async () => folder ?? (await pick('folder', 'Tokenize the images in…')), (dir) => ({ folder: dir }));
  }

  private tokenizePrompt(ask: () => Promise<string | undefined>, source: (picked: string) => TokenizeRun['source']): Promise<void> {
    return this.reportErrors(async () => {
      const codebook = await this.activeCodebookOrOffer();
      if (!codebook) return;
      const picked = await ask();
      if (!picked) return;
      const encoder = await this.encoderSpec(codebook);
      if (!encoder) return;
      const { search, nprobe } = readSettings();
      await this.runTokenize({ source: source(picked), codebook, encoder, search: { search, nprobe } });
    });
  }

  private runTokenize(run: TokenizeRun): Promise<void> {
    return 'image' in run.source ? this.runTokenizeImage(run.source.image, run) : this.runTokenizeFolder(run.source.folder, run);
  }

  private async runTokenizeImage(file: string, { codebook, encoder: spec, search }: TokenizeRun): Promise<void> {
    let grid: TokenGrid | undefined;
    await this.studio.jobs.run(
      { kind: 'tokenize', title: `Tokenize ${path.basename(file)}`, inputs: { image: file, codebook }, params: { ...(spec ? { encoder: spec } : {}), ...search } },
      async ({ signal, progress }) => {
        const cb = await this.studio.codebook(codebook);
        const encoder = await this.studio.encoderFor(cb, spec);
        const backend = await this.studio.backend.get();
        const { results, skipped } = await tokenizeImages(cb, encoder, [file], backend, { signal, withDistances: true, onProgress: stepsOf('tokenize', progress), search });
        grid = results[0];
        if (!grid) throw new UserError(`cannot tokenize ${file}: ${skipped[0]?.reason ?? 'unreadable image'}`);
        const files = await this.saveTokens(path.parse(file).name, [grid]);
        this.studio.addTokenSet(path.basename(file), [grid], files[0]);
        // the photo as it is, and its reconstruction (the encoder's input: a model's is square) at the photo's aspect beside it
        const photo = await this.thumbnail(file);
        const pictures: (string | RgbImage)[] = [];
        if (photo && cb.meta.atlas !== 'none') {
          pictures.push(resample(await decodeTokens(cb, Int32Array.from(grid.ids), grid.grid, backend), photo.width, photo.height));
        }
        const distances = grid.distances ?? [];
        return {
          metrics: {
            grid: `${grid.grid[0]}×${grid.grid[1]}`, 'distinct codes': new Set(grid.ids).size,
            ...(distances.length ? { 'mean distance²': (distances.reduce((a, b) => a + b, 0) / distances.length).toPrecision(4) } : {}),
          },
          thumbnails: [...(photo ? [photo.uri] : []), ...(await this.thumbnails(pictures))], tokenPreview: { grid: grid.grid, ids: grid.ids }, files,
        };
      },
    );
    if (grid) TokenGridPanel.show(this.studio, codebook, grid);
  }

  private async runTokenizeFolder(dir: string, { codebook, encoder: spec, search }: TokenizeRun): Promise<void> {
    // The data-set form researchers load in PyTorch: int32 [N, L] + an index of image paths.
    const dataDir = workspaceDataDir();
    const dataset = dataDir ? path.join(dataDir, 'tokens', `${path.basename(dir)}.tokens.npy`) : undefined;
    await this.studio.jobs.run(
      {
        kind: 'tokenize', title: `Tokenize folder ${path.basename(dir)}`, inputs: { folder: dir, codebook }, params: { ...(spec ? { encoder: spec } : {}), ...search },
        output: dataset,
      },
      async ({ signal, progress }) => {
        const cb = await this.studio.codebook(codebook);
        const images = await listImages(dir);
        if (!images.length) throw new UserError(`no images in ${dir}`);
        const encoder = await this.studio.encoderFor(cb, spec);
        const backend = await this.studio.backend.get();
        const { results, skipped } = await tokenizeImages(cb, encoder, images, backend, { signal, onProgress: stepsOf('tokenize', progress), search });
        if (!results.length) throw new UserError(`none of the ${images.length} images in ${dir} could be read`);
        const files = await this.saveTokens(path.basename(dir), results);
        if (dataset) {
          await writeTokenDataset(dataset, results);
          files.push(dataset);
        }
        this.studio.addTokenSet(`${path.basename(dir)} (${results.length} images)`, results, files[0]);
        const stats = codeStats(await backend.histogram(Int32Array.from(results.flatMap((r) => r.ids)), cb.frozen.rows));
        return {
          metrics: {
            images: results.length, skipped: skipped.length, tokens: stats.tokens, utilization: pct(stats.utilization), perplexity: Math.round(stats.perplexity),
            search: results[0]!.search?.method === 'ivf' ? `IVF, nprobe ${results[0]!.search.nprobe}` : 'exact',
          },
          thumbnails: await this.thumbnails(results.map((r) => r.image)),
          tokenPreview: { grid: results[0]!.grid, ids: results[0]!.ids },
          files,
        };
      },
    );
  }

  /** Token JSON under <workspace>/.unicode2/tokens (none without a workspace: the set stays in memory). */
  private async saveTokens(name: string, grids: TokenGrid[]): Promise<string[]> {
    const dir = workspaceDataDir();
    if (!dir) return [];
    const file = path.join(dir, 'tokens', `${name}.tokens.json`);
    await writeTokenJson(file, grids);
    return [file];
  }

  // -------------------------------------------------------------------------------------------
  // Decode, refine, demo

  decode(tokens?: string): Promise<void> {
    return this.reportErrors(async () => {
      const codebook = await this.activeCodebookOrOffer();
      if (!codebook) return;
      tokens ??= await pick('tokens', 'Decode tokens from a tokens file');
      if (!tokens) return;
      await this.runDecode({ tokens, codebook });
    });
  }

  private async runDecode({ tokens, codebook }: DecodeRun): Promise<void> {
    const outDir = path.join(requireDataDir(), 'decoded');
    const result = await this.studio.jobs.run(
      { kind: 'decode', title: `Decode ${path.basename(tokens)}`, inputs: { tokens, codebook }, params: { decoder: 'atlas' }, output: outDir },
      async ({ signal, progress }) => {
        const cb = await this.studio.codebook(codebook);
        const grids = await readTokenGrids(tokens);
        checkTokensMatchCodebook(cb, grids, tokens);
        const backend = await this.studio.backend.get();
        const written: string[] = [];
        const images: RgbImage[] = [];
        for (const [i, g] of grids.entries()) {
          throwIfCancelled(signal);
          const img = await decodeTokens(cb, Int32Array.from(g.ids), g.grid, backend);
          const out = path.join(outDir, `${path.parse(g.image || `grid-${i}`).name}.png`);
          await writePng(out, img);
          written.push(out);
          if (images.length < MAX_THUMBS) images.push(img);
          progress({ phase: 'decode', done: i + 1, total: grids.length });
        }
        this.studio.addTokenSet(path.basename(tokens), grids, tokens);
        return {
          metrics: { grids: grids.length, grid: `${grids[0]!.grid[0]}×${grids[0]!.grid[1]}` },
          thumbnails: await this.thumbnails(images),
          files: written.slice(0, 8),
        };
      },
    );
    if (result) GenerationPanel.show(this.studio);
  }

  refine(folder?: string): Promise<void> {
    return this.reportErrors(async () => {
      const codebook = await this.activeCodebookOrOffer();
      if (!codebook) return;
      folder ??= await pick('folder', 'Refine the trainable codebook (pixel atlas) on the images in…');
      if (!folder) return;
      const encoder = await this.encoderSpec(codebook);
      if (!encoder) return;
      await this.runRefine({ folder, codebook, encoder });
    });
  }

  private async runRefine({ folder, codebook, encoder: spec }: RefineRun): Promise<void> {
    const result = await this.studio.jobs.run(
      {
        kind: 'refine', title: `Refine ${path.basename(codebook)} on ${path.basename(folder)}`, inputs: { folder, codebook },
        params: spec ? { encoder: spec } : {}, output: codebook,
      },
      async ({ signal, progress }) => {
        const cb = await this.studio.codebook(codebook);
        const images = await listImages(folder);
        if (!images.length) throw new UserError(`no images in ${folder}`);
        const encoder = await this.studio.encoderFor(cb, spec);
        const refined = await refineAtlas(cb, encoder, images, await this.studio.backend.get(), { signal, onProgress: stepsOf('refine', progress) });
        const { fingerprint: _unchanged, ...rest } = refined;
        await writeCodebook(codebook, rest);
        return { metrics: { images: images.length, atlas: refined.meta.atlas }, thumbnails: await this.thumbnails(images), files: [codebook] };
      },
    );
    if (result) await showCodebook(codebook);
  }

  demo(): Promise<void> {
    return this.reportErrors(() => this.runDemo({ output: path.join(workspaceDataDir() ?? this.studio.context.globalStorageUri.fsPath, 'demo') }));
  }

  private async runDemo({ output }: DemoRun): Promise<void> {
    let codebook: string | undefined;
    const result = await this.studio.jobs.run(
      { kind: 'demo', title: 'Demo: build, tokenize, decode the sample images', inputs: { output }, params: {}, output },
      async ({ signal, progress }) => {
        const demo = await runDemo(output, await this.studio.backend.get(), { signal, onProgress: progress });
        codebook = demo.codebook;
        return {
          metrics: {
            K: demo.summary.k, utilization: pct(demo.stats.utilization), perplexity: Math.round(demo.stats.perplexity),
            'mean PSNR': `${demo.meanPsnr.toFixed(2)} dB`, device: demo.summary.device,
          },
          thumbnails: await this.thumbnails(demo.samples.map((s) => s.image)),
          files: [demo.report, demo.codebook, demo.tokens],
        };
      },
    );
    if (!result || !codebook) return;
    if (!this.studio.codebookPath()) this.studio.setActiveCodebook(codebook);
    await showCodebook(codebook);
    void vscode.window.showInformationMessage(`UniCode²: demo report written to ${result.files![0]}`);
  }

  /** Runs a Lab cell again with what it recorded: inputs, parameters, codebook and encoder. */
  rerun(cell: LabCell): Promise<void> {
    return this.reportErrors(async () => {
      const r = new Recorded(cell);
      switch (cell.kind) {
        case 'build':
          return this.runBuild({
            folder: r.input('folder'), out: r.input('output'),
            params: {
              k: r.number('k'), lambda: r.number('lambda'), iterations: r.number('iterations'), tolerance: r.number('tolerance'), seed: r.number('seed'),
              encoder: r.text('encoder'), method: r.oneOf('method', ['auto', 'flat', 'two-level'] as const),
            },
          });
        case 'tokenize': {
          const source = cell.inputs.image !== undefined ? { image: r.input('image') } : { folder: r.input('folder') };
          const search = { search: r.oneOf('search', ['auto', 'exact'] as const), nprobe: r.number('nprobe') };
          return this.runTokenize({ source, codebook: r.input('codebook'), encoder: r.optionalText('encoder'), search });
        }
        case 'decode':
          return this.runDecode({ tokens: r.input('tokens'), codebook: r.input('codebook') });
        case 'refine':
          return this.runRefine({ folder: r.input('folder'), codebook: r.input('codebook'), encoder: r.optionalText('encoder') });
        case 'demo':
          return this.runDemo({ output: r.input('output') });
      }
    });
  }

  openGeneration(): void {
    GenerationPanel.show(this.studio);
  }

  async selectDevice(): Promise<void> {
    const current = readSettings().device;
    const items: (vscode.QuickPickItem & { value: string })[] = [
      { value: 'auto', label: 'auto', description: 'a hardware GPU when there is one, else the CPU' },
      { value: 'cpu', label: 'cpu', description: 'onnxruntime on the CPU' },
      { value: 'webgpu', label: 'webgpu', description: 'Dawn WebGPU compute (needs a GPU adapter)' },
    ].map((i) => ({ ...i, picked: i.value === current, label: i.value === current ? `$(check) ${i.label}` : i.label }));
    const choice = await vscode.window.showQuickPick(items, { title: 'UniCode²: compute device', placeHolder: `now: ${current}` });
    if (!choice || choice.value === current) return;
    // the device belongs to the machine, not the project: a user setting
    await vscode.workspace.getConfiguration('unicode2').update('device', choice.value, vscode.ConfigurationTarget.Global);
  }
}

/** A remembered encoder spec still usable: the built-in DCT, or a model path that still exists. */
function isAvailable(spec: string): boolean {
  return spec === 'dct' || spec.startsWith('dct:') || existsSync(spec);
}

/** Asks which encoder goes with a codebook that does not name a usable one. */
async function askEncoder(cb: Codebook, codebook: string, problem: string): Promise<string | undefined> {
  const d = cb.frozen.cols;
  type Item = vscode.QuickPickItem & { spec?: string; ask?: 'folder' | 'onnx' | 'type' };
  const items: Item[] = [
    ...(d === 768 ? [{ label: 'dct', spec: 'dct', description: 'the built-in DCT encoder, 224 × 224 input, d = 768' }] : []),
    { label: '$(folder) Model folder…', ask: 'folder', description: 'an ONNX export with its preprocessor_config.json' },
    { label: '$(file) .onnx file…', ask: 'onnx', description: 'a SigLIP-style vision tower' },
    { label: '$(edit) Type an encoder…', ask: 'type', description: "e.g. 'dct:256'" },
  ];
  const item = await vscode.window.showQuickPick(items, {
    title: `UniCode²: which encoder goes with ${path.basename(codebook)}?`,
    placeHolder: `${problem}; its vectors have d = ${d}. The choice is remembered for this codebook.`,
    // a panel that finishes loading takes the focus: the question must not vanish with it
    ignoreFocusOut: true,
  });
  if (!item) return undefined;
  if (item.spec) return item.spec;
  if (item.ask === 'type') return vscode.window.showInputBox({ title: 'UniCode²: encoder', prompt: "'dct', 'dct:<size>', a model folder or an .onnx file", ignoreFocusOut: true });
  const picked = await vscode.window.showOpenDialog({
    title: `The encoder of ${path.basename(codebook)}`, canSelectMany: false,
    canSelectFiles: item.ask === 'onnx', canSelectFolders: item.ask === 'folder',
    filters: item.ask === 'onnx' ? { 'ONNX model': ['onnx'] } : undefined,
  });
  return picked?.[0]?.fsPath;
}

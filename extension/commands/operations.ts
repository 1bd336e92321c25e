// The operations behind the commands, each with explicit inputs so that the palette (which
// prompts for them) and the Lab's "run again" (which replays a cell's inputs) share one code path.
import * as vscode from 'vscode';
import * as path from 'node:path';
import {
  buildCodebook, checkTokensMatchCodebook, codeStats, describeProgress, decodeTokens, listImages, loadImage, readTokenGrids, refineAtlas, runDemo, tokenizeImages, writeCodebook,
  throwIfCancelled, writePng, writeTokenDataset, writeTokenJson, UserError, type RgbImage, type TokenGrid,
} from '../engine/index.js';
import type { Studio } from '../state/studio.js';
import { showError } from '../state/errors.js';
import { defaultCodebookPath, readSettings, workspaceDataDir } from '../state/config.js';
import { pngDataUri, resample, thumbnail } from '../panels/images.js';
import { showCodebook } from '../panels/codebookPanel.js';
import { TokenGridPanel } from '../panels/tokenGridPanel.js';
import { GenerationPanel } from '../panels/generationPanel.js';

const FILTERS: Record<'image' | 'tokens' | 'codebook', Record<string, string[]>> = {
  image: { Images: ['png', 'jpg', 'jpeg', 'webp', 'tif', 'tiff', 'gif'] },
  tokens: { 'UniCode² tokens': ['json', 'npy'] },
  codebook: { Codebook: ['safetensors'] },
};
const MAX_THUMBS = 4;
/** Lab thumbnails are box-averaged from the photo scaled to this side (twice their size). */
const THUMB_SOURCE_SIDE = 128;
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

async function thumbs(images: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const file of images.slice(0, MAX_THUMBS)) {
    // scaled down while decoding (a 24-megapixel photo would be 290 MB of floats at full size)
    const img = await loadImage(file, { within: THUMB_SOURCE_SIDE }).catch(() => null);
    if (img) out.push(await pngDataUri(thumbnail(img)));
  }
  return out;
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

  build(folder?: string): Promise<void> {
    return this.reportErrors(async () => {
      folder ??= await pick('folder', 'Build a codebook from the images in…');
      if (!folder) return;
      const out = defaultCodebookPath();
      if (!out) throw new UserError('open a folder first: the codebook is written to <folder>/.unicode2/codebook.safetensors');
      const s = readSettings();
      const params = { k: s.k, lambda: s.lambda, iterations: s.iterations, tolerance: s.tolerance, seed: s.seed, encoder: s.encoder, method: s.method };
      const images = folder;
      const result = await this.studio.jobs.run(
        {
          kind: 'build', title: `Build codebook (K = ${s.k}) from ${path.basename(images)}`, inputs: { folder: images }, params,
          cancelledMessage: 'UniCode²: build cancelled — previous codebook kept',
        },
        async ({ signal, progress }) => {
          const backend = await this.studio.backend.get();
          const summary = await buildCodebook({ images, out, ...params }, backend, {
            signal,
            onProgress: (e) => progress(e.done, e.total, describeProgress(e)),
          });
          this.studio.setActiveCodebook(out);
          if (summary.skipped.length) this.studio.log.appendLine(`[build] skipped ${summary.skipped.map((x) => `${x.path}: ${x.reason}`).join('; ')}`);
          return {
            metrics: {
              K: summary.k, d: summary.d, method: summary.method, iterations: summary.iterations, MSE: summary.mse.toPrecision(4), utilization: pct(summary.utilization),
              perplexity: Math.round(summary.perplexity), dead: summary.dead, seconds: summary.seconds.toFixed(1), device: summary.device,
            },
            thumbnails: await thumbs(await listImages(images)),
            files: [out],
          };
        },
      );
      if (result) await showCodebook(out);
    });
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

  tokenizeImage(image?: string): Promise<void> {
    return this.reportErrors(async () => {
      const codebook = await this.activeCodebookOrOffer();
      if (!codebook) return;
      image ??= await pick('image', 'Tokenize an image');
      if (!image) return;
      const file = image;
      let grid: TokenGrid | undefined;
      const { search, nprobe } = readSettings();
      await this.studio.jobs.run(
        { kind: 'tokenize', title: `Tokenize ${path.basename(file)}`, inputs: { image: file, codebook }, params: { search, nprobe } },
        async ({ signal, progress }) => {
          const cb = await this.studio.codebook(codebook);
          const encoder = await this.studio.encoderFor(cb);
          const backend = await this.studio.backend.get();
          const { results, skipped } = await tokenizeImages(cb, encoder, [file], backend, { signal, withDistances: true, onProgress: progress, search: { search, nprobe } });
          grid = results[0];
          if (!grid) throw new UserError(`cannot tokenize ${file}: ${skipped[0]?.reason ?? 'unreadable image'}`);
          const files = await this.saveTokens(path.parse(file).name, [grid]);
          this.studio.addTokenSet(path.basename(file), [grid], files[0]);
          // the photo as it is, and its reconstruction (the encoder's square input) at the photo's aspect beside it
          const photo = thumbnail(await loadImage(file, { within: THUMB_SOURCE_SIDE }));
          const thumbnails = [await pngDataUri(photo)];
          if (cb.meta.atlas !== 'none') {
            const decoded = await decodeTokens(cb, Int32Array.from(grid.ids), grid.grid, backend);
            thumbnails.push(await pngDataUri(resample(decoded, photo.width, photo.height)));
          }
          const distances = grid.distances ?? [];
          return {
            metrics: {
              grid: `${grid.grid[0]}×${grid.grid[1]}`, 'distinct codes': new Set(grid.ids).size,
              ...(distances.length ? { 'mean distance²': (distances.reduce((a, b) => a + b, 0) / distances.length).toPrecision(4) } : {}),
            },
            thumbnails, tokenPreview: { grid: grid.grid, ids: grid.ids }, files,
          };
        },
      );
      if (grid) TokenGridPanel.show(this.studio, codebook, grid);
    });
  }

  tokenizeFolder(folder?: string): Promise<void> {
    return this.reportErrors(async () => {
      const codebook = await this.activeCodebookOrOffer();
      if (!codebook) return;
      folder ??= await pick('folder', 'Tokenize the images in…');
      if (!folder) return;
      const dir = folder;
      const { search, nprobe } = readSettings();
      await this.studio.jobs.run(
        { kind: 'tokenize', title: `Tokenize folder ${path.basename(dir)}`, inputs: { folder: dir, codebook }, params: { search, nprobe } },
        async ({ signal, progress }) => {
          const cb = await this.studio.codebook(codebook);
          const images = await listImages(dir);
          if (!images.length) throw new UserError(`no images in ${dir}`);
          const encoder = await this.studio.encoderFor(cb);
          const backend = await this.studio.backend.get();
          const { results, skipped } = await tokenizeImages(cb, encoder, images, backend, { signal, onProgress: progress, search: { search, nprobe } });
          if (!results.length) throw new UserError(`none of the ${images.length} images in ${dir} could be read`);
          const files = await this.saveTokens(path.basename(dir), results);
          // The data-set form researchers load in PyTorch: int32 [N, L] + an index of image paths.
          const dataDir = workspaceDataDir();
          if (dataDir) {
            const dataset = path.join(dataDir, 'tokens', `${path.basename(dir)}.tokens.npy`);
            await writeTokenDataset(dataset, results);
            files.push(dataset);
          }
          this.studio.addTokenSet(`${path.basename(dir)} (${results.length} images)`, results, files[0]);
          const stats = codeStats(await backend.histogram(Int32Array.from(results.flatMap((r) => r.ids)), cb.frozen.rows));
          return {
            metrics: { images: results.length, skipped: skipped.length, tokens: stats.tokens, utilization: pct(stats.utilization), perplexity: Math.round(stats.perplexity) },
            thumbnails: await thumbs(results.map((r) => r.image)),
            tokenPreview: { grid: results[0]!.grid, ids: results[0]!.ids },
            files,
          };
        },
      );
    });
  }

  /** Token JSON under <workspace>/.unicode2/tokens (none without a workspace: the set stays in memory). */
  private async saveTokens(name: string, grids: TokenGrid[]): Promise<string[]> {
    const dir = workspaceDataDir();
    if (!dir) return [];
    const file = path.join(dir, 'tokens', `${name}.tokens.json`);
    await writeTokenJson(file, grids);
    return [file];
  }

  decode(tokens?: string): Promise<void> {
    return this.reportErrors(async () => {
      const codebook = await this.activeCodebookOrOffer();
      if (!codebook) return;
      tokens ??= await pick('tokens', 'Decode tokens from a tokens file');
      if (!tokens) return;
      const file = tokens;
      const outDir = path.join(requireDataDir(), 'decoded');
      const result = await this.studio.jobs.run(
        { kind: 'decode', title: `Decode ${path.basename(file)}`, inputs: { tokens: file, codebook }, params: { decoder: 'atlas' } },
        async ({ signal, progress }) => {
          const cb = await this.studio.codebook(codebook);
          const grids = await readTokenGrids(file);
          checkTokensMatchCodebook(cb, grids, file);
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
            progress(i + 1, grids.length);
          }
          this.studio.addTokenSet(path.basename(file), grids, file);
          return {
            metrics: { grids: grids.length, grid: `${grids[0]!.grid[0]}×${grids[0]!.grid[1]}` },
            thumbnails: await Promise.all(images.map((img) => pngDataUri(thumbnail(img)))),
            files: written.slice(0, 8),
          };
        },
      );
      if (result) GenerationPanel.show(this.studio);
    });
  }

  refine(folder?: string): Promise<void> {
    return this.reportErrors(async () => {
      const codebook = await this.activeCodebookOrOffer();
      if (!codebook) return;
      folder ??= await pick('folder', 'Refine the trainable codebook (pixel atlas) on the images in…');
      if (!folder) return;
      const dir = folder;
      const result = await this.studio.jobs.run(
        { kind: 'refine', title: `Refine ${path.basename(codebook)} on ${path.basename(dir)}`, inputs: { folder: dir, codebook }, params: { atlas: 'mean pixel patch' } },
        async ({ signal, progress }) => {
          const cb = await this.studio.codebook(codebook);
          const images = await listImages(dir);
          if (!images.length) throw new UserError(`no images in ${dir}`);
          const refined = await refineAtlas(cb, await this.studio.encoderFor(cb), images, await this.studio.backend.get(), { signal, onProgress: progress });
          const { fingerprint: _unchanged, ...rest } = refined;
          await writeCodebook(codebook, rest);
          return { metrics: { images: images.length, atlas: refined.meta.atlas }, thumbnails: await thumbs(images), files: [codebook] };
        },
      );
      if (result) await showCodebook(codebook);
    });
  }

  demo(): Promise<void> {
    return this.reportErrors(async () => {
      const outDir = path.join(workspaceDataDir() ?? this.studio.context.globalStorageUri.fsPath, 'demo');
      let codebook: string | undefined;
      const result = await this.studio.jobs.run({ kind: 'demo', title: 'Demo: build, tokenize, decode the sample images', inputs: { output: outDir }, params: {} }, async ({ signal, progress }) => {
        const demo = await runDemo(outDir, await this.studio.backend.get(), {
          signal,
          onProgress: (e) => progress(e.done, e.total, e.message ?? `${e.phase} ${e.done}/${e.total}`),
        });
        codebook = demo.codebook;
        return {
          metrics: {
            K: demo.summary.k, utilization: pct(demo.stats.utilization), perplexity: Math.round(demo.stats.perplexity),
            'mean PSNR': `${demo.meanPsnr.toFixed(2)} dB`, device: demo.summary.device,
          },
          thumbnails: await thumbs(demo.samples.map((s) => s.image)),
          files: [demo.report, demo.codebook, demo.tokens],
        };
      });
      if (!result || !codebook) return;
      if (!this.studio.codebookPath()) this.studio.setActiveCodebook(codebook);
      await showCodebook(codebook);
      void vscode.window.showInformationMessage(`UniCode²: demo report written to ${result.files![0]}`);
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

// Host side of the Generation panel. Token grids come from a source (a tokenized image of this
// session, the grid edited in a token-grid panel, a tokens file), from a prior (opened from a file
// or fitted on this session's token sets), or from editing a source with a prior (inpainting a
// painted mask, variations); they are decoded through the atlas or a diffusion decoder folder.
// Every run is a Lab cell with a cancellable progress notification; diffusion runs send a preview
// of the current estimate every few steps. Results stay in a gallery with their settings, and
// "Save as PNG" writes one through a save dialog and an atomic write. An autoregressive prior
// folder (generation-ar.ts) draws its grid token by token inside the run: the panel sees each
// token as it arrives, and Cancel stops between tokens.
import * as vscode from 'vscode';
import * as fs from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import {
  ATLAS_DECODER, CancelledError, UserError, checkPriorMatchesCodebook, checkTokensMatchCodebook, decodeTokens, diffusionSettings, inpaintGrid, openTokenDecoder,
  loadImage, readPrior, readTokenGrids, samplePriorGrid, upscale, variationMask, writePng, writeTokenJson, type Codebook, type RgbImage, type TokenDecoder, type TokenGrid, type TokenPrior,
} from '../engine/index.js';
import {
  generationProtocol, type DecoderInfo, type GenerateRequest, type GenerationResult, type GenerationSettings, type GenerationSource, type PriorInfo,
} from '../../common/protocol/generation.js';
import type { LabCell } from '../../common/protocol/lab.js';
import type { Handlers, HostEndpoint } from '../../common/protocol/shared.js';
import type { Studio, TokenSet } from '../state/studio.js';
import type { JobContext } from '../state/jobs.js';
import { readSettings, workspaceDataDir } from '../state/config.js';
import { codebookName, madeFile, tokensFile } from '../state/codebook-names.js';
import { connectWebview, webviewOptions } from './webview-host.js';
import { pngDataUri, thumbnailUri } from './images.js';
import { ArPriors, drawArGrid, type ArRun } from './generation-ar.js';
import { fitOnSets, pickFitSets, recordedFitSets } from './generation-fit.js';

export const GENERATION_VIEW_TYPE = 'unicode2.generation';
const EDITED = 'edited';
/** diffusion previews: about this many per run */
const PREVIEWS_PER_RUN = 5;
const ALREADY_RUNNING = 'a generation is already running: wait for it or cancel it';

interface LoadedPrior {
  info: PriorInfo;
  /** the prior file, or the AR prior's folder */
  file: string;
  /** null: an AR prior folder (its model in ArPriors) */
  prior: TokenPrior | null;
}

/** A gallery result, kept for Save as PNG and Save Tokens. */
interface Kept {
  result: GenerationResult;
  image: RgbImage;
  /** the PNG the run wrote (none without a workspace folder) */
  file?: string;
  /** the grid it decodes and the codebook it was decoded with */
  tokens?: { grid: [number, number]; ids: readonly number[]; codebook: string };
}

/** A grid to decode, and what describes it in the gallery and the Lab. */
interface MadeGrid {
  ids: Int32Array;
  grid: [number, number];
  label: string;
  inputs: Record<string, string>;
  params: Record<string, string | number>;
  /** what the re-run needs besides (LabCell.replay) */
  replay?: Record<string, string | number>;
  /** an AR prior's grid is drawn inside the run: this draws it (ids holds the grid before) */
  draw?: (signal: AbortSignal, progress: JobContext['progress']) => Promise<Int32Array>;
  /** settings the gallery shows besides the request's */
  shown?: [string, string | number][];
}

export class GenerationPanel {
  private static current: GenerationPanel | null = null;
  private readonly results: Kept[] = [];
  private readonly priors: LoadedPrior[] = [];
  private readonly decoders = new Map<string, Promise<TokenDecoder>>();
  private readonly ar: ArPriors;
  private readonly endpoint: HostEndpoint<typeof generationProtocol>;
  private running: AbortController | null = null;

  /** Opens the panel or brings it to the front; `edited` (a grid edited in a token-grid panel)
   *  becomes its "Edited grid" source. */
  static show(studio: Studio, edited?: TokenGrid): GenerationPanel {
    const current = GenerationPanel.current;
    if (current) {
      if (edited) current.edited = edited;
      current.panel.reveal();
      // the grid just sent is the one chosen, whatever was before
      current.pushSources(edited ? EDITED : undefined);
      return current;
    }
    const panel = vscode.window.createWebviewPanel(GENERATION_VIEW_TYPE, 'Generation', vscode.ViewColumn.Active, {
      ...webviewOptions(studio.extensionUri),
      retainContextWhenHidden: true,
    });
    return new GenerationPanel(studio, panel, edited ?? null);
  }

  static serializer(studio: Studio): vscode.WebviewPanelSerializer {
    return {
      async deserializeWebviewPanel(panel) {
        panel.webview.options = webviewOptions(studio.extensionUri);
        new GenerationPanel(studio, panel);
      },
    };
  }

  /** Runs a Lab cell's generation again with the cell's codebook: its prior and tokens files are
   *  read again, its settings reused. */
  static async rerun(studio: Studio, cell: LabCell): Promise<void> {
    const panel = GenerationPanel.show(studio);
    // reading an AR prior folder again closes its session, which a run in progress may be using
    if (panel.running) throw new UserError(ALREADY_RUNNING);
    const p = cell.params;
    const mode = String(p.mode) as GenerateRequest['mode'];
    const prior = cell.inputs.prior ? (await panel.loadAnyPrior(cell.inputs.prior)).id : null;
    // which grid of the set and the painted cells: kept for the re-run (cells of earlier versions showed them)
    const replay = { ...p, ...cell.replay };
    let source: string | null = null;
    if (cell.inputs.tokens) {
      const set = studio.allTokenSets().find((s) => s.file === cell.inputs.tokens) ?? studio.addTokenSet(path.basename(cell.inputs.tokens), await readTokenGrids(cell.inputs.tokens), cell.inputs.tokens);
      source = `${set.id}#${Number(replay.index ?? 0)}`;
    }
    if (mode !== 'sample' && !source) throw new UserError('this run used a grid of an earlier session that was never saved to a file: generate it from the panel instead');
    const recorded = { ...Object.fromEntries(Object.entries(p).filter(([k]) => k in panel.defaults())), ...(cell.inputs.decoder ? { decoder: cell.inputs.decoder } : {}) };
    const settings: GenerationSettings = { ...panel.defaults(), ...recorded } as GenerationSettings;
    const mask = typeof replay.mask === 'string' && replay.mask ? replay.mask.split(' ').map(Number) : [];
    const grid = typeof p.grid === 'string' ? (p.grid.split('x').map(Number) as [number, number]) : null;
    // the cell's codebook, whichever is active now (cells of earlier versions: the active one)
    const codebook = cell.inputs.codebook || studio.requireCodebookPath();
    // named as the cell is (its grid's set was read back from a file, under the file's name)
    const label = cell.title.replace(/^Generate: /, '');
    panel.endpoint.notify('result', await panel.generate({ mode, source, prior, grid, mask, settings }, codebook, label));
  }

  /** "Open in a panel" on a Lab cell of a decode or a generation: the panel, with the cell's images
   *  in its gallery (read from their files when this panel has not shown them: a re-run, a reload). */
  static async showCell(studio: Studio, cell: LabCell): Promise<void> {
    const panel = GenerationPanel.show(studio);
    const about = { label: cell.title.replace(/^Generate: /, ''), settings: Object.entries(cell.params), device: String(cell.metrics?.device ?? ''), seconds: Number(cell.metrics?.seconds ?? 0) };
    for (const file of (cell.files ?? []).filter((f) => f.endsWith('.png'))) {
      if (panel.results.some((x) => x.file === file)) continue;
      const image = await loadImage(file).catch(() => null);
      if (!image) continue; // moved or deleted since: the cell's thumbnail is all there is
      // the cell's token preview is its first grid's
      const first = file === cell.files?.[0] && cell.tokenPreview;
      const shown = { ...about, ...(first ? { grid: first.grid } : {}), label: cell.kind === 'decode' ? `Decoded ${path.basename(file)}` : about.label };
      panel.endpoint.notify('result', await panel.keep(image, shown, { file, ...(first && cell.inputs.codebook ? { tokens: { ...first, codebook: cell.inputs.codebook } } : {}) }));
    }
  }

  private constructor(
    private readonly studio: Studio,
    readonly panel: vscode.WebviewPanel,
    /** the grid last sent from a token-grid panel */
    private edited: TokenGrid | null = null,
  ) {
    GenerationPanel.current = this;
    this.ar = new ArPriors(async () => (await studio.backend.get()).name, (m) => studio.log.appendLine(`[generation] ${m}`));
    const { endpoint, disposable } = connectWebview(panel.webview, studio.extensionUri, 'generation', generationProtocol, panel.title, studio.log, this.handlers());
    this.endpoint = endpoint;
    const onSets = studio.onDidChangeTokenSets(() => this.pushSources());
    const onCodebook = studio.onDidChangeActiveCodebook(() => {
      void this.codebookLabel().then((codebook) => endpoint.notify('codebook', { codebook }));
      this.pushSources();
    });
    // ONNX sessions were opened for the previous device: open them again on the next run.
    const onReset = studio.backend.onDidReset(() => this.closeDecoders());
    panel.onDidDispose(() => {
      GenerationPanel.current = null;
      this.running?.abort();
      this.closeDecoders();
      disposable.dispose();
      onSets.dispose();
      onCodebook.dispose();
      onReset.dispose();
    });
  }

  /** What the panel's requests do. */
  private handlers(): Handlers<typeof generationProtocol> {
    return {
      init: async () => ({
        sources: await this.listedSources(),
        priors: this.priors.map((p) => p.info),
        decoders: this.decoderList(),
        codebook: await this.codebookLabel(),
        results: this.results.map((x) => x.result),
        defaults: this.defaults(),
      }),
      addTokensFile: async () => {
        await this.studio.pickTokensFile();
        return this.listedSources();
      },
      openPrior: async () => {
        const picked = await vscode.window.showOpenDialog({ canSelectMany: false, openLabel: 'Use prior', filters: { 'UniCode² token prior': ['safetensors'] } });
        if (picked?.[0]) await this.loadPrior(picked[0].fsPath);
        return this.priors.map((p) => p.info);
      },
      openArPrior: async () => {
        const picked = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: 'Use autoregressive model folder' });
        if (picked?.[0]) this.listPrior({ info: await this.ar.add(picked[0].fsPath), file: picked[0].fsPath, prior: null });
        return this.priors.map((p) => p.info);
      },
      fitPrior: async () => {
        await this.fitPrior();
        return this.priors.map((p) => p.info);
      },
      addDecoder: async () => {
        const picked = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: 'Use decoder folder' });
        if (picked?.[0]) await this.decoder(picked[0].fsPath);
        return this.decoderList();
      },
      sourceView: async ({ source }) => {
        const { grid } = this.source(source);
        const cb = await this.activeCodebook();
        checkTokensMatchCodebook(cb, [grid], path.basename(grid.image));
        const image = await decodeTokens(cb, Int32Array.from(grid.ids), grid.grid, await this.studio.backend.get());
        return { grid: grid.grid, ids: grid.ids, image: await pngDataUri(image) };
      },
      generate: (request) => this.generate(request),
      cancel: () => {
        this.running?.abort();
        return null;
      },
      savePng: ({ result }) => this.save(result),
      saveTokens: ({ result }) => this.saveTokens(result),
    };
  }

  private defaults(): GenerationSettings {
    const { generation: g, seed } = readSettings();
    return {
      decoder: g.decoder, scheduler: g.scheduler, steps: g.steps, guidance: g.guidance, temperature: g.temperature, topK: g.topK, topP: g.topP,
      seed, variations: g.variations, upscale: 2, classId: null, priorGuidance: 1,
    };
  }

  private pushSources(select?: string): void {
    void this.listedSources().then((sources) => this.endpoint.notify('sources', { sources, ...(select ? { select } : {}) }));
  }

  /** The active codebook's name, as the header shows it (with its folder where another has the same name). */
  private async codebookLabel(): Promise<string> {
    const file = this.studio.codebookPath();
    return file ? (await this.studio.codebookLabels([file])).get(file)! : '';
  }

  /** The sources as the panel lists them: those made with another codebook than the active one
   *  disabled, saying which. */
  private async listedSources(): Promise<GenerationSource[]> {
    const file = this.studio.codebookPath();
    const cb = file ? await this.studio.codebook(file).catch(() => null) : null;
    return this.sources().map(({ source, grid }) => {
      const other = cb && this.studio.otherCodebookOf([grid], cb);
      return other ? { ...source, disabled: other } : source;
    });
  }

  private sources(): { source: GenerationSource; grid: TokenGrid }[] {
    const out: { source: GenerationSource; grid: TokenGrid }[] = [];
    const edited = this.edited;
    if (edited) out.push({ source: { id: EDITED, label: `Edited grid · ${path.basename(edited.image)}`, grid: edited.grid }, grid: edited });
    for (const set of this.studio.allTokenSets()) {
      set.grids.forEach((g, i) => {
        const label = set.grids.length === 1 ? path.basename(g.image) : `${set.label} · ${path.basename(g.image)}`;
        out.push({ source: { id: `${set.id}#${i}`, label, grid: g.grid }, grid: g });
      });
    }
    return out;
  }

  private source(id: string): { source: GenerationSource; grid: TokenGrid } {
    const found = this.sources().find((s) => s.source.id === id);
    if (!found) throw new UserError('that token source is no longer available');
    return found;
  }

  private async activeCodebook(): Promise<Codebook> {
    return this.studio.codebook(this.studio.requireCodebookPath());
  }

  private async loadPrior(file: string): Promise<PriorInfo> {
    const prior = await readPrior(file);
    const info: PriorInfo = {
      id: `prior:${file}`, label: `${path.basename(file)} · order ${prior.order}, ${prior.tokens.toLocaleString('en-US')} tokens`, k: prior.k, grid: prior.grid, kind: 'ngram', order: prior.order,
    };
    return this.listPrior({ info, file, prior });
  }

  /** A Lab cell's prior: an AR model folder or an n-gram prior file. */
  private async loadAnyPrior(file: string): Promise<PriorInfo> {
    const folder = await fs.stat(file).then((st) => st.isDirectory(), () => false);
    return folder ? this.listPrior({ info: await this.ar.add(file), file, prior: null }) : this.loadPrior(file);
  }

  private listPrior(entry: LoadedPrior): PriorInfo {
    const existing = this.priors.findIndex((p) => p.file === entry.file);
    if (existing >= 0) this.priors[existing] = entry;
    else this.priors.push(entry);
    return entry.info;
  }

  /** Fits a prior for the active codebook on the token sets the user picks (a Lab cell), and
   *  lists it. */
  private async fitPrior(): Promise<void> {
    const codebook = this.studio.requireCodebookPath();
    const sets = await pickFitSets(this.studio, codebook);
    if (sets) await this.fitAndList(codebook, sets, readSettings().generation.priorOrder);
  }

  private async fitAndList(codebook: string, sets: TokenSet[], order: number): Promise<void> {
    const file = await fitOnSets(this.studio, codebook, sets, order);
    if (!file) return;
    const info = await this.loadPrior(file);
    this.endpoint.notify('priors', { priors: this.priors.map((p) => p.info), select: info.id });
  }

  /** The Lab's new Fit run: the panel, and the question of which sets. */
  static async fit(studio: Studio): Promise<void> {
    await GenerationPanel.show(studio).fitPrior();
  }

  /** A Fit cell again: the same token set files, order and codebook. */
  static async refit(studio: Studio, cell: LabCell): Promise<void> {
    const r = { codebook: cell.inputs.codebook, order: cell.params.order };
    if (!r.codebook || typeof r.order !== 'number') throw new UserError('this Lab cell does not record its codebook and order (it was made by an earlier version); fit again from the Generation panel');
    const sets = await recordedFitSets(studio, cell);
    await GenerationPanel.show(studio).fitAndList(r.codebook, sets, r.order);
  }

  private decoderList(): DecoderInfo[] {
    return [
      { id: ATLAS_DECODER, label: 'Atlas (codebook)', kind: 'atlas' },
      ...[...this.decoders.keys()].map((folder) => ({ id: folder, label: path.basename(folder), kind: 'diffusion' as const })),
    ];
  }

  /** A diffusion decoder folder, opened once (checked when opened) on the current device. */
  private async decoder(folder: string): Promise<TokenDecoder> {
    let decoder = this.decoders.get(folder);
    if (!decoder) {
      decoder = this.studio.backend.get().then((b) => openTokenDecoder(folder, b, (m) => this.studio.log.appendLine(`[generation] ${m}`)));
      this.decoders.set(folder, decoder);
      decoder.catch(() => this.decoders.delete(folder));
    }
    return decoder;
  }

  private closeDecoders(): void {
    this.ar.close();
    const open = [...this.decoders.values()];
    this.decoders.clear();
    for (const d of open) void d.then((x) => x.dispose()).catch(() => undefined);
  }

  private prior(id: string | null): LoadedPrior {
    const found = this.priors.find((p) => p.info.id === id);
    if (!found) throw new UserError('choose a prior first: open one or fit one on the token sets');
    return found;
  }

  /** The grid a request asks for, and what describes it in the gallery and the Lab. */
  // long: one case per mode, each naming what its cell records
  private async makeGrid(r: GenerateRequest, cb: Codebook, codebookFile: string): Promise<MadeGrid> {
    const s = r.settings;
    const sampling = { seed: s.seed, temperature: s.temperature, topK: s.topK, topP: s.topP };
    const usePrior = () => {
      const p = this.prior(r.prior);
      const codebook = { k: cb.frozen.rows, fingerprint: cb.fingerprint };
      if (p.prior) checkPriorMatchesCodebook(p.prior, codebook, path.basename(p.file));
      else this.ar.check(p.file, { ...codebook, name: codebookName(codebookFile) });
      return p;
    };
    // (one of another codebook is not saved: useSource refuses it)
    const fits = this.edited && (!this.edited.codebook || this.edited.codebook === cb.fingerprint);
    const edited = r.source === EDITED && this.edited && fits ? await this.saveEdited(this.edited, codebookFile) : undefined;
    const useSource = () => {
      if (!r.source) throw new UserError('choose a token source first');
      const src = this.source(r.source);
      checkTokensMatchCodebook(cb, [src.grid], src.source.label);
      const [setId, index] = r.source.split('#');
      // an edited grid is saved with the run, so that its Lab cell can run it again
      const file = edited ?? this.studio.tokenSet(setId ?? '')?.file;
      const inputs: Record<string, string> = file ? { tokens: file } : {};
      return { ...src, inputs, index: Number(index ?? 0) };
    };
    switch (r.mode) {
      case 'decode': {
        const src = useSource();
        return { ids: Int32Array.from(src.grid.ids), grid: src.grid.grid, label: src.source.label, inputs: src.inputs, params: { mode: r.mode }, replay: { index: src.index } };
      }
      case 'sample': {
        const p = usePrior();
        const grid = r.grid ?? p.info.grid;
        const made = { ids: new Int32Array(grid[0] * grid[1]), grid, label: `Sampled ${grid[0]}×${grid[1]}`, inputs: { prior: p.file }, params: { mode: r.mode, grid: grid.join('x'), ...sampling } };
        return p.prior ? { ...made, ids: samplePriorGrid(p.prior, grid, sampling) } : this.arGrid(r, p, made, null);
      }
      case 'inpaint':
      case 'variations': {
        const p = usePrior();
        const src = useSource();
        const cells = src.grid.ids.length;
        let mask: Uint8Array;
        if (r.mode === 'inpaint') {
          if (r.mask.length === 0) throw new UserError('paint the cells to redraw on the grid first');
          mask = new Uint8Array(cells);
          for (const i of r.mask) {
            if (i >= cells) throw new UserError(`mask cell ${i} is outside the ${src.grid.grid.join('x')} grid`);
            mask[i] = 1;
          }
        } else {
          mask = variationMask(cells, s.variations, s.seed);
        }
        const what = r.mode === 'inpaint' ? `${r.mask.length} cells inpainted` : `variation (${Math.round(100 * s.variations)}%)`;
        const params: Record<string, string | number> = { mode: r.mode, ...sampling };
        const replay: Record<string, string | number> = { index: src.index };
        if (r.mode === 'inpaint') replay.mask = r.mask.join(' ');
        else params.variations = s.variations;
        const made = { ids: Int32Array.from(src.grid.ids), grid: src.grid.grid, label: `${src.source.label} · ${what}`, inputs: { ...src.inputs, prior: p.file }, params, replay };
        return p.prior ? { ...made, ids: inpaintGrid(p.prior, src.grid.ids, src.grid.grid, mask, sampling) } : this.arGrid(r, p, made, mask);
      }
    }
  }

  /** An AR prior's grid: drawn inside the run (class, guidance and sampling recorded for the Lab),
   *  each token sent to the panel as it arrives. */
  private arGrid(r: GenerateRequest, p: LoadedPrior, made: MadeGrid, mask: Uint8Array | null): MadeGrid {
    const s = r.settings;
    const classId = p.info.classes ? s.classId : null;
    const className = classId === null ? 'none' : (p.info.classes?.names[classId] ?? classId);
    const run: Omit<ArRun, 'signal'> = {
      grid: made.grid, edit: mask ? { ids: made.ids, mask } : null, sampling: { seed: s.seed, temperature: s.temperature, topK: s.topK, topP: s.topP }, classId, guidance: s.priorGuidance,
      onStart: (ids, cells) => this.endpoint.notify('arStart', { grid: made.grid, ids: Array.from(ids), cells }),
    };
    return {
      ...made,
      label: classId === null ? made.label : `${made.label} · ${className}`,
      params: { ...made.params, ...(classId === null ? {} : { classId, className }), priorGuidance: s.priorGuidance },
      shown: [['prior', path.basename(p.file)], ['class', className], ['prior guidance', s.priorGuidance]],
      draw: async (signal, progress) => drawArGrid(await this.ar.model(p.file), {
        ...run,
        signal,
        onToken: (cell, code, done, total) => {
          progress({ phase: 'sample', done, total, message: `token ${done} of ${total}` });
          this.endpoint.notify('arToken', { cell, code, done, total });
        },
      }),
    };
  }

  /** A run with the active codebook, or with `codebook` and the `label` of a Lab re-run (the cell's own). */
  private async generate(r: GenerateRequest, codebook = this.studio.requireCodebookPath(), label?: string): Promise<GenerationResult> {
    if (this.running) throw new UserError(ALREADY_RUNNING);
    const s = r.settings;
    if (![1, 2, 4].includes(s.upscale)) throw new UserError(`output size ${s.upscale}x is not offered (1x, 2x or 4x)`);
    const cb = await this.studio.codebook(codebook);
    const made = await this.makeGrid(r, cb, codebook);
    if (label) made.label = label;
    const diffusion = s.decoder !== ATLAS_DECODER;
    const panelAbort = new AbortController();
    this.running = panelAbort;
    let failure: unknown = null;
    let produced: GenerationResult | null = null;
    try {
      const outcome = await this.studio.jobs.run(
        {
          kind: 'generate',
          title: `Generate: ${made.label}`,
          // a diffusion decoder is a folder read (an input), the atlas a setting: each shown once
          inputs: { codebook, ...made.inputs, ...(diffusion ? { decoder: s.decoder } : {}) },
          params: { ...made.params, ...(diffusion ? { scheduler: s.scheduler, steps: s.steps, guidance: s.guidance } : { upscale: s.upscale, decoder: s.decoder }) },
          ...(made.replay ? { replay: made.replay } : {}),
        },
        async (ctx) => {
          try {
            const signal = AbortSignal.any([ctx.signal, panelAbort.signal]);
            if (made.draw) made.ids = await made.draw(signal, ctx.progress);
            const { result, image, file } = await this.decodeGrid(r, cb, codebook, made, { ...ctx, signal });
            produced = result;
            return {
              metrics: { seconds: Number(result.seconds.toFixed(2)), device: result.device },
              thumbnails: [(await thumbnailUri(image)).uri],
              tokenPreview: { grid: made.grid, ids: Array.from(made.ids) },
              ...(file ? { files: [file] } : {}),
            };
          } catch (err) {
            failure = err;
            throw err;
          }
        },
      );
      if (!outcome || !produced) throw failure instanceof Error ? failure : new CancelledError();
      return produced;
    } finally {
      this.running = null;
      this.endpoint.notify('progress', { done: 1, total: 1 });
    }
  }

  /** Decodes a made grid with the request's decoder, its progress (and a diffusion run's
   *  previews) reported to the job and the panel; the result joins the gallery. */
  private async decodeGrid(r: GenerateRequest, cb: Codebook, codebook: string, made: MadeGrid, ctx: JobContext): Promise<{ result: GenerationResult; image: RgbImage; file?: string }> {
    const s = r.settings;
    const diffusion = s.decoder !== ATLAS_DECODER;
    const started = Date.now();
    const decoder = diffusion ? await this.decoder(s.decoder) : await openTokenDecoder(ATLAS_DECODER, await this.studio.backend.get());
    const total = diffusion ? s.steps : 1;
    let sent: Promise<void> = Promise.resolve();
    const report = (done: number, message?: string, preview?: string) => {
      ctx.progress({ phase: 'generate', done, total, message });
      this.endpoint.notify('progress', { done, total, message, preview });
    };
    report(0, diffusion ? `Denoising with ${path.basename(s.decoder)}…` : 'Decoding through the atlas…');
    const decoded = await decoder.decode(cb, made.ids, made.grid, diffusionSettings({
      scheduler: s.scheduler, steps: s.steps, guidance: s.guidance, seed: s.seed, previewEvery: Math.max(1, Math.round(s.steps / PREVIEWS_PER_RUN)),
    }), {
      signal: ctx.signal,
      // previews are encoded off the step loop but sent in step order, all before the result
      onStep: (e) => {
        const preview = e.preview ? pngDataUri(e.preview) : Promise.resolve(undefined);
        sent = sent.then(async () => report(e.step, `Step ${e.step} of ${e.total}`, await preview));
      },
    });
    await sent;
    if (ctx.signal.aborted) throw new CancelledError();
    const image = diffusion ? decoded.image : upscale(decoded.image, s.upscale);
    report(total);
    const file = await writeGenerated(made.label, codebook, image);
    const result = await this.keep(image, {
      label: made.label, grid: made.grid, settings: [...(made.shown ?? []), ...shownSettings(r)], device: decoded.device, seconds: (Date.now() - started) / 1000,
    }, { ...(file ? { file } : {}), tokens: { grid: made.grid, ids: Array.from(made.ids), codebook } });
    return { result, image, ...(file ? { file } : {}) };
  }

  /** An image joins the gallery (kept here for Save as PNG and Save Tokens). */
  private async keep(image: RgbImage, about: Omit<GenerationResult, 'id' | 'image' | 'width' | 'height' | 'tokens'>, kept: Omit<Kept, 'result' | 'image'> = {}): Promise<GenerationResult> {
    const result: GenerationResult = { id: `result-${this.results.length + 1}`, image: await pngDataUri(image), width: image.width, height: image.height, ...about, tokens: kept.tokens !== undefined };
    this.results.push({ result, image, ...kept });
    return result;
  }

  /** Opens the panel on images decoded elsewhere (Decode Tokens…): they join its gallery. */
  static async showDecoded(studio: Studio, decoded: { image: RgbImage; about: Omit<GenerationResult, 'id' | 'image' | 'width' | 'height' | 'tokens'>; kept: Omit<Kept, 'result' | 'image'> }[]): Promise<void> {
    const panel = GenerationPanel.show(studio);
    for (const d of decoded) panel.endpoint.notify('result', await panel.keep(d.image, d.about, d.kept));
  }

  private kept(id: string): Kept {
    const found = this.results.find((x) => x.result.id === id);
    if (!found) throw new UserError('that result is gone (the panel was reloaded): generate it again');
    return found;
  }

  /** A grid edited in a token-grid panel, saved when a run uses it (once per edit: named by its
   *  codes) as `.unicode2/tokens/<image>.edited-<hash>.<codebook>.tokens.json`; none without a folder. */
  private async saveEdited(grid: TokenGrid, codebook: string): Promise<string | undefined> {
    const dir = workspaceDataDir();
    if (!dir) return undefined;
    const hash = createHash('sha256').update(Int32Array.from(grid.ids)).digest('hex').slice(0, 8);
    const file = tokensFile(path.join(dir, 'tokens'), `${path.parse(grid.image).name}.edited-${hash}`, codebook, '.tokens.json');
    if (!existsSync(file)) await writeTokenJson(file, [grid]);
    return file;
  }

  /** Saves a result's grid as a tokens file (JSON, with its codebook's fingerprint), through a save
   *  dialog that offers `.unicode2/tokens/`; it joins this session's token sets. */
  private async saveTokens(id: string): Promise<string | null> {
    const { result, tokens } = this.kept(id);
    if (!tokens) throw new UserError('this result has no token grid to save (it was read back from its PNG)');
    const cb = await this.studio.codebook(tokens.codebook);
    const dir = workspaceDataDir();
    const name = slug(result.label);
    const target = await vscode.window.showSaveDialog({
      ...(dir ? { defaultUri: vscode.Uri.file(tokensFile(path.join(dir, 'tokens'), name, tokens.codebook, '.tokens.json')) } : {}),
      filters: { 'UniCode² tokens': ['json'] },
      saveLabel: 'Save Tokens',
    });
    if (!target) return null;
    // no photo behind a made grid: its label stands where a tokenized image's path would
    const grid: TokenGrid = { image: result.label, grid: tokens.grid, ids: [...tokens.ids], codebook: cb.fingerprint, encoder: cb.meta.encoder.id, device: result.device };
    await writeTokenJson(target.fsPath, [grid]);
    this.studio.addTokenSet(path.basename(target.fsPath), [grid], target.fsPath);
    this.studio.log.appendLine(`[generation] saved ${target.fsPath}`);
    return target.fsPath;
  }

  private async save(id: string): Promise<string | null> {
    const found = this.kept(id);
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
    const suggested = `${path.parse(found.result.label.split(' · ')[0] ?? 'generated').name.replace(/[^\w.-]+/g, '-')}-generated.png`;
    const target = await vscode.window.showSaveDialog({
      defaultUri: folder ? vscode.Uri.joinPath(folder, suggested) : undefined,
      filters: { 'PNG image': ['png'] },
      saveLabel: 'Save PNG',
    });
    if (!target) return null;
    await writePng(target.fsPath, found.image);
    this.studio.log.appendLine(`[generation] saved ${target.fsPath}`);
    return target.fsPath;
  }
}

/** A label as a file name: `Sampled 14×21 · dog` -> `Sampled-14-21-dog`, `Edited grid · chelsea.png`
 *  -> `Edited-grid-chelsea` (an image's extension would read as the file's). */
function slug(label: string): string {
  return label.replace(/\.(png|jpe?g|webp|gif|tiff?|bmp|avif)\b/gi, '').replace(/[^\w.-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 80) || 'generated';
}

/** A generation's image under `.unicode2/generated/`, named after its label and codebook, never
 *  over an earlier one (none without a workspace folder). */
async function writeGenerated(label: string, codebook: string, image: RgbImage): Promise<string | undefined> {
  const dir = workspaceDataDir();
  if (!dir) return undefined;
  const file = madeFile(path.join(dir, 'generated'), slug(label), codebook, '.png', true);
  await writePng(file, image);
  return file;
}

/** The settings a gallery result lists: those that shaped it. */
function shownSettings({ mode, settings: s }: GenerateRequest): [string, string | number][] {
  const diffusion = s.decoder !== ATLAS_DECODER;
  const shown: [string, string | number][] = [['decoder', diffusion ? path.basename(s.decoder) : 'atlas']];
  if (diffusion) shown.push(['scheduler', s.scheduler], ['steps', s.steps], ['guidance', s.guidance]);
  if (mode !== 'decode') shown.push(['temperature', s.temperature], ['top-k', s.topK], ['top-p', s.topP]);
  if (mode !== 'decode' || diffusion) shown.push(['seed', s.seed]);
  return shown;
}

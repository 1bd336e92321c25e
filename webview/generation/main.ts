// Generation panel: make a token grid -- decode a source as it is, sample one from a prior, inpaint
// the cells painted on a source's grid, or draw variations of it -- and decode it through the atlas
// or a diffusion decoder folder (scheduler, steps, guidance); live previews while a diffusion
// decoder denoises, Cancel, and a gallery of results with their settings and Save as PNG.
import '../common/elements.js';
import {
  generationProtocol, type DecoderInfo, type GenerationMode, type GenerationResult, type GenerationSettings, type GenerationSource, type PriorInfo,
} from '../../common/protocol/generation.js';
import { connect, loadState, saveState } from '../common/vscode.js';
import { byId, h } from '../common/dom.js';
import { fitBackingStore, onThemeChange, themeColor } from '../common/viewport.js';

type Field = HTMLElement & { value: string };

interface ViewState {
  mode: GenerationMode;
  source: string | null;
  prior: string | null;
  grid: [number, number] | null;
  settings: GenerationSettings | null;
  /** painted cells of the current source (inpaint) */
  mask: number[];
}

const MODES: { mode: GenerationMode; label: string; description: string }[] = [
  { mode: 'decode', label: 'Decode tokens', description: 'a token grid as it is' },
  { mode: 'sample', label: 'Sample from a prior', description: 'a new grid' },
  { mode: 'inpaint', label: 'Inpaint a region', description: 'redraw painted cells' },
  { mode: 'variations', label: 'Variations', description: 'redraw a share of the cells' },
];
const usesSource = (m: GenerationMode) => m !== 'sample';
const usesPrior = (m: GenerationMode) => m !== 'decode';

const state = loadState<ViewState>({ mode: 'decode', source: null, prior: null, grid: null, settings: null, mask: [] });
let sources: GenerationSource[] = [];
let priors: PriorInfo[] = [];
let decoders: DecoderInfo[] = [];
let view: { grid: [number, number]; ids: number[]; image: HTMLImageElement } | null = null;
let running = false;

const host = connect(generationProtocol, {
  sources: (n) => renderSources(n.sources),
  // a run's progress; anything arriving after its result is stale
  progress: ({ done, total, message, preview }) => running && showProgress(done, total, message, preview),
});

const field = (id: string, label: string, attrs: Record<string, string | number> = {}) =>
  h('vscode-textfield', { id, 'aria-label': label, size: 6, ...attrs });
const labelled = (id: string, text: string, ...controls: HTMLElement[]) =>
  [h('label', { for: controls[0]?.id ?? id, 'data-row': id }, text), h('div', { class: 'row', 'data-row': id }, ...controls)];

document.body.append(
  h('header', { class: 'toolbar' }, h('h1', {}, 'Generation'), h('span', { class: 'spacer' }), h('span', { id: 'codebook', class: 'muted' })),
  h('main', { class: 'generation-layout' },
    h('div', { class: 'generation-controls' },
      h('section', { class: 'card form', 'aria-label': 'tokens' },
        h('h2', { class: 'form-title' }, 'Tokens'),
        ...labelled('mode', 'Make',
          h('vscode-single-select', { id: 'mode', 'aria-label': 'what to make' },
            ...MODES.map((m) => h('vscode-option', { value: m.mode, description: m.description }, m.label)))),
        ...labelled('source', 'Grid',
          h('vscode-single-select', { id: 'source', 'aria-label': 'token source' }),
          h('vscode-button', { id: 'add-file', secondary: true, icon: 'folder-opened' }, 'Tokens file…')),
        ...labelled('prior', 'Prior',
          h('vscode-single-select', { id: 'prior', 'aria-label': 'token prior' }),
          h('vscode-button', { id: 'open-prior', secondary: true, icon: 'folder-opened' }, 'Prior file…'),
          h('vscode-button', { id: 'fit-prior', secondary: true, icon: 'graph', title: "Fit a prior on this session's token sets" }, 'Fit')),
        ...labelled('grid', 'Size', field('rows', 'grid rows'), h('span', { class: 'muted' }, '×'), field('cols', 'grid columns'), h('span', { class: 'muted' }, 'tokens')),
        ...labelled('variations', 'Redraw', field('variations-share', 'share of cells to redraw'), h('span', { class: 'muted' }, '% of the cells')),
        ...labelled('sampling', 'Sampling',
          h('span', { class: 'muted' }, 'temperature'), field('temperature', 'temperature'),
          h('span', { class: 'muted' }, 'top-k'), field('top-k', 'top-k'),
          h('span', { class: 'muted' }, 'top-p'), field('top-p', 'top-p')),
        ...labelled('seed', 'Seed', field('seed-value', 'seed'), h('vscode-button', { id: 'new-seed', secondary: true, icon: 'refresh', title: 'A new random seed' }, 'New')),
      ),
      h('section', { id: 'mask-card', class: 'card', 'aria-label': 'mask' },
        h('h2', {}, 'Cells to redraw'),
        h('canvas', { id: 'mask', 'aria-label': 'token grid: drag to paint the cells to redraw' }),
        h('div', { class: 'row' },
          h('span', { id: 'mask-count', class: 'muted' }),
          h('span', { class: 'spacer' }),
          h('vscode-button', { id: 'clear-mask', secondary: true, icon: 'clear-all' }, 'Clear')),
      ),
      h('section', { class: 'card form', 'aria-label': 'decoder' },
        h('h2', { class: 'form-title' }, 'Decoder'),
        ...labelled('decoder', 'Decoder',
          h('vscode-single-select', { id: 'decoder', 'aria-label': 'decoder' }),
          h('vscode-button', { id: 'add-decoder', secondary: true, icon: 'folder-opened' }, 'Diffusion folder…')),
        ...labelled('scheduler', 'Sampler',
          h('vscode-single-select', { id: 'scheduler', 'aria-label': 'scheduler' },
            h('vscode-option', { value: 'ddim' }, 'DDIM'), h('vscode-option', { value: 'euler' }, 'Euler')),
          h('span', { class: 'muted' }, 'steps'), field('steps', 'steps'),
          h('span', { class: 'muted' }, 'guidance'), field('guidance', 'guidance scale')),
        ...labelled('upscale', 'Output',
          h('vscode-single-select', { id: 'upscale', 'aria-label': 'output size' },
            ...[1, 2, 4].map((u) => h('vscode-option', { value: u }, `${u}× (nearest)`)))),
        h('div', { class: 'row actions' },
          h('vscode-button', { id: 'generate', icon: 'sparkle' }, 'Generate'),
          h('vscode-button', { id: 'cancel', secondary: true, icon: 'debug-stop', hidden: true }, 'Cancel'),
          h('vscode-progress-bar', { id: 'progress', hidden: true }),
          h('span', { id: 'hint', class: 'muted' }),
          h('span', { id: 'status', class: 'muted', role: 'status' })),
      ),
    ),
    h('div', { class: 'generation-output' },
      h('figure', { id: 'live', class: 'card live', hidden: true },
        h('img', { id: 'preview', alt: 'current estimate of the image' }),
        h('figcaption', { id: 'live-caption', class: 'muted' })),
      h('section', { id: 'results', class: 'results', 'aria-live': 'polite' }),
    ),
  ),
);

const mode = byId<Field>('mode');
const maskCanvas = byId<HTMLCanvasElement>('mask');

// ---------------------------------------------------------------------------------------------
// The form

function numberOf(id: string, fallback: number): number {
  const v = Number(byId<Field>(id).value);
  return Number.isFinite(v) ? v : fallback;
}

function settings(): GenerationSettings {
  const d = state.settings!;
  return {
    decoder: byId<Field>('decoder').value || d.decoder,
    scheduler: byId<Field>('scheduler').value === 'euler' ? 'euler' : 'ddim',
    steps: Math.max(1, Math.round(numberOf('steps', d.steps))),
    guidance: numberOf('guidance', d.guidance),
    temperature: numberOf('temperature', d.temperature),
    topK: Math.max(0, Math.round(numberOf('top-k', d.topK))),
    topP: numberOf('top-p', d.topP),
    seed: Math.max(0, Math.round(numberOf('seed-value', d.seed))),
    variations: numberOf('variations-share', 100 * d.variations) / 100,
    upscale: Number(byId<Field>('upscale').value) || d.upscale,
  };
}

function fillForm(s: GenerationSettings): void {
  const set = (id: string, value: string | number) => (byId<Field>(id).value = String(value));
  set('scheduler', s.scheduler);
  set('steps', s.steps);
  set('guidance', s.guidance);
  set('temperature', s.temperature);
  set('top-k', s.topK);
  set('top-p', s.topP);
  set('seed-value', s.seed);
  set('variations-share', Math.round(100 * s.variations));
  set('upscale', s.upscale);
  if (state.grid) {
    set('rows', state.grid[0]);
    set('cols', state.grid[1]);
  }
}

function persist(): void {
  state.settings = settings();
  const rows = Math.round(numberOf('rows', 0));
  const cols = Math.round(numberOf('cols', 0));
  state.grid = rows > 0 && cols > 0 ? [rows, cols] : null;
  saveState(state);
}

/** Shows the rows the chosen mode and decoder use. */
function layout(): void {
  const m = state.mode;
  const diffusion = decoders.find((d) => d.id === byId<Field>('decoder').value)?.kind === 'diffusion';
  const shown: Record<string, boolean> = {
    source: usesSource(m), prior: usesPrior(m), grid: m === 'sample', variations: m === 'variations', sampling: usesPrior(m),
    seed: usesPrior(m) || diffusion, scheduler: diffusion, upscale: !diffusion,
  };
  for (const el of document.querySelectorAll<HTMLElement>('[data-row]')) {
    const row = el.dataset.row!;
    if (row in shown) el.hidden = !shown[row];
  }
  byId('mask-card').hidden = m !== 'inpaint';
  if (m === 'inpaint') void loadView();
  updateGenerate();
}

function options<T extends { id: string; label: string }>(id: string, items: T[], selected: string | null, describe: (t: T) => string): string | null {
  const select = byId<Field>(id);
  const chosen = items.some((t) => t.id === selected) ? selected : (items[0]?.id ?? null);
  select.replaceChildren(...items.map((t) => h('vscode-option', { value: t.id, selected: t.id === chosen, description: describe(t) }, t.label)));
  if (chosen) select.value = chosen;
  return chosen;
}

function renderSources(list: GenerationSource[]): void {
  sources = list;
  const before = state.source;
  state.source = options('source', list, state.source, (s) => `${s.grid[0]}×${s.grid[1]}`);
  if (state.source !== before) state.mask = [];
  saveState(state);
  if (state.mode === 'inpaint') void loadView();
  updateGenerate();
}

function renderPriors(list: PriorInfo[], select?: string): void {
  priors = list;
  state.prior = options('prior', list, select ?? state.prior, (p) => `K = ${p.k}, ${p.grid[0]}×${p.grid[1]}`);
  if (state.mode === 'sample' && !state.grid) {
    const p = list.find((x) => x.id === state.prior);
    if (p) {
      byId<Field>('rows').value = String(p.grid[0]);
      byId<Field>('cols').value = String(p.grid[1]);
    }
  }
  saveState(state);
  updateGenerate();
}

function renderDecoders(list: DecoderInfo[], select?: string): void {
  decoders = list;
  options('decoder', list, select ?? state.settings?.decoder ?? 'atlas', (d) => (d.kind === 'atlas' ? 'each code’s pixel patch' : 'diffusion (ONNX)'));
  persist();
  layout();
}

/** What keeps Generate from running, in words; null when it can run. */
function missing(): string | null {
  const m = state.mode;
  if (usesSource(m) && !state.source) return 'Tokenize an image or open a tokens file first.';
  if (usesPrior(m) && !state.prior) return 'Open a prior file or fit one on the token sets.';
  if (m === 'inpaint' && state.mask.length === 0) return 'Paint the cells to redraw on the grid.';
  return null;
}

function updateGenerate(): void {
  const why = missing();
  byId('generate').toggleAttribute('disabled', running || why !== null);
  byId('hint').textContent = running ? '' : (why ?? '');
}

// ---------------------------------------------------------------------------------------------
// The mask painter: the source's atlas decode with its grid; drag to paint cells, drag from a
// painted cell to erase.

async function loadView(): Promise<void> {
  if (!state.source) return;
  const id = state.source;
  try {
    const v = await host.request('sourceView', { source: id });
    const image = new Image();
    image.src = v.image;
    await image.decode();
    if (state.source !== id) return;
    view = { grid: v.grid, ids: v.ids, image };
    state.mask = state.mask.filter((i) => i < v.ids.length);
    drawMask();
  } catch (err) {
    byId('status').textContent = (err as Error).message;
  }
}

function drawMask(): void {
  if (!view) return;
  const [gh, gw] = view.grid;
  maskCanvas.style.aspectRatio = `${gw} / ${gh}`;
  const dpr = fitBackingStore(maskCanvas);
  const ctx = maskCanvas.getContext('2d')!;
  const w = maskCanvas.clientWidth;
  const hh = maskCanvas.clientHeight;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(view.image, 0, 0, w, hh);
  const cw = w / gw;
  const ch = hh / gh;
  const painted = new Set(state.mask);
  ctx.fillStyle = themeColor('--vscode-editorWarning-foreground', '#cca700');
  ctx.globalAlpha = 0.55;
  for (const i of painted) ctx.fillRect((i % gw) * cw, Math.floor(i / gw) * ch, cw, ch);
  ctx.globalAlpha = 1;
  ctx.strokeStyle = themeColor('--vscode-editor-background', '#000');
  ctx.globalAlpha = 0.35;
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (let x = 1; x < gw; x++) {
    ctx.moveTo(x * cw, 0);
    ctx.lineTo(x * cw, hh);
  }
  for (let y = 1; y < gh; y++) {
    ctx.moveTo(0, y * ch);
    ctx.lineTo(w, y * ch);
  }
  ctx.stroke();
  ctx.globalAlpha = 1;
  byId('mask-count').textContent = `${painted.size} of ${gw * gh} cells`;
  updateGenerate();
}

function cellAt(e: PointerEvent): number | null {
  if (!view) return null;
  const r = maskCanvas.getBoundingClientRect();
  const [gh, gw] = view.grid;
  const x = Math.floor(((e.clientX - r.left) / r.width) * gw);
  const y = Math.floor(((e.clientY - r.top) / r.height) * gh);
  return x >= 0 && x < gw && y >= 0 && y < gh ? y * gw + x : null;
}

let painting: 'add' | 'erase' | null = null;
function paint(e: PointerEvent): void {
  const cell = cellAt(e);
  if (cell === null || !painting) return;
  const has = state.mask.includes(cell);
  if (painting === 'add' && !has) state.mask.push(cell);
  else if (painting === 'erase' && has) state.mask = state.mask.filter((i) => i !== cell);
  else return;
  saveState(state);
  drawMask();
}
maskCanvas.addEventListener('pointerdown', (e) => {
  const cell = cellAt(e);
  if (cell === null) return;
  painting = state.mask.includes(cell) ? 'erase' : 'add';
  maskCanvas.setPointerCapture(e.pointerId);
  paint(e);
});
maskCanvas.addEventListener('pointermove', (e) => paint(e));
maskCanvas.addEventListener('pointerup', () => (painting = null));
onThemeChange(drawMask);
new ResizeObserver(() => drawMask()).observe(maskCanvas);

// ---------------------------------------------------------------------------------------------
// Running, progress and results

function showProgress(done: number, total: number, message?: string, preview?: string): void {
  const bar = byId('progress') as HTMLElement & { value: number; max: number };
  bar.hidden = done >= total;
  bar.max = total;
  bar.value = done;
  if (message) byId('status').textContent = message;
  if (preview) {
    byId<HTMLImageElement>('preview').src = preview;
    byId('live').hidden = false;
    byId('live-caption').textContent = `Current estimate · step ${done} of ${total}`;
  }
}

function addResult(r: GenerationResult): void {
  const save = h('vscode-button', { secondary: true, 'data-result': r.id, icon: 'save' }, 'Save as PNG');
  save.addEventListener('click', async () => {
    try {
      const saved = await host.request('savePng', { result: r.id });
      if (saved) byId('status').textContent = `Saved ${saved}`;
    } catch (err) {
      byId('status').textContent = (err as Error).message;
    }
  });
  const details = h('dl', { class: 'result-settings' },
    ...r.settings.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))]),
    h('dt', {}, 'grid'), h('dd', {}, `${r.grid[0]}×${r.grid[1]}`),
    h('dt', {}, 'device'), h('dd', { title: r.device }, r.device),
    h('dt', {}, 'time'), h('dd', {}, `${r.seconds.toFixed(2)} s`));
  byId('results').prepend(
    h('figure', { class: 'card result', 'data-result': r.id },
      h('img', { src: r.image, alt: r.label, width: r.width, height: r.height }),
      h('figcaption', {}, h('div', { class: 'row' }, h('strong', {}, r.label), h('span', { class: 'muted' }, `${r.width}×${r.height}`), h('span', { class: 'spacer' }), save), details)),
  );
}

mode.addEventListener('change', () => {
  state.mode = mode.value as GenerationMode;
  saveState(state);
  layout();
});
byId('source').addEventListener('change', () => {
  state.source = byId<Field>('source').value;
  state.mask = [];
  saveState(state);
  layout();
});
byId('prior').addEventListener('change', () => {
  state.prior = byId<Field>('prior').value;
  saveState(state);
  updateGenerate();
});
byId('decoder').addEventListener('change', () => {
  persist();
  layout();
});
for (const id of ['scheduler', 'steps', 'guidance', 'temperature', 'top-k', 'top-p', 'seed-value', 'variations-share', 'upscale', 'rows', 'cols']) {
  byId(id).addEventListener('change', persist);
}
byId('new-seed').addEventListener('click', () => {
  byId<Field>('seed-value').value = String(Math.floor(Math.random() * 1_000_000));
  persist();
});
byId('clear-mask').addEventListener('click', () => {
  state.mask = [];
  saveState(state);
  drawMask();
});
const guarded = (id: string, run: () => Promise<void>) =>
  byId(id).addEventListener('click', () => run().catch((err: Error) => (byId('status').textContent = err.message)));
guarded('add-file', async () => renderSources(await host.request('addTokensFile')));
guarded('open-prior', async () => {
  const before = new Set(priors.map((p) => p.id));
  const list = await host.request('openPrior');
  renderPriors(list, list.find((p) => !before.has(p.id))?.id);
});
guarded('fit-prior', async () => {
  byId('status').textContent = 'Fitting a prior on the token sets…';
  const list = await host.request('fitPrior');
  renderPriors(list, list[list.length - 1]?.id);
  byId('status').textContent = `Fitted ${list[list.length - 1]?.label ?? ''}`;
});
guarded('add-decoder', async () => {
  const before = new Set(decoders.map((d) => d.id));
  const list = await host.request('addDecoder');
  renderDecoders(list, list.find((d) => !before.has(d.id))?.id);
});
guarded('cancel', async () => {
  await host.request('cancel');
});
byId('generate').addEventListener('click', async () => {
  if (missing()) return;
  persist();
  running = true;
  updateGenerate();
  byId('cancel').hidden = false;
  byId('live').hidden = true;
  showProgress(0, 1, 'Starting…');
  try {
    addResult(await host.request('generate', {
      mode: state.mode,
      source: usesSource(state.mode) ? state.source : null,
      prior: usesPrior(state.mode) ? state.prior : null,
      grid: state.mode === 'sample' ? state.grid : null,
      mask: state.mode === 'inpaint' ? [...state.mask].sort((a, b) => a - b) : [],
      settings: state.settings!,
    }));
    byId('status').textContent = '';
  } catch (err) {
    byId('status').textContent = (err as Error).message;
  } finally {
    running = false;
    byId('cancel').hidden = true;
    showProgress(1, 1);
    updateGenerate();
  }
});

host
  .request('init')
  .then((init) => {
    byId('codebook').textContent = init.codebook ? `codebook ${init.codebook}` : 'no active codebook';
    state.settings = { ...init.defaults, ...(state.settings ?? {}) };
    mode.value = state.mode;
    fillForm(state.settings);
    renderSources(init.sources);
    renderPriors(init.priors);
    renderDecoders(init.decoders, state.settings.decoder);
    init.results.forEach(addResult);
  })
  .catch((err: Error) => (byId('status').textContent = err.message));

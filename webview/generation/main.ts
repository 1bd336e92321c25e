// Generation panel: make a token grid -- decode a source as it is, sample one from a prior, inpaint
// the cells painted on a source's grid, or draw variations of it -- and decode it through the atlas
// or a diffusion decoder folder (scheduler, steps, guidance); live previews while a diffusion
// decoder denoises, Cancel, and a gallery of results with their settings and Save as PNG.
// The page is built in page.ts, read and filled in form.ts; the mask painter is mask.ts, the
// progress and the gallery results.ts, an AR prior's grid filling in as it is drawn ar-grid.ts.
// This file holds the view state and wires them up.
import '../common/elements.js';
import {
  generationProtocol, type DecoderInfo, type GenerationMode, type GenerationResult, type GenerationSettings, type GenerationSource, type PriorInfo,
} from '../../common/protocol/generation.js';
import { connect, loadState, saveState } from '../common/vscode.js';
import { byId } from '../common/dom.js';
import { buildPage, showStatus } from './page.js';
import { fieldValue, fillForm, fillGrid, fillOptions, readGrid, readSettings, setField } from './form.js';
import { MaskPainter } from './mask.js';
import { addResult, showProgress } from './results.js';
import { LiveGrid } from './ar-grid.js';

interface ViewState {
  mode: GenerationMode;
  source: string | null;
  prior: string | null;
  grid: [number, number] | null;
  settings: GenerationSettings | null;
  /** painted cells of the current source (inpaint) */
  mask: number[];
}

const usesSource = (m: GenerationMode) => m !== 'sample';
const usesPrior = (m: GenerationMode) => m !== 'decode';

const state = loadState<ViewState>({ mode: 'decode', source: null, prior: null, grid: null, settings: null, mask: [] });
let priors: PriorInfo[] = [];
let decoders: DecoderInfo[] = [];
let running = false;
const live = new LiveGrid();
/** the most classes the Class list offers (ImageNet's 1,000 fit many times over) */
const MAX_LISTED_CLASSES = 10_000;

const host = connect(generationProtocol, {
  sources: (n) => renderSources(n.sources, n.select),
  codebook: ({ codebook }) => showCodebook(codebook),
  priors: ({ priors: list, select }) => renderPriors(list, select),
  // a run's progress; anything arriving after its result is stale
  progress: ({ done, total, message, preview }) => running && showProgress(done, total, message, preview),
  // an AR run's tokens come before its result, also in a Lab re-run (which this page did not start)
  arStart: ({ grid, ids, cells }) => live.start(grid, ids, cells),
  arToken: ({ cell, code, done, total }) => {
    live.token(cell, code, done, total);
    if (running) showProgress(done, total, `Token ${done} of ${total}`);
  },
  result: (r) => showResult(r),
});
/** The header names the active codebook the panel decodes with. */
function showCodebook(name: string): void {
  byId('codebook').textContent = name ? `codebook ${name}` : 'no active codebook';
}

function showResult(r: GenerationResult): void {
  addResult(r, { png: (result) => host.request('savePng', { result }), tokens: (result) => host.request('saveTokens', { result }) });
}

buildPage();
const mask = new MaskPainter(byId<HTMLCanvasElement>('mask'), state, {
  fetch: (source) => host.request('sourceView', { source }),
  save: () => saveState(state),
  drawn: updateGenerate,
});

function persist(): void {
  state.settings = readSettings(state.settings!);
  state.grid = readGrid();
  saveState(state);
}

/** Shows the rows the chosen mode and decoder use. */
function layout(): void {
  const m = state.mode;
  const diffusion = decoders.find((d) => d.id === fieldValue('decoder'))?.kind === 'diffusion';
  const conditional = priors.find((p) => p.id === state.prior)?.classes !== undefined;
  const shown: Record<string, boolean> = {
    source: usesSource(m), prior: usesPrior(m), ar: usesPrior(m) && conditional, grid: m === 'sample', variations: m === 'variations', sampling: usesPrior(m),
    seed: usesPrior(m) || diffusion, scheduler: diffusion, upscale: !diffusion,
  };
  for (const el of document.querySelectorAll<HTMLElement>('[data-row]')) {
    const row = el.dataset.row!;
    if (row in shown) el.hidden = !shown[row];
  }
  byId('mask-card').hidden = m !== 'inpaint';
  if (m === 'inpaint') void mask.load();
  updateGenerate();
}

function renderSources(list: GenerationSource[], select?: string): void {
  const before = state.source;
  state.source = fillOptions('source', list, select ?? state.source, (s) => `${s.grid[0]}×${s.grid[1]}`);
  if (state.source !== before) state.mask = [];
  saveState(state);
  if (state.mode === 'inpaint') void mask.load();
  updateGenerate();
}

function renderPriors(list: PriorInfo[], select?: string): void {
  priors = list;
  state.prior = fillOptions('prior', list, select ?? state.prior, (p) => `K = ${p.k}, ${p.grid[0]}×${p.grid[1]}`);
  const p = list.find((x) => x.id === state.prior);
  // a newly chosen prior brings its own grid
  if (p && (select !== undefined || (state.mode === 'sample' && !state.grid))) fillGrid(p.grid);
  renderClasses();
}

/** The Class list of an AR prior with classes: the null class first, then each by name or number. */
function renderClasses(): void {
  const classes = priors.find((x) => x.id === state.prior)?.classes;
  const items = classes
    ? [{ id: '', label: 'none (unconditional)' }, ...Array.from({ length: Math.min(classes.count, MAX_LISTED_CLASSES) }, (_, i) => ({ id: String(i), label: classes.names[i] ?? String(i) }))]
    : [];
  const chosen = state.settings?.classId;
  fillOptions('class', items, chosen === null || chosen === undefined ? '' : String(chosen), (t) => (t.id === '' ? 'the null class' : classes?.names[Number(t.id)] ? `class ${t.id}` : ''));
  if (state.settings) persist();
  layout();
}

function renderDecoders(list: DecoderInfo[], select?: string): void {
  decoders = list;
  fillOptions('decoder', list, select ?? state.settings?.decoder ?? 'atlas', (d) => (d.kind === 'atlas' ? 'each code’s pixel patch' : 'diffusion (ONNX)'));
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

async function generate(): Promise<void> {
  if (missing()) return;
  persist();
  running = true;
  updateGenerate();
  byId('cancel').hidden = false;
  byId('live').hidden = true;
  byId('ar-live').hidden = true;
  showProgress(0, 1, 'Starting…');
  try {
    showResult(await host.request('generate', {
      mode: state.mode,
      source: usesSource(state.mode) ? state.source : null,
      prior: usesPrior(state.mode) ? state.prior : null,
      grid: state.mode === 'sample' ? state.grid : null,
      mask: state.mode === 'inpaint' ? [...state.mask].sort((a, b) => a - b) : [],
      settings: state.settings!,
    }));
    showStatus('');
  } catch (err) {
    showStatus((err as Error).message);
  } finally {
    running = false;
    byId('cancel').hidden = true;
    showProgress(1, 1);
    updateGenerate();
  }
}

byId('mode').addEventListener('change', () => {
  state.mode = fieldValue('mode') as GenerationMode;
  saveState(state);
  layout();
});
byId('source').addEventListener('change', () => {
  state.source = fieldValue('source');
  state.mask = [];
  saveState(state);
  layout();
});
byId('prior').addEventListener('change', () => {
  state.prior = fieldValue('prior');
  saveState(state);
  renderClasses();
});
byId('decoder').addEventListener('change', () => {
  persist();
  layout();
});
for (const id of ['scheduler', 'steps', 'guidance', 'temperature', 'top-k', 'top-p', 'seed-value', 'variations-share', 'upscale', 'rows', 'cols', 'class', 'prior-guidance']) {
  byId(id).addEventListener('change', persist);
}
byId('new-seed').addEventListener('click', () => {
  setField('seed-value', Math.floor(Math.random() * 1_000_000));
  persist();
});
byId('clear-mask').addEventListener('click', () => mask.clear());
byId('generate').addEventListener('click', () => void generate());
const guarded = (id: string, run: () => Promise<void>) =>
  byId(id).addEventListener('click', () => run().catch((err: Error) => showStatus(err.message)));
guarded('add-file', async () => renderSources(await host.request('addTokensFile')));
guarded('open-prior', async () => {
  const before = new Set(priors.map((p) => p.id));
  const list = await host.request('openPrior');
  renderPriors(list, list.find((p) => !before.has(p.id))?.id);
});
guarded('open-ar-prior', async () => {
  const before = new Set(priors.map((p) => p.id));
  const list = await host.request('openArPrior');
  renderPriors(list, list.find((p) => !before.has(p.id))?.id);
});
guarded('fit-prior', async () => {
  showStatus('Choose the token sets to fit on…');
  const before = new Set(priors.map((p) => p.id));
  const list = await host.request('fitPrior');
  // each fit writes a prior of its own: the new one is the one fitted (none when the pick was dismissed)
  const fitted = list.find((p) => !before.has(p.id));
  renderPriors(list, fitted?.id);
  showStatus(fitted ? `Fitted ${fitted.label}` : 'No prior was fitted.');
});
guarded('add-decoder', async () => {
  const before = new Set(decoders.map((d) => d.id));
  const list = await host.request('addDecoder');
  renderDecoders(list, list.find((d) => !before.has(d.id))?.id);
});
guarded('cancel', async () => {
  await host.request('cancel');
});

host
  .request('init')
  .then((init) => {
    showCodebook(init.codebook);
    state.settings = { ...init.defaults, ...(state.settings ?? {}) };
    setField('mode', state.mode);
    fillForm(state.settings, state.grid);
    renderSources(init.sources);
    renderPriors(init.priors);
    renderDecoders(init.decoders, state.settings.decoder);
    init.results.forEach(showResult);
  })
  .catch((err: Error) => showStatus(err.message));

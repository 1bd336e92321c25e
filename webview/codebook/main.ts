// Codebook editor: heatmap of all K codes coloured by usage or by training drift (how far each
// trainable row moved from its frozen row), summary, rank-frequency plot, the coarse level when
// the codebook has one, and the detail of a clicked code (image patches that use it, nearest
// codes). Data comes from the host.
import '../common/elements.js';
import { codebookProtocol, type CoarseCellView, type CodebookView, type CodeDetail, type CodebookSummary, type DatasetInfo } from '../../common/protocol/codebook.js';
import { connect, loadState, saveState } from '../common/vscode.js';
import { Tooltip, byId, formatInt, formatPct, formatShare, h } from '../common/dom.js';
import { css, deadCodeColor, rampColor } from '../common/colors.js';
import { onThemeChange, themeColor, type ViewTransform } from '../common/viewport.js';
import { Heatmap, heatmapBackground } from './heatmap.js';
import { CoarseMap } from './coarse.js';
import { drawRankFrequency } from '../common/rank-frequency.js';

/** Codes of a coarse cell listed by name (the rest are counted). */
const CELL_CODES_LISTED = 40;

type Colouring = 'usage' | 'drift';
const DETAIL_HINT = 'Click a code to see the image patches that use it and its nearest codes.';

interface ViewState {
  view: ViewTransform | null;
  selected: number | null;
  dataset: string | null;
  coarse: number | null;
  colour?: Colouring;
}

const state = loadState<ViewState>({ view: null, selected: null, dataset: null, coarse: null, colour: 'usage' });
const host = connect(codebookProtocol, {
  datasets: ({ datasets }) => renderDatasets(datasets, current?.dataset ?? ''),
  fileChanged: () => {
    forgetView();
    void start();
  },
});

let current: CodebookView | null = null;
let heatmap: Heatmap | null = null;
let coarse: CoarseMap | null = null;
const tooltip = new Tooltip();

document.body.classList.add('codebook');
document.body.append(
  // the title and the data-set picker wrap onto two lines before either is cut
  h('header', { class: 'toolbar wraps' },
    h('h1', { id: 'title' }, 'Codebook'),
    h('span', { class: 'dataset-picker' },
      h('label', { for: 'dataset' }, 'Counts from'),
      h('vscode-single-select', { id: 'dataset', 'aria-label': 'data set' }),
      h('vscode-button', { id: 'add-dataset', secondary: true, title: 'Count codes over a tokens JSON file', icon: 'add' }, 'Tokens file…'),
    ),
  ),
  // what went wrong with the data set just chosen, where it was chosen (the counts shown stay)
  h('p', { id: 'dataset-error', class: 'error dataset-error', role: 'alert', hidden: true }),
  h('main', { class: 'codebook-layout' },
    h('section', { class: 'heatmap-pane' },
      h('canvas', { id: 'heatmap', tabindex: 0, 'aria-label': 'code utilization heatmap' }),
      h('p', { id: 'drift-note', class: 'muted drift-note', hidden: true }),
      h('div', { class: 'legend' },
        h('span', { id: 'colour-by', class: 'legend-item', hidden: true },
          h('label', { for: 'colouring' }, 'Colour by'),
          h('vscode-single-select', { id: 'colouring', 'aria-label': 'colour the codes by' },
            h('vscode-option', { value: 'usage' }, 'usage'),
            h('vscode-option', { value: 'drift' }, 'training drift'),
          ),
        ),
        h('span', { id: 'dead-item', class: 'legend-item' }, h('span', { id: 'dead-swatch', class: 'swatch dead' }), 'dead'),
        h('span', { id: 'ramp-item', class: 'legend-item' }, h('span', { id: 'ramp-scale', class: 'muted' }, ''), h('span', { id: 'ramp-min' }, ''), h('span', { id: 'ramp', class: 'ramp' }), h('span', { id: 'ramp-max' }, 'max')),
        h('span', { class: 'spacer' }),
        h('span', { class: 'hint' }, 'scroll to zoom · drag to pan · click a code'),
        h('vscode-button', { id: 'fit', secondary: true, title: 'Fit to view', icon: 'screen-full' }),
      ),
    ),
    h('aside', { class: 'side' },
      h('section', { id: 'summary', class: 'card' }, 'Loading…'),
      h('section', { id: 'coarse', class: 'card', hidden: true },
        h('h2', {}, 'Coarse level'),
        h('p', { id: 'coarse-about', class: 'muted note' }),
        h('canvas', { id: 'coarse-map', 'aria-label': 'coarse cells' }),
        h('div', { id: 'coarse-detail' }),
      ),
      h('section', { id: 'detail', class: 'card' }, h('p', { class: 'muted' }, DETAIL_HINT)),
      h('section', { class: 'card' }, h('h2', {}, 'Rank-frequency'), h('canvas', { id: 'rank-frequency' })),
    ),
  ),
  h('section', { id: 'notice', class: 'card notice', role: 'alert', hidden: true }),
);

const rampStops = Array.from({ length: 9 }, (_, i) => css(rampColor(i / 8)));
// CSSOM, not style attributes: the CSP forbids inline style attributes
byId('ramp').style.background = `linear-gradient(to right, ${rampStops.join(', ')})`;

/** The legend's dead swatch: the colour dead codes get on this theme's background, hatched like zoomed-in dead cells. */
function paintDeadSwatch(): void {
  const swatch = byId('dead-swatch');
  const stripe = themeColor('--vscode-editor-background', '#1e1e1e');
  swatch.style.background = `repeating-linear-gradient(-45deg, ${css(deadCodeColor(heatmapBackground()))} 0 3px, ${stripe} 3px 4px)`;
}
paintDeadSwatch();

function renderSummary(s: CodebookSummary): void {
  const row = (label: string, value: string): HTMLElement[] => [h('dt', {}, label), h('dd', {}, value)];
  byId('title').textContent = `Codebook · ${s.file}`;
  byId('summary').replaceChildren(
    h('h2', {}, 'Summary'),
    h('dl', {},
      ...row('K', formatInt(s.k)),
      ...row('d', formatInt(s.d)),
      ...row('encoder', s.encoder),
      ...row('lambda', String(s.lambda)),
      ...row('iterations', String(s.iterations)),
      ...(s.trainingVectors !== undefined ? row('trained on', `${formatInt(s.trainingVectors)} vectors (${perCode(s.trainingVectors, s.k)} per code)`) : []),
      ...row('tokens counted', formatInt(s.tokens)),
      ...row('utilization', `${formatPct(s.utilization)} (${formatInt(s.used)} used)`),
      ...row('perplexity', `${formatInt(s.perplexity)} of ${formatInt(s.k)}`),
      ...row('dead codes', formatInt(s.dead)),
      ...row('atlas', s.atlas),
      ...driftRows(row),
      ...row('fingerprint', s.fingerprint),
    ),
    ...(s.trainingWarning ? [h('p', { id: 'training-warning', class: 'warning' }, s.trainingWarning)] : []),
  );
}

/** Vectors per code, rounded down as the build's warning rounds them (never up to the threshold). */
const perCode = (vectors: number, k: number): string => (vectors / k < 10 ? (Math.floor((vectors / k) * 10) / 10).toFixed(1) : formatInt(Math.floor(vectors / k)));

/** The drift's summary: how many codes training moved, and how far. */
function driftRows(row: (label: string, value: string) => HTMLElement[]): HTMLElement[] {
  const distances = current?.drift?.distances;
  if (!distances?.length) return [];
  const moved = distances.filter((x) => x > 0).length;
  const mean = distances.reduce((a, b) => a + b, 0) / distances.length;
  const max = distances.reduce((a, b) => Math.max(a, b), 0);
  return [...row('moved by training', `${formatInt(moved)} of ${formatInt(distances.length)} codes`), ...row('drift mean / max', `${mean.toPrecision(3)} / ${max.toPrecision(3)}`)];
}

/** Colours the heatmap by usage or by training drift; without drift distances (spaces that
 *  differ) the drift view says why in place of the heatmap. */
function applyColouring(data: CodebookView): void {
  const drift = data.drift;
  byId('colour-by').hidden = !drift;
  const colour: Colouring = drift && state.colour === 'drift' ? 'drift' : 'usage';
  (byId('colouring') as unknown as { value: string }).value = colour;
  const distances = colour === 'drift' ? drift!.distances : null;
  const note = byId('drift-note');
  note.hidden = colour !== 'drift' || distances !== null;
  note.textContent = colour === 'drift' && !distances ? drift!.note : '';
  byId('heatmap').hidden = byId('ramp-item').hidden = !note.hidden;
  byId('dead-item').hidden = colour === 'drift';
  const values = distances ?? data.counts;
  const max = values.reduce((a, b) => Math.max(a, b), 0);
  // usage is drawn on a log scale (code counts are Zipf-like): the legend says so, and where it starts
  byId('ramp-scale').textContent = colour === 'drift' ? 'drift, linear:' : 'uses, log scale:';
  byId('ramp-min').textContent = colour === 'drift' ? '0' : '1';
  byId('ramp-max').textContent = colour === 'drift' ? max.toPrecision(3) : formatInt(max);
  byId('ramp').title = colour === 'drift'
    ? 'colour = distance / largest distance'
    : 'colour = log(1 + uses) / log(1 + largest); unused codes have the dead colour, not the ramp\'s';
  byId('heatmap').setAttribute('aria-label', colour === 'drift' ? 'training drift heatmap' : 'code utilization heatmap');
  byId('heatmap').dataset.colour = distances ? 'drift' : 'usage';
  if (heatmap) heatmap.drift = distances;
}

/** The data sets; one made with another codebook is listed, disabled, with which codebook made it. */
function renderDatasets(datasets: DatasetInfo[], selected: string): void {
  const select = byId('dataset');
  select.replaceChildren(...datasets.map((d) =>
    h('vscode-option', { value: d.id, selected: d.id === selected, disabled: d.disabled !== undefined, title: d.disabled ?? '' }, d.disabled ? `${d.label} (${d.disabled})` : d.label)));
  (select as unknown as { value: string }).value = selected;
}

/** Shows the error of a data set choice beside the picker (null: clears it). */
function datasetError(message: string | null): void {
  const line = byId('dataset-error');
  line.hidden = message === null;
  line.textContent = message ?? '';
}

/** Counts over a data set (a request that returns the view); on an error the counts shown stay,
 *  the picker goes back to them and the error shows under it. Only a choice that worked is saved. */
async function chooseDataset(request: () => Promise<CodebookView | null>): Promise<void> {
  try {
    const view = await request();
    if (!view) return;
    datasetError(null);
    state.dataset = view.dataset;
    saveState(state);
    show(view);
  } catch (err) {
    if (current) renderDatasets(current.datasets, current.dataset);
    datasetError((err as Error).message);
  }
}

function show(data: CodebookView): void {
  current = data;
  renderSummary(data.summary);
  renderDatasets(data.datasets, data.dataset);
  const canvas = byId<HTMLCanvasElement>('heatmap');
  if (heatmap && data.order.length === Number(canvas.dataset.k)) {
    heatmap.paint(data.counts);
  } else {
    heatmap?.viewport.dispose();
    heatmap = new Heatmap(canvas, data.order, data.counts, (t) => {
      state.view = t;
      saveState(state);
    });
    if (state.view) heatmap.viewport.t = state.view;
    else heatmap.viewport.fit();
  }
  applyColouring(data);
  heatmap.selected = state.selected !== null && state.selected < data.order.length ? state.selected : null;
  showCoarse(data);
  heatmap.draw();
  drawRankFrequency(byId<HTMLCanvasElement>('rank-frequency'), data.counts);
  if (heatmap.selected !== null) void selectCode(heatmap.selected);
}

/** The file was rewritten (a rebuild, a refine): its codes are other codes now, laid out anew, so
 *  the zoom, the selected code and coarse cell, and the code's detail are dropped. */
function forgetView(): void {
  Object.assign(state, { view: null, selected: null, coarse: null });
  saveState(state);
  heatmap?.viewport.dispose();
  heatmap = null;
  byId('detail').replaceChildren(h('p', { class: 'muted' }, DETAIL_HINT));
}

function showCoarse(data: CodebookView): void {
  const card = byId('coarse');
  card.hidden = !data.coarse;
  coarse = null;
  if (!data.coarse) return heatmap?.paint(data.counts, null);
  coarse = new CoarseMap(byId<HTMLCanvasElement>('coarse-map'), data.coarse.order, data.coarse.cells);
  const used = coarse.cells.filter((c) => c.tokens > 0).length;
  byId('coarse-about').textContent =
    `${formatInt(coarse.cells.length)} cells group the ${formatInt(data.summary.k)} codes (what a two-level search probes first); ` +
    `${formatInt(used)} of them are used. Colour = use of the cell's codes together. Click a cell for its codes.`;
  selectCoarse(state.coarse !== null && state.coarse < coarse.cells.length ? state.coarse : null);
}

/** Selects a coarse cell (null: none): lists its codes and fades every other code on the heatmap. */
function selectCoarse(cell: number | null): void {
  if (!coarse || !current || !heatmap) return;
  coarse.selected = cell;
  state.coarse = cell;
  saveState(state);
  heatmap.paint(current.counts, coarse.focusMask(current.order.length));
  heatmap.draw();
  coarse.draw();
  byId('coarse-detail').replaceChildren(...(cell === null ? [] : coarseDetail(cell, coarse.cells[cell]!)));
}

function coarseDetail(cell: number, c: CoarseCellView): HTMLElement[] {
  const { tokens: total } = current!.summary;
  const counts = current!.counts;
  // the cell's codes, most used first
  const codes = [...c.codes].sort((a, b) => counts[b]! - counts[a]! || a - b);
  const listed = codes.slice(0, CELL_CODES_LISTED).map((code) => {
    const link = h('a', { href: '#', 'data-code': code }, String(code));
    link.addEventListener('click', (e) => {
      e.preventDefault();
      void selectCode(code);
    });
    return link;
  });
  return [
    h('h3', {}, `Cell ${cell}`),
    h('p', {}, `${formatInt(c.codes.length)} code${c.codes.length === 1 ? '' : 's'}, ${formatInt(c.used)} used · ${formatInt(c.tokens)} tokens · ${formatShare(total > 0 ? c.tokens / total : 0)} of all`),
    h('p', { id: 'cell-codes', class: 'code-list' }, ...listed.flatMap((l, i) => (i ? [', ', l] : [l])),
      c.codes.length > CELL_CODES_LISTED ? ` and ${formatInt(c.codes.length - CELL_CODES_LISTED)} more` : ''),
  ];
}

async function selectCode(code: number): Promise<void> {
  if (!heatmap) return;
  heatmap.selected = code;
  state.selected = code;
  saveState(state);
  heatmap.draw();
  const detail = byId('detail');
  detail.replaceChildren(h('h2', {}, `Code ${code}`), h('vscode-progress-bar', { indeterminate: true }));
  try {
    renderDetail(await host.request('codeDetail', { code }));
  } catch (err) {
    detail.replaceChildren(h('h2', {}, `Code ${code}`), h('p', { class: 'error' }, (err as Error).message));
  }
}

function renderDetail(d: CodeDetail): void {
  const neighbours = h('ol', { class: 'neighbours' },
    ...d.neighbours.map((n) => {
      const link = h('a', { href: '#', 'data-code': n.code }, `code ${n.code}`);
      link.addEventListener('click', (e) => {
        e.preventDefault();
        void selectCode(n.code);
      });
      return h('li', {}, link, h('span', { class: 'muted' }, ` · dist² ${n.distance.toPrecision(3)} · ${formatInt(n.count)} use${n.count === 1 ? '' : 's'}`));
    }),
  );
  const patches = d.patches.length
    ? h('div', { class: 'patches' },
        ...d.patches.map((p) => h('img', { src: p.src, alt: `patch of ${p.image}`, title: `${p.image} (row ${p.row}, col ${p.col})` })))
    : h('p', { class: 'muted', id: 'patches-note' }, d.note ?? 'No tokenized image uses this code.');
  byId('detail').replaceChildren(
    h('h2', {}, `Code ${d.code}`),
    h('p', {}, `${formatInt(d.count)} use${d.count === 1 ? '' : 's'} · ${formatShare(d.share)} of tokens`),
    h('h3', {}, 'Image patches'),
    patches,
    d.patches.length || !d.corpus ? '' : tokenizeCorpusButton(d.code, d.corpus),
    h('h3', {}, 'Nearest codes'),
    neighbours,
  );
}

/** One click to tokenize the build corpus with this codebook (a Lab cell); the code's patches then show. */
function tokenizeCorpusButton(code: number, corpus: string): HTMLElement {
  const button = h('vscode-button', { id: 'tokenize-corpus', icon: 'symbol-array' }, `Tokenize ${corpus}/`);
  button.addEventListener('click', async () => {
    button.toggleAttribute('disabled', true);
    button.textContent = `Tokenizing ${corpus}/…`;
    try {
      await host.request('tokenizeCorpus');
      if (heatmap?.selected === code) await selectCode(code);
    } catch (err) {
      button.replaceWith(h('p', { class: 'error' }, (err as Error).message));
    }
  });
  return button;
}

// --- interaction -------------------------------------------------------------------------------
const canvas = byId<HTMLCanvasElement>('heatmap');
const local = (e: MouseEvent): [number, number] => {
  const r = canvas.getBoundingClientRect();
  return [e.clientX - r.left, e.clientY - r.top];
};
function hover(e: MouseEvent): void {
  if (!heatmap || !current || (e.buttons & 1) !== 0) return tooltip.hide();
  const code = heatmap.codeAt(...local(e));
  if (code === null) return tooltip.hide();
  const count = current.counts[code]!;
  const share = current.summary.tokens > 0 ? count / current.summary.tokens : 0;
  const drift = current.drift?.distances?.[code];
  tooltip.show(e.clientX, e.clientY, [`code ${code}`, `count ${formatInt(count)}`, `share ${formatShare(share)}`, ...(drift === undefined ? [] : [`drift ${drift.toPrecision(3)}`])]);
}
canvas.addEventListener('pointermove', hover);
// the viewport zooms first (its listener was added first), then the tooltip follows the new cell
canvas.addEventListener('wheel', hover);
canvas.addEventListener('pointerleave', () => tooltip.hide());
canvas.addEventListener('click', (e) => {
  if (!heatmap || heatmap.viewport.panned) return;
  const code = heatmap.codeAt(...local(e));
  if (code !== null) void selectCode(code);
});
byId('fit').addEventListener('click', () => heatmap?.viewport.fit());
byId('colouring').addEventListener('change', (e) => {
  state.colour = (e.target as unknown as { value: string }).value === 'drift' ? 'drift' : 'usage';
  saveState(state);
  if (!current || !heatmap) return;
  applyColouring(current);
  heatmap.paint();
  redraw();
});
byId('dataset').addEventListener('change', (e) => {
  const dataset = (e.target as unknown as { value: string }).value;
  if (!current || dataset === current.dataset) return;
  void chooseDataset(() => host.request('selectDataset', { dataset }));
});
byId('add-dataset').addEventListener('click', () => void chooseDataset(() => host.request('addTokensFile')));
const coarseCanvas = byId<HTMLCanvasElement>('coarse-map');
coarseCanvas.addEventListener('pointermove', (e) => {
  const cell = coarse?.cellAt(e) ?? null;
  if (cell === null) return tooltip.hide();
  const c = coarse!.cells[cell]!;
  tooltip.show(e.clientX, e.clientY, [`cell ${cell}`, `${formatInt(c.codes.length)} codes, ${formatInt(c.used)} used`, `${formatInt(c.tokens)} tokens`]);
});
coarseCanvas.addEventListener('pointerleave', () => tooltip.hide());
coarseCanvas.addEventListener('click', (e) => {
  const cell = coarse?.cellAt(e) ?? null;
  if (cell !== null) selectCoarse(coarse!.selected === cell ? null : cell);
});
function redraw(): void {
  heatmap?.draw();
  coarse?.draw();
  if (current) drawRankFrequency(byId<HTMLCanvasElement>('rank-frequency'), current.counts);
}
new ResizeObserver(redraw).observe(canvas);
new ResizeObserver(() => coarse?.draw()).observe(coarseCanvas);
// the dead colour is chosen against the theme's background: a new theme repaints the bitmap too
onThemeChange(() => {
  paintDeadSwatch();
  heatmap?.paint();
  redraw();
});

async function start(): Promise<void> {
  try {
    const init = await host.request('init');
    byId('notice').hidden = true;
    document.querySelector('header')!.hidden = false;
    document.querySelector('main')!.hidden = false;
    show(init);
    // the data set chosen before the tab was hidden, when it is still there and still fits; a choice
    // that no longer works is dropped (the codebook itself was shown above, whatever it says)
    const restore = state.dataset;
    if (restore && restore !== init.dataset && init.datasets.some((d) => d.id === restore && d.disabled === undefined)) {
      await host.request('selectDataset', { dataset: restore }).then(show, () => {
        state.dataset = null;
        saveState(state);
      });
    }
  } catch (err) {
    showFailure(err as Error);
  }
}

/** The file could not be shown (no UniCode² metadata, damaged, gone): say so in place of the editor. */
function showFailure(err: Error): void {
  const reopen = h('vscode-button', { id: 'reopen-with', icon: 'go-to-file' }, 'Reopen with…');
  reopen.addEventListener('click', () => void host.request('reopenWith'));
  document.querySelector('header')!.hidden = true;
  document.querySelector('main')!.hidden = true;
  const notice = byId('notice');
  notice.hidden = false;
  notice.replaceChildren(
    h('h1', {}, 'This file cannot be shown as a UniCode² codebook'),
    h('p', { class: 'error' }, err.message),
    h('p', { class: 'muted' },
      'UniCode² codebooks are the .safetensors files written by "UniCode²: Build Codebook from Folder…" or `unicode2 build`: ',
      'a frozen [K, d] tensor and UniCode² metadata (format version, encoder, K, d). Other .safetensors files, such as model ',
      'weights, open in another editor.'),
    reopen,
  );
}
void start();

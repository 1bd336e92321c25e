// Token grid panel: the photo at its own aspect ratio with its token grid overlaid (a colour per
// code), hover for id and distance, click to highlight every cell with that code, paint mode to
// edit the grid, and the atlas reconstruction beside it (re-decoded by the host on request) with
// its PSNR and what bounds its quality.
import '../common/elements.js';
import { tokenGridProtocol, type Reconstruction, type ReconstructionBounds, type TokenGridRestore, type TokenGridView } from '../../common/protocol/tokengrid.js';
import { connect, loadState, saveState } from '../common/vscode.js';
import { Tooltip, byId, h } from '../common/dom.js';
import { onThemeChange } from '../common/viewport.js';
import { aspectOf, cellAt, drawTokenOverlay, loadPhoto, setAspect } from '../common/token-overlay.js';

interface ViewState {
  restore: TokenGridRestore | null;
  ids: number[] | null;
  /** the fingerprint of the codebook `ids` were edited with: edits of another (a rebuilt one) are dropped */
  base?: string;
  opacity: number;
  showIds: boolean;
  paint: boolean;
  paintCode: number | null;
  highlight: number | null;
}

const state = loadState<ViewState>({ restore: null, ids: null, opacity: 0.45, showIds: false, paint: false, paintCode: null, highlight: null });
const host = connect(tokenGridProtocol, {});
const tooltip = new Tooltip();
let data: TokenGridView | null = null;
let ids: number[] = [];
let photo: HTMLImageElement | null = null;

document.body.append(
  h('header', { class: 'toolbar' },
    h('h1', { id: 'title' }, 'Tokens'),
    h('span', { class: 'spacer' }),
    h('label', { for: 'opacity' }, 'Overlay'),
    h('input', { id: 'opacity', type: 'range', min: 0, max: 1, step: 0.05, 'aria-label': 'overlay opacity' }),
    h('label', { class: 'check' }, h('input', { id: 'show-ids', type: 'checkbox' }), 'ids'),
  ),
  h('main', { id: 'figures', class: 'tokengrid-layout' },
    h('figure', {},
      h('canvas', { id: 'token-grid', class: 'keeps-aspect framed', 'aria-label': 'token grid' }),
      h('figcaption', { id: 'grid-caption' }, 'Image and tokens'),
    ),
    h('figure', {},
      h('img', { id: 'reconstruction', class: 'keeps-aspect framed', alt: 'reconstruction from tokens' }),
      h('figcaption', { id: 'reconstruction-caption' }, 'Reconstruction (atlas decoder)'),
      h('p', { id: 'quality-note', class: 'muted note' }),
    ),
  ),
  h('footer', { class: 'toolbar paintbar' },
    h('vscode-button', { id: 'paint', secondary: true, title: 'Paint cells with a code', icon: 'edit' }, 'Paint'),
    h('label', { for: 'paint-code' }, 'Code'),
    h('vscode-textfield', { id: 'paint-code', placeholder: 'id', size: 8, 'aria-label': 'code to paint' }),
    h('span', { id: 'edits', class: 'muted' }),
    h('span', { class: 'spacer' }),
    h('vscode-button', { id: 'reset', secondary: true, title: 'Undo all edits', icon: 'discard' }, 'Reset'),
    h('vscode-button', { id: 'decode', icon: 'play' }, 'Decode again'),
    h('vscode-button', { id: 'to-generation', secondary: true, title: 'Use this grid in the Generation panel', icon: 'sparkle' }, 'Generation'),
  ),
);

const canvas = byId<HTMLCanvasElement>('token-grid');
const opacity = byId<HTMLInputElement>('opacity');
const showIds = byId<HTMLInputElement>('show-ids');
const paintCode = byId('paint-code') as HTMLElement & { value: string };
opacity.value = String(state.opacity);
showIds.checked = state.showIds;

function persist(): void {
  state.ids = ids;
  saveState(state);
}

function edits(): number {
  return data ? ids.reduce((n, id, i) => n + (id !== data!.ids[i] ? 1 : 0), 0) : 0;
}

function draw(): void {
  if (!data || !photo) return;
  drawTokenOverlay(canvas, photo, { grid: data.grid, ids, original: data.ids, opacity: state.opacity, highlight: state.highlight, showIds: state.showIds });
  const n = edits();
  byId('edits').textContent = n ? `${n} cell${n === 1 ? '' : 's'} edited` : '';
}

const cellUnder = (e: MouseEvent): number | null => (data ? cellAt(canvas, data.grid, e) : null);

function setPaintMode(on: boolean): void {
  state.paint = on;
  canvas.classList.toggle('painting', on);
  byId('paint').toggleAttribute('secondary', !on);
  persist();
}

function readPaintCode(): number | null {
  const v = Number(paintCode.value);
  return paintCode.value !== '' && Number.isInteger(v) && data && v >= 0 && v < data.bounds.k ? v : null;
}

function paintAt(e: PointerEvent): void {
  const cell = cellUnder(e);
  const code = readPaintCode();
  if (cell === null || code === null || ids[cell] === code) return;
  ids[cell] = code;
  persist();
  draw();
}

canvas.addEventListener('pointerdown', (e) => {
  if (state.paint) {
    canvas.setPointerCapture(e.pointerId);
    paintAt(e);
  }
});
canvas.addEventListener('pointermove', (e) => {
  if (state.paint && (e.buttons & 1) !== 0) paintAt(e);
  const cell = cellUnder(e);
  if (cell === null || !data) return tooltip.hide();
  const [, gw] = data.grid;
  const lines = [`code ${ids[cell]}`, `cell row ${Math.floor(cell / gw)}, col ${cell % gw}`];
  if (ids[cell] !== data.ids[cell]) lines.push(`edited (was code ${data.ids[cell]})`);
  else if (data.distances) lines.push(`distance² ${data.distances[cell]!.toPrecision(4)}`);
  tooltip.show(e.clientX, e.clientY, lines);
});
canvas.addEventListener('pointerleave', () => tooltip.hide());
canvas.addEventListener('click', (e) => {
  if (state.paint) return;
  const cell = cellUnder(e);
  if (cell === null) return;
  const id = ids[cell]!;
  state.highlight = state.highlight === id ? null : id;
  paintCode.value = String(id);
  persist();
  draw();
});
opacity.addEventListener('input', () => {
  state.opacity = Number(opacity.value);
  persist();
  draw();
});
showIds.addEventListener('change', () => {
  state.showIds = showIds.checked;
  persist();
  draw();
});
byId('paint').addEventListener('click', () => setPaintMode(!state.paint));
paintCode.addEventListener('input', () => {
  const code = readPaintCode();
  paintCode.toggleAttribute('invalid', paintCode.value !== '' && code === null);
  state.paintCode = code;
  persist();
});
byId('reset').addEventListener('click', () => {
  if (!data) return;
  ids = [...data.ids];
  persist();
  draw();
});
byId('decode').addEventListener('click', async () => {
  const button = byId('decode');
  button.toggleAttribute('disabled', true);
  try {
    showReconstruction(await host.request('decode', { ids }));
  } finally {
    button.toggleAttribute('disabled', false);
  }
});
byId('to-generation').addEventListener('click', () => void host.request('openInGeneration', { ids }));
new ResizeObserver(draw).observe(canvas);
onThemeChange(draw);

const ATLAS: Record<string, string> = {
  dct: 'each code is drawn as its codeword, the mean of the DCT patches it won',
  refined: 'each code is drawn as the mean pixel patch of the patches it won',
};

/** What the reconstruction is, how close it comes (PSNR) and what bounds it. */
function showReconstruction(r: Reconstruction | null): void {
  const img = byId<HTMLImageElement>('reconstruction');
  const caption = byId('reconstruction-caption');
  img.hidden = !r;
  if (!r) {
    caption.textContent = data?.bounds.atlas === 'trained'
      ? 'No reconstruction: this codebook\'s trainable half holds trained task embeddings, not pixel patches (decode with a diffusion decoder).'
      : 'No reconstruction: this codebook has no pixel atlas yet (run "UniCode²: Refine Trainable Codebook…").';
    return;
  }
  img.src = r.image;
  caption.textContent = `Reconstruction · atlas decoder · PSNR ${r.psnr === null ? '∞ (exact)' : `${r.psnr.toFixed(1)} dB`}`;
}

function qualityNote(b: ReconstructionBounds): string {
  const k = b.k.toLocaleString('en-US');
  return `Its quality is bounded by K = ${k} codes (each ${b.patch} × ${b.patch} patch becomes one of ${k}), ` +
    `by the encoder (${b.encoder} sees the photo at ${b.input[1]} × ${b.input[0]}) and by the atlas decoder ` +
    `(one fixed patch per code: ${ATLAS[b.atlas] ?? `atlas ${b.atlas}`}). PSNR is measured against the encoder's input.`;
}

async function start(): Promise<void> {
  data = await host.request('init');
  state.restore = data.restore;
  const [gh, gw] = data.grid;
  ids = state.ids && state.ids.length === gh * gw && state.base === data.codebook ? state.ids : [...data.ids];
  state.base = data.codebook;
  if (state.paintCode !== null) paintCode.value = String(state.paintCode);
  setPaintMode(state.paint);
  byId('title').textContent = `Tokens · ${data.imageLabel}`;
  byId('grid-caption').textContent = `${gh} × ${gw} tokens · K = ${data.bounds.k.toLocaleString('en-US')} · codebook ${data.codebook}`;
  canvas.dataset.gridH = String(gh);
  canvas.dataset.gridW = String(gw);
  // edits kept from before the tab was hidden: their reconstruction, not the unedited grid's
  showReconstruction(edits() && data.reconstruction ? await host.request('decode', { ids }).catch(() => data!.reconstruction) : data.reconstruction);
  byId('quality-note').textContent = data.reconstruction ? qualityNote(data.bounds) : '';
  photo = await loadPhoto(data.image);
  setAspect(byId('figures'), aspectOf(photo, data.grid));
  draw();
}
start().catch((err: Error) => byId('grid-caption').replaceChildren(h('span', { class: 'error' }, err.message)));

// Token grid panel: the image with its token grid overlaid (a colour per code), hover for id and
// distance, click to highlight every cell with that code, paint mode to edit the grid, and the
// atlas reconstruction beside it, re-decoded by the host on request.
import '../common/elements.js';
import { tokenGridProtocol, type TokenGridRestore, type TokenGridView } from '../../common/protocol/tokengrid.js';
import { connect, loadState, saveState } from '../common/vscode.js';
import { Tooltip, byId, h } from '../common/dom.js';
import { codeColor, css } from '../common/colors.js';
import { fitBackingStore, onThemeChange, themeColor } from '../common/viewport.js';

interface ViewState {
  restore: TokenGridRestore | null;
  ids: number[] | null;
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
let source: HTMLImageElement | null = null;

document.body.append(
  h('header', { class: 'toolbar' },
    h('h1', { id: 'title' }, 'Tokens'),
    h('span', { class: 'spacer' }),
    h('label', { for: 'opacity' }, 'Overlay'),
    h('input', { id: 'opacity', type: 'range', min: 0, max: 1, step: 0.05, 'aria-label': 'overlay opacity' }),
    h('label', { class: 'check' }, h('input', { id: 'show-ids', type: 'checkbox' }), 'ids'),
  ),
  h('main', { class: 'tokengrid-layout' },
    h('figure', {},
      h('div', { class: 'stack' }, h('canvas', { id: 'token-grid', 'aria-label': 'token grid' })),
      h('figcaption', { id: 'grid-caption' }, 'Image and tokens'),
    ),
    h('figure', {},
      h('div', { class: 'stack' }, h('img', { id: 'reconstruction', alt: 'reconstruction from tokens' })),
      h('figcaption', {}, 'Reconstruction (atlas decoder)'),
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
  if (!data || !source) return;
  const [gh, gw] = data.grid;
  const dpr = fitBackingStore(canvas);
  const ctx = canvas.getContext('2d')!;
  const w = canvas.clientWidth;
  const hh = canvas.clientHeight;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(source, 0, 0, w, hh);
  const cw = w / gw;
  const ch = hh / gh;
  const dimmed = state.highlight !== null;
  for (let r = 0; r < gh; r++) {
    for (let c = 0; c < gw; c++) {
      const id = ids[r * gw + c]!;
      const alpha = dimmed ? (id === state.highlight ? Math.max(0.6, state.opacity) : state.opacity * 0.25) : state.opacity;
      ctx.fillStyle = css(codeColor(id), alpha);
      ctx.fillRect(c * cw, r * ch, cw, ch);
      if (id !== data.ids[r * gw + c]) {
        // an edited cell: a corner mark, so edits stay visible at any opacity
        ctx.fillStyle = themeColor('--vscode-editorWarning-foreground', '#cca700');
        ctx.beginPath();
        ctx.moveTo(c * cw, r * ch);
        ctx.lineTo(c * cw + Math.min(10, cw / 2), r * ch);
        ctx.lineTo(c * cw, r * ch + Math.min(10, ch / 2));
        ctx.fill();
      }
    }
  }
  ctx.strokeStyle = 'rgba(0, 0, 0, 0.35)';
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (let c = 1; c < gw; c++) (ctx.moveTo(c * cw, 0), ctx.lineTo(c * cw, hh));
  for (let r = 1; r < gh; r++) (ctx.moveTo(0, r * ch), ctx.lineTo(w, r * ch));
  ctx.stroke();
  if (state.highlight !== null) {
    ctx.strokeStyle = themeColor('--vscode-focusBorder', '#007fd4');
    ctx.lineWidth = 2;
    ids.forEach((id, i) => id === state.highlight && ctx.strokeRect((i % gw) * cw + 1, Math.floor(i / gw) * ch + 1, cw - 2, ch - 2));
  }
  if (state.showIds) {
    ctx.font = `${Math.max(7, Math.min(12, cw / 4.2))}px ${themeColor('--vscode-editor-font-family', 'monospace')}`;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ids.forEach((id, i) => {
      const x = (i % gw) * cw + cw / 2;
      const y = Math.floor(i / gw) * ch + ch / 2;
      ctx.lineWidth = 3;
      ctx.strokeStyle = 'rgba(0,0,0,0.75)';
      ctx.strokeText(String(id), x, y);
      ctx.fillStyle = '#fff';
      ctx.fillText(String(id), x, y);
    });
  }
  const n = edits();
  byId('edits').textContent = n ? `${n} cell${n === 1 ? '' : 's'} edited` : '';
  canvas.dataset.drawn = 'true';
}

function cellAt(e: MouseEvent): number | null {
  if (!data) return null;
  const r = canvas.getBoundingClientRect();
  const c = Math.floor(((e.clientX - r.left) / r.width) * data.grid[1]);
  const row = Math.floor(((e.clientY - r.top) / r.height) * data.grid[0]);
  if (c < 0 || row < 0 || c >= data.grid[1] || row >= data.grid[0]) return null;
  return row * data.grid[1] + c;
}

function setPaintMode(on: boolean): void {
  state.paint = on;
  canvas.classList.toggle('painting', on);
  byId('paint').toggleAttribute('secondary', !on);
  persist();
}

function readPaintCode(): number | null {
  const v = Number(paintCode.value);
  return paintCode.value !== '' && Number.isInteger(v) && data && v >= 0 && v < data.k ? v : null;
}

function paintAt(e: PointerEvent): void {
  const cell = cellAt(e);
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
  const cell = cellAt(e);
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
  const cell = cellAt(e);
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
    const reply = await host.request('decode', { ids });
    byId<HTMLImageElement>('reconstruction').src = reply.reconstruction;
  } finally {
    button.toggleAttribute('disabled', false);
  }
});
byId('to-generation').addEventListener('click', () => void host.request('openInGeneration', { ids }));
new ResizeObserver(draw).observe(canvas);
onThemeChange(draw);

async function start(): Promise<void> {
  data = await host.request('init');
  state.restore = data.restore;
  const [gh, gw] = data.grid;
  ids = state.ids && state.ids.length === gh * gw ? state.ids : [...data.ids];
  if (state.paintCode !== null) paintCode.value = String(state.paintCode);
  setPaintMode(state.paint);
  byId('title').textContent = `Tokens · ${data.imageLabel}`;
  byId('grid-caption').textContent = `${gh} × ${gw} tokens · K = ${data.k.toLocaleString('en-US')} · codebook ${data.codebook}`;
  canvas.dataset.gridH = String(gh);
  canvas.dataset.gridW = String(gw);
  canvas.style.aspectRatio = `${gw} / ${gh}`;
  byId<HTMLImageElement>('reconstruction').src = data.reconstruction;
  source = new Image();
  source.onload = draw;
  source.src = data.image;
}
start().catch((err: Error) => byId('grid-caption').replaceChildren(h('span', { class: 'error' }, err.message)));

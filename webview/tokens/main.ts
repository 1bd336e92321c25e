// Token set editor: a token data set as a list of its images; the selected image's grid over its
// photo (at the photo's aspect ratio; the grid alone when the photo is gone), hover for the code;
// and the set's code usage: counts, the most used codes (click one to outline its cells) and the
// rank-frequency curve. A sharded tokenize output's manifest is one set; the shards it lists that
// are not tokenized yet are named above.
import '../common/elements.js';
import { tokenSetProtocol, type TokenSetGrid, type TokenSetUsage, type TokenSetView } from '../../common/protocol/tokens.js';
import { connect, loadState, saveState } from '../common/vscode.js';
import { Tooltip, byId, formatInt, formatPct, formatShare, h } from '../common/dom.js';
import { codeColor, css } from '../common/colors.js';
import { onThemeChange } from '../common/viewport.js';
import { drawRankFrequency } from '../common/rank-frequency.js';
import { aspectOf, cellAt, drawTokenOverlay, loadPhoto, setAspect } from '../common/token-overlay.js';
import { mountSearch, searchSection } from './search.js';

const TOP_CODES = 12;

const state = loadState<{ selected: number; highlight: number | null }>({ selected: 0, highlight: null });
const host = connect(tokenSetProtocol, { fileChanged: () => void start() });
const tooltip = new Tooltip();
let view: TokenSetView | null = null;
let shown: { grid: TokenSetGrid; photo: HTMLImageElement | null } | null = null;
/** the latest grid asked for: a slow answer for an image the user has left is not shown */
let wanted = -1;

document.body.append(
  h('header', { class: 'toolbar wraps' }, h('h1', { id: 'title' }, 'Token set'), h('span', { id: 'set-summary', class: 'muted' })),
  h('p', { id: 'shards-missing', class: 'warning', hidden: true }),
  h('main', { class: 'tokenset-layout' },
    h('nav', { id: 'images', class: 'image-list', 'aria-label': 'images of the set', tabindex: 0 }),
    h('figure', { id: 'figure' },
      h('canvas', { id: 'set-grid', class: 'keeps-aspect framed', 'aria-label': 'token grid of the selected image' }),
      h('figcaption', { id: 'grid-caption' }, 'Loading…'),
    ),
    h('aside', { class: 'side' },
      searchSection(),
      h('section', { id: 'usage', class: 'card' }, h('h2', {}, 'Code usage')),
      h('section', { class: 'card' }, h('h2', {}, 'Rank-frequency'), h('canvas', { id: 'rank-frequency' })),
    ),
  ),
);
const canvas = byId<HTMLCanvasElement>('set-grid');

function renderList(v: TokenSetView): void {
  byId('images').replaceChildren(
    ...v.images.map((img, i) => {
      const item = h('button', { class: 'image-item', 'data-index': i, title: img.path || img.label, 'aria-current': i === state.selected ? 'true' : undefined }, img.label);
      item.addEventListener('click', () => void select(i));
      return item;
    }),
  );
}

function renderUsage(u: TokenSetUsage): void {
  const row = (label: string, value: string): HTMLElement[] => [h('dt', {}, label), h('dd', {}, value)];
  const top = u.codes.slice(0, TOP_CODES).map((code, i) => {
    const swatch = h('span', { class: 'swatch' });
    swatch.style.background = css(codeColor(code));
    const item = h('li', {},
      h('button', { class: 'code-link', 'data-code': code, 'aria-pressed': state.highlight === code ? 'true' : 'false' }, swatch, `code ${code}`),
      h('span', { class: 'muted' }, ` ${formatInt(u.counts[i]!)} · ${formatShare(u.counts[i]! / u.tokens)}`));
    item.querySelector('button')!.addEventListener('click', () => highlight(code));
    return item;
  });
  byId('usage').replaceChildren(
    h('h2', {}, 'Code usage'),
    h('dl', {},
      ...row('tokens', formatInt(u.tokens)),
      ...row('codes used', u.k === null ? formatInt(u.distinct) : `${formatInt(u.distinct)} of ${formatInt(u.k)} (${formatPct(u.distinct / u.k)})`),
      ...(u.k === null ? [] : row('dead codes', formatInt(u.k - u.distinct))),
      ...row('perplexity', formatInt(u.perplexity)),
    ),
    u.k === null ? h('p', { class: 'muted note' }, 'K is unknown: open the codebook this set was made with to see utilization and dead codes.') : '',
    h('h3', {}, 'Most used codes'),
    h('ol', { id: 'top-codes', class: 'top-codes' }, ...top),
  );
}

function highlight(code: number): void {
  state.highlight = state.highlight === code ? null : code;
  saveState(state);
  for (const b of document.querySelectorAll<HTMLElement>('.code-link')) b.setAttribute('aria-pressed', String(Number(b.dataset.code) === state.highlight));
  draw();
}

function draw(): void {
  if (!shown) return;
  const { grid, photo } = shown;
  drawTokenOverlay(canvas, photo, { grid: grid.grid, ids: grid.ids, opacity: 0.45, highlight: state.highlight, showIds: false });
}

async function select(index: number): Promise<void> {
  if (!view || index < 0 || index >= view.images.length) return;
  state.selected = index;
  saveState(state);
  for (const el of document.querySelectorAll('.image-item')) el.toggleAttribute('aria-current', Number((el as HTMLElement).dataset.index) === index);
  document.querySelector(`.image-item[data-index="${index}"]`)?.scrollIntoView({ block: 'nearest' });
  wanted = index;
  const grid = await host.request('grid', { index });
  const photo = grid.image ? await loadPhoto(grid.image) : null;
  if (wanted !== index) return;
  shown = { grid, photo };
  setAspect(byId('figure'), aspectOf(photo, grid.grid));
  const [gh, gw] = grid.grid;
  const image = view.images[index]!;
  byId('grid-caption').replaceChildren(
    h('strong', {}, image.label), ` · ${gh} × ${gw} tokens · ${new Set(grid.ids).size} distinct codes`,
    ...(grid.missing ? [h('div', { class: 'warning' }, `Grid alone: ${grid.missing}`)] : []),
  );
  canvas.dataset.gridH = String(gh);
  canvas.dataset.gridW = String(gw);
  canvas.dataset.index = String(index);
  draw();
}

canvas.addEventListener('pointermove', (e) => {
  const cell = shown ? cellAt(canvas, shown.grid.grid, e) : null;
  if (cell === null || !shown) return tooltip.hide();
  const gw = shown.grid.grid[1];
  tooltip.show(e.clientX, e.clientY, [`code ${shown.grid.ids[cell]}`, `cell row ${Math.floor(cell / gw)}, col ${cell % gw}`]);
});
canvas.addEventListener('pointerleave', () => tooltip.hide());
canvas.addEventListener('click', (e) => {
  const cell = shown ? cellAt(canvas, shown.grid.grid, e) : null;
  if (cell !== null && shown) highlight(shown.grid.ids[cell]!);
});
byId('images').addEventListener('keydown', (e) => {
  const step = e.key === 'ArrowDown' ? 1 : e.key === 'ArrowUp' ? -1 : 0;
  if (!step) return;
  e.preventDefault();
  void select(state.selected + step);
});
function redraw(): void {
  draw();
  if (view) drawRankFrequency(byId<HTMLCanvasElement>('rank-frequency'), view.usage.counts);
}
new ResizeObserver(redraw).observe(canvas);
onThemeChange(redraw);

async function start(): Promise<void> {
  try {
    view = await host.request('init');
    const n = view.images.length;
    byId('title').textContent = `Token set · ${view.file}`;
    const shards = view.shards;
    byId('set-summary').textContent = [
      `${formatInt(n)} image${n === 1 ? '' : 's'}`,
      shards && `${formatInt(shards.total - shards.missing.length)} of ${formatInt(shards.total)} shards`,
      view.encoder && `encoder ${view.encoder}`,
      view.codebook && `codebook ${view.codebook}${view.codebookFile ? ` (${view.codebookFile})` : ''}`,
    ].filter(Boolean).join(' · ');
    const missing = byId('shards-missing');
    missing.hidden = !shards?.missing.length;
    missing.textContent = shards?.missing.length
      ? `Not tokenized yet: ${shards.missing.length} of ${shards.total} shards (${shards.missing.join(', ')}); their images are not in this set.`
      : '';
    renderList(view);
    renderUsage(view.usage);
    const shownView = view;
    mountSearch(view, {
      search: (query) => host.request('searchText', { query }),
      select: (index) => void select(index),
      highlight,
      labelOf: (index) => shownView.images[index]?.label ?? `grid ${index + 1}`,
    });
    drawRankFrequency(byId<HTMLCanvasElement>('rank-frequency'), view.usage.counts);
    await select(Math.min(state.selected, n - 1));
  } catch (err) {
    byId('grid-caption').replaceChildren(h('span', { class: 'error' }, (err as Error).message));
  }
}
void start();

// A token grid drawn over its photo: one colour per code, grid lines, optional ids, a highlighted
// code, marks on edited cells, marked cells. Used by the Token Grid panel, the token set editor,
// the notebook renderer and the Generation panel (cells to redraw over a source's atlas decode),
// so a grid looks the same wherever it is shown.
//
// The photo keeps its own aspect ratio and the grid [h, w] is stretched over it, whatever its
// shape. A grid that follows the photo (the DCT encoder's default: 14 x 22 for a 640 x 400 photo)
// comes with the part of the photo the encoder saw (the host crops it: panels/images.ts), so its
// cells are square; a 14 x 14 grid over a 640 x 400 photo (a model's fixed square input,
// 'dct:224:square') has cells 1.6 times wider than tall, which is what that encoder did. Without a
// photo the cells are square.
import { codeColor, css } from './colors.js';
import { fitBackingStore, themeColor } from './viewport.js';

export interface Overlay {
  /** [rows, cols] */
  grid: readonly [number, number];
  ids: readonly number[];
  /** the ids as tokenized, when the grid is being edited: changed cells get a corner mark */
  original?: readonly number[];
  /** cells filled in the warning colour (the Generation panel's cells to redraw) */
  marked?: readonly number[];
  /** overlay opacity over the photo, 0..1 (ignored without a photo: the cells are all there is); 0 shows the photo alone */
  opacity: number;
  /** a code whose cells are outlined while the others are dimmed */
  highlight: number | null;
  showIds: boolean;
  /** draws the photo without smoothing: an atlas decode, whose patch edges stay sharp */
  pixelated?: boolean;
}

/** Width / height at which `photo` (or, without one, a grid of square cells) is shown. */
export function aspectOf(photo: HTMLImageElement | null, grid: readonly [number, number]): number {
  return photo && photo.naturalWidth > 0 && photo.naturalHeight > 0 ? photo.naturalWidth / photo.naturalHeight : grid[1] / grid[0];
}

/**
 * Gives an element (and the elements sized like it) that aspect ratio: webview.css sizes
 * `.keeps-aspect` boxes from the --aspect variable, as wide as their column allows and no taller
 * than most of the window. CSSOM, not a style attribute: the pages' CSP forbids inline styles.
 */
export function setAspect(el: HTMLElement, aspect: number): void {
  el.style.setProperty('--aspect', String(aspect));
}

/** The canvas and the size of its grid's cells, in CSS pixels. */
interface Frame {
  ctx: CanvasRenderingContext2D;
  w: number;
  h: number;
  cw: number;
  ch: number;
}

const warningColor = (): string => themeColor('--vscode-editorWarning-foreground', '#cca700');

/** Draws the photo over the whole canvas and the grid over it (canvas CSS pixels). */
export function drawTokenOverlay(canvas: HTMLCanvasElement, photo: HTMLImageElement | null, o: Overlay): void {
  const dpr = fitBackingStore(canvas);
  const ctx = canvas.getContext('2d')!;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  const f: Frame = { ctx, w, h, cw: w / o.grid[1], ch: h / o.grid[0] };
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  if (photo) {
    ctx.imageSmoothingEnabled = !o.pixelated;
    ctx.drawImage(photo, 0, 0, w, h);
  } else {
    ctx.fillStyle = themeColor('--vscode-editor-background', '#1e1e1e');
    ctx.fillRect(0, 0, w, h);
  }
  drawCells(f, o, photo ? o.opacity : 1);
  if (o.marked) drawMarked(f, o.grid[1], o.marked);
  drawGridLines(f, o.grid);
  if (o.highlight !== null) drawHighlight(f, o.grid[1], o.ids, o.highlight);
  if (o.showIds) drawIds(f, o.grid[1], o.ids);
  canvas.dataset.drawn = 'true';
}

/** Each cell in its code's colour, and a corner mark on the edited ones. */
function drawCells({ ctx, cw, ch }: Frame, o: Overlay, opacity: number): void {
  const [gh, gw] = o.grid;
  for (let r = 0; r < gh; r++) {
    for (let c = 0; c < gw; c++) {
      const id = o.ids[r * gw + c]!;
      const alpha = o.highlight === null ? opacity : id === o.highlight ? Math.max(0.6, opacity) : opacity * 0.25;
      ctx.fillStyle = css(codeColor(id), alpha);
      ctx.fillRect(c * cw, r * ch, cw, ch);
      if (o.original && id !== o.original[r * gw + c]) {
        // an edited cell: a corner mark, so edits stay visible at any opacity
        ctx.fillStyle = warningColor();
        ctx.beginPath();
        ctx.moveTo(c * cw, r * ch);
        ctx.lineTo(c * cw + Math.min(10, cw / 2), r * ch);
        ctx.lineTo(c * cw, r * ch + Math.min(10, ch / 2));
        ctx.fill();
      }
    }
  }
}

function drawMarked({ ctx, cw, ch }: Frame, gw: number, cells: readonly number[]): void {
  ctx.fillStyle = warningColor();
  ctx.globalAlpha = 0.55;
  for (const i of cells) ctx.fillRect((i % gw) * cw, Math.floor(i / gw) * ch, cw, ch);
  ctx.globalAlpha = 1;
}

function drawGridLines({ ctx, w, h, cw, ch }: Frame, [gh, gw]: readonly [number, number]): void {
  ctx.strokeStyle = 'rgba(0, 0, 0, 0.35)';
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (let c = 1; c < gw; c++) (ctx.moveTo(c * cw, 0), ctx.lineTo(c * cw, h));
  for (let r = 1; r < gh; r++) (ctx.moveTo(0, r * ch), ctx.lineTo(w, r * ch));
  ctx.stroke();
}

function drawHighlight({ ctx, cw, ch }: Frame, gw: number, ids: readonly number[], code: number): void {
  ctx.strokeStyle = themeColor('--vscode-focusBorder', '#007fd4');
  ctx.lineWidth = 2;
  ids.forEach((id, i) => id === code && ctx.strokeRect((i % gw) * cw + 1, Math.floor(i / gw) * ch + 1, cw - 2, ch - 2));
}

function drawIds({ ctx, cw, ch }: Frame, gw: number, ids: readonly number[]): void {
  ctx.font = `${Math.max(7, Math.min(12, Math.min(cw, ch * 1.6) / 4.2))}px ${themeColor('--vscode-editor-font-family', 'monospace')}`;
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

/** The cell (row-major index) under a pointer event, or null outside the grid. */
export function cellAt(canvas: HTMLCanvasElement, grid: readonly [number, number], e: MouseEvent): number | null {
  const r = canvas.getBoundingClientRect();
  const col = Math.floor(((e.clientX - r.left) / r.width) * grid[1]);
  const row = Math.floor(((e.clientY - r.top) / r.height) * grid[0]);
  if (col < 0 || row < 0 || col >= grid[1] || row >= grid[0]) return null;
  return row * grid[1] + col;
}

/** Loads a data: URI into an image element (resolves once it can be drawn). */
export function loadPhoto(src: string): Promise<HTMLImageElement> {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error('the image could not be decoded'));
    img.src = src;
  });
}

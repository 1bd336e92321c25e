// The utilization heatmap: one pixel per code in a near-square grid (cell p holds code order[p],
// so similar codes sit together), painted once into an offscreen bitmap and then drawn through
// the viewport's transform. No per-cell DOM, whatever K is.
//
// Coloured by usage (log counts) or, with `drift` set, by how far training moved each code
// (linear, same ramp, no dead codes). Dead codes are painted in the colour that stands out on the theme's background (deadCodeColor),
// and once cells are big enough to carry it, hatched as well, so they read as "nothing here" even
// without telling colours apart. A focus (the codes of one coarse cell) fades every other code.
import { countColor, cssToRgb, deadCodeColor, driftColor, heatmapColumns, type Rgb } from '../common/colors.js';
import { Viewport, fitBackingStore, themeColor, type ViewTransform } from '../common/viewport.js';

export interface HeatmapLayout {
  cols: number;
  rows: number;
}

export function heatmapLayout(k: number): HeatmapLayout {
  const cols = heatmapColumns(k);
  return { cols, rows: Math.max(1, Math.ceil(k / cols)) };
}

/** Screen pixels a cell needs before dead cells get their hatching. */
const HATCH_MIN_CELL_PX = 8;
/** How far faded codes outside the focus are blended into the background. */
const FADE = 0.8;

/** A tile with one diagonal stripe of `color` (about a fifth of its area), transparent elsewhere. */
function hatchPattern(ctx: CanvasRenderingContext2D, color: string): CanvasPattern {
  const side = 10;
  const tile = document.createElement('canvas');
  tile.width = tile.height = side;
  const t = tile.getContext('2d')!;
  t.strokeStyle = color;
  t.lineWidth = 1.5;
  t.beginPath();
  // the stripe and its copies one tile over on either side, so the pattern joins up across tiles
  for (const o of [-side, 0, side]) {
    t.moveTo(o, side);
    t.lineTo(o + side, 0);
  }
  t.stroke();
  return ctx.createPattern(tile, 'repeat')!;
}

/** The theme's editor background, the colour the heatmap is drawn on. */
export function heatmapBackground(): Rgb {
  return cssToRgb(themeColor('--vscode-editor-background', '#1e1e1e'));
}

export class Heatmap {
  readonly layout: HeatmapLayout;
  readonly viewport: Viewport;
  private readonly bitmap: HTMLCanvasElement;
  /** code id -> heatmap cell */
  private readonly cellOf: Int32Array;
  /** 1 where the cell's code is dead in the counts last painted */
  private readonly deadCells: Uint8Array;
  private counts: number[] = [];
  private focus: Uint8Array | null = null;
  selected: number | null = null;
  /** per-code training drift painted instead of the counts; null: usage */
  drift: number[] | null = null;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly order: number[],
    counts: number[],
    onViewChange: (t: ViewTransform) => void,
  ) {
    const k = order.length;
    this.layout = heatmapLayout(k);
    this.cellOf = new Int32Array(k);
    this.deadCells = new Uint8Array(k);
    order.forEach((code, cell) => (this.cellOf[code] = cell));
    this.bitmap = document.createElement('canvas');
    this.bitmap.width = this.layout.cols;
    this.bitmap.height = this.layout.rows;
    this.paint(counts);
    this.viewport = new Viewport(canvas, { width: this.layout.cols, height: this.layout.rows }, () => this.draw(), onViewChange);
    canvas.dataset.k = String(k);
  }

  /** Repaints the bitmap: new counts (another data set), a new focus, a new colouring (drift), or
   *  a new theme (the dead colour). */
  paint(counts: number[] = this.counts, focus: Uint8Array | null = this.focus): void {
    this.counts = counts;
    this.focus = focus;
    const { cols, rows } = this.layout;
    const ctx = this.bitmap.getContext('2d')!;
    const img = ctx.createImageData(cols, rows);
    const background = heatmapBackground();
    const dead = deadCodeColor(background);
    const drift = this.drift;
    let max = 0;
    for (const c of drift ?? counts) if (c > max) max = c;
    for (let cell = 0; cell < this.order.length; cell++) {
      const code = this.order[cell]!;
      const count = counts[code]!;
      this.deadCells[cell] = drift || count > 0 ? 0 : 1;
      let [r, g, b] = drift ? driftColor(drift[code]!, max) : countColor(count, max, dead);
      if (focus && !focus[code]) [r, g, b] = [r, g, b].map((v, c) => Math.round(v * (1 - FADE) + background[c]! * FADE)) as [number, number, number];
      const o = cell * 4;
      img.data[o] = r;
      img.data[o + 1] = g;
      img.data[o + 2] = b;
      img.data[o + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    this.canvas.dataset.dead = dead.join(',');
  }

  draw(): void {
    const dpr = fitBackingStore(this.canvas);
    const ctx = this.canvas.getContext('2d')!;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = themeColor('--vscode-editor-background', '#1e1e1e');
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    const { scale, tx, ty } = this.viewport.t;
    ctx.setTransform(scale * dpr, 0, 0, scale * dpr, tx * dpr, ty * dpr);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.bitmap, 0, 0);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    if (scale >= HATCH_MIN_CELL_PX) this.hatchDeadCells(ctx);
    if (this.selected !== null) {
      const [x, y] = this.cellXY(this.selected);
      const size = Math.max(scale, 6);
      const cx = tx + (x + 0.5) * scale;
      const cy = ty + (y + 0.5) * scale;
      ctx.lineWidth = 2;
      ctx.strokeStyle = themeColor('--vscode-focusBorder', '#007fd4');
      ctx.strokeRect(cx - size / 2 - 2, cy - size / 2 - 2, size + 4, size + 4);
    }
    this.canvas.dataset.drawn = 'true';
  }

  /** Diagonal stripes in the background colour over the dead cells on screen (few: cells are big):
   *  one screen-space pattern, so neighbouring dead cells share continuous hatching. */
  private hatchDeadCells(ctx: CanvasRenderingContext2D): void {
    const { scale, tx, ty } = this.viewport.t;
    const { cols, rows } = this.layout;
    const [x0, y0] = this.viewport.toContent(0, 0);
    const [x1, y1] = this.viewport.toContent(this.canvas.clientWidth, this.canvas.clientHeight);
    ctx.save();
    ctx.fillStyle = hatchPattern(ctx, themeColor('--vscode-editor-background', '#1e1e1e'));
    for (let row = Math.max(0, Math.floor(y0)); row < Math.min(rows, Math.ceil(y1)); row++) {
      for (let col = Math.max(0, Math.floor(x0)); col < Math.min(cols, Math.ceil(x1)); col++) {
        const cell = row * cols + col;
        if (cell < this.order.length && this.deadCells[cell]) ctx.fillRect(tx + col * scale, ty + row * scale, scale, scale);
      }
    }
    ctx.restore();
  }

  /** The code under a point of the canvas (CSS pixels), or null outside the grid. */
  codeAt(x: number, y: number): number | null {
    const [cx, cy] = this.viewport.toContent(x, y);
    const col = Math.floor(cx);
    const row = Math.floor(cy);
    if (col < 0 || row < 0 || col >= this.layout.cols || row >= this.layout.rows) return null;
    const cell = row * this.layout.cols + col;
    return cell < this.order.length ? this.order[cell]! : null;
  }

  cellXY(code: number): [number, number] {
    const cell = this.cellOf[code]!;
    return [cell % this.layout.cols, Math.floor(cell / this.layout.cols)];
  }
}

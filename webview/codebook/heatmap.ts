// The utilization heatmap: one pixel per code in a near-square grid (cell p holds code order[p],
// so similar codes sit together), painted once into an offscreen bitmap and then drawn through
// the viewport's transform. No per-cell DOM, whatever K is.
import { countColor, heatmapColumns } from '../common/colors.js';
import { Viewport, fitBackingStore, themeColor, type ViewTransform } from '../common/viewport.js';

export interface HeatmapLayout {
  cols: number;
  rows: number;
}

export function heatmapLayout(k: number): HeatmapLayout {
  const cols = heatmapColumns(k);
  return { cols, rows: Math.max(1, Math.ceil(k / cols)) };
}

export class Heatmap {
  readonly layout: HeatmapLayout;
  readonly viewport: Viewport;
  private readonly bitmap: HTMLCanvasElement;
  /** code id -> heatmap cell */
  private readonly cellOf: Int32Array;
  selected: number | null = null;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly order: number[],
    counts: number[],
    onViewChange: (t: ViewTransform) => void,
  ) {
    const k = order.length;
    this.layout = heatmapLayout(k);
    this.cellOf = new Int32Array(k);
    order.forEach((code, cell) => (this.cellOf[code] = cell));
    this.bitmap = document.createElement('canvas');
    this.bitmap.width = this.layout.cols;
    this.bitmap.height = this.layout.rows;
    this.paint(counts);
    this.viewport = new Viewport(canvas, { width: this.layout.cols, height: this.layout.rows }, () => this.draw(), onViewChange);
    canvas.dataset.k = String(k);
  }

  /** Repaints the bitmap for a new set of counts (e.g. another data set). */
  paint(counts: number[]): void {
    const { cols, rows } = this.layout;
    const ctx = this.bitmap.getContext('2d')!;
    const img = ctx.createImageData(cols, rows);
    let max = 0;
    for (const c of counts) if (c > max) max = c;
    for (let cell = 0; cell < this.order.length; cell++) {
      const [r, g, b] = countColor(counts[this.order[cell]!]!, max);
      const o = cell * 4;
      img.data[o] = r;
      img.data[o + 1] = g;
      img.data[o + 2] = b;
      img.data[o + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
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
    if (this.selected !== null) {
      const [x, y] = this.cellXY(this.selected);
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      const size = Math.max(scale, 6);
      const cx = tx + (x + 0.5) * scale;
      const cy = ty + (y + 0.5) * scale;
      ctx.lineWidth = 2;
      ctx.strokeStyle = themeColor('--vscode-focusBorder', '#007fd4');
      ctx.strokeRect(cx - size / 2 - 2, cy - size / 2 - 2, size + 4, size + 4);
    }
    this.canvas.dataset.drawn = 'true';
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

// The coarse level of a codebook (`coarse` [K1, d] + `coarse_assign` [K]: each code's coarse
// cell, what an IVF search probes first): one square per coarse cell, coloured by how much its
// codes are used together (the same log ramp as the heatmap, dead = no code of the cell used).
// Clicking a cell lists its codes; the heatmap then fades every code outside it. The host counts
// each cell's use (engine/search/inspect.ts coarseCells); this draws it.
import type { CoarseCellView } from '../../common/protocol/codebook.js';
import { countColor, deadCodeColor, heatmapColumns } from '../common/colors.js';
import { fitBackingStore, themeColor } from '../common/viewport.js';
import { heatmapBackground } from './heatmap.js';

export class CoarseMap {
  readonly cols: number;
  readonly rows: number;
  selected: number | null = null;

  /** `order`: coarse cells in display order (similar centroids together). */
  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly order: number[],
    readonly cells: CoarseCellView[],
  ) {
    this.cols = heatmapColumns(order.length);
    this.rows = Math.ceil(order.length / this.cols);
    canvas.style.aspectRatio = `${this.cols} / ${this.rows}`;
    canvas.dataset.cells = String(order.length);
  }

  /** Side of one square in CSS pixels (the canvas is as wide as its card allows). */
  private get size(): number {
    return this.canvas.clientWidth / this.cols;
  }

  draw(): void {
    const dpr = fitBackingStore(this.canvas);
    const ctx = this.canvas.getContext('2d')!;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, this.canvas.clientWidth, this.canvas.clientHeight);
    const dead = deadCodeColor(heatmapBackground());
    const max = Math.max(0, ...this.cells.map((c) => c.tokens));
    const s = this.size;
    const gap = s > 6 ? 1 : 0;
    this.order.forEach((cell, place) => {
      const [r, g, b] = countColor(this.cells[cell]!.tokens, max, dead);
      ctx.fillStyle = `rgb(${r}, ${g}, ${b})`;
      ctx.fillRect((place % this.cols) * s, Math.floor(place / this.cols) * s, s - gap, s - gap);
    });
    if (this.selected !== null) {
      const place = this.order.indexOf(this.selected);
      ctx.lineWidth = 2;
      ctx.strokeStyle = themeColor('--vscode-focusBorder', '#007fd4');
      ctx.strokeRect((place % this.cols) * s + 1, Math.floor(place / this.cols) * s + 1, s - gap - 2, s - gap - 2);
    }
    this.canvas.dataset.drawn = 'true';
  }

  /** The coarse cell (index) under a pointer event, or null. */
  cellAt(e: MouseEvent): number | null {
    const r = this.canvas.getBoundingClientRect();
    const col = Math.floor((e.clientX - r.left) / this.size);
    const row = Math.floor((e.clientY - r.top) / this.size);
    if (col < 0 || row < 0 || col >= this.cols || row >= this.rows) return null;
    const place = row * this.cols + col;
    return place < this.order.length ? this.order[place]! : null;
  }

  /** 1 for the codes of the selected cell (for the heatmap's focus), or null when none is selected. */
  focusMask(k: number): Uint8Array | null {
    if (this.selected === null) return null;
    const mask = new Uint8Array(k);
    for (const code of this.cells[this.selected]!.codes) mask[code] = 1;
    return mask;
  }
}

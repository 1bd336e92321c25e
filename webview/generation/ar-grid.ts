// An autoregressive prior's grid while it is drawn: one cell per token in its code's colour, filled
// in raster order as the host reports each token; cells still to draw stay empty, and the kept
// cells of an edit are dimmed so the redrawn ones stand out.
import { byId } from '../common/dom.js';
import { codeColor, css } from '../common/colors.js';

/** Canvas pixels per cell side (CSS scales the canvas, keeping its aspect). */
const CELL = 12;
const KEPT_ALPHA = 0.35;

export class LiveGrid {
  private grid: [number, number] = [1, 1];
  private drawn = 0;

  private get canvas(): HTMLCanvasElement {
    return byId<HTMLCanvasElement>('ar-grid');
  }

  /** A run starts: `ids` so far (the kept cells of an edit), `cells` the ones it will draw. */
  start(grid: [number, number], ids: number[], cells: number[]): void {
    this.grid = grid;
    this.drawn = 0;
    const canvas = this.canvas;
    canvas.width = grid[1] * CELL;
    canvas.height = grid[0] * CELL;
    const ctx = canvas.getContext('2d')!;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const redrawn = new Set(cells);
    ids.forEach((id, cell) => redrawn.has(cell) || this.fill(cell, id, KEPT_ALPHA));
    this.show(cells.length);
    byId('ar-live').hidden = false;
  }

  /** One drawn token. */
  token(cell: number, code: number, done: number, total: number): void {
    this.fill(cell, code, 1);
    this.drawn = done;
    this.show(total);
  }

  private fill(cell: number, code: number, alpha: number): void {
    const ctx = this.canvas.getContext('2d')!;
    const w = this.grid[1];
    ctx.clearRect((cell % w) * CELL, Math.floor(cell / w) * CELL, CELL, CELL);
    ctx.fillStyle = css(codeColor(code), alpha);
    ctx.fillRect((cell % w) * CELL, Math.floor(cell / w) * CELL, CELL, CELL);
  }

  private show(total: number): void {
    this.canvas.dataset.drawn = String(this.drawn);
    byId('ar-caption').textContent = `Tokens drawn · ${this.drawn} of ${total}`;
  }
}

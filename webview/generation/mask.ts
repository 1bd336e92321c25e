// The mask painter: a source's atlas decode under its grid, drawn by the shared token overlay with
// the cells to redraw marked. Drag to paint cells, drag from a painted cell to erase.
import type { SourceView } from '../../common/protocol/generation.js';
import { byId } from '../common/dom.js';
import { aspectOf, cellAt, drawTokenOverlay, loadPhoto, setAspect } from '../common/token-overlay.js';
import { onThemeChange } from '../common/viewport.js';
import { showStatus } from './page.js';

/** The part of the panel's view state the painter reads and edits. */
export interface MaskState {
  source: string | null;
  /** painted cells of the source's grid, row-major */
  mask: number[];
}

export interface MaskHooks {
  /** the source's grid, ids and atlas decode */
  fetch(source: string): Promise<SourceView>;
  /** keeps the view state after an edit */
  save(): void;
  /** after every draw: the painted cells may have changed */
  drawn(): void;
}

export class MaskPainter {
  private view: { grid: [number, number]; ids: number[]; image: HTMLImageElement } | null = null;
  private painting: 'add' | 'erase' | null = null;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly state: MaskState,
    private readonly hooks: MaskHooks,
  ) {
    canvas.addEventListener('pointerdown', (e) => {
      const cell = this.cellAt(e);
      if (cell === null) return;
      this.painting = state.mask.includes(cell) ? 'erase' : 'add';
      canvas.setPointerCapture(e.pointerId);
      this.paint(e);
    });
    canvas.addEventListener('pointermove', (e) => this.paint(e));
    canvas.addEventListener('pointerup', () => (this.painting = null));
    onThemeChange(() => this.draw());
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  /** Shows the current source; painted cells beyond its grid are dropped. */
  async load(): Promise<void> {
    const id = this.state.source;
    if (!id) return;
    try {
      const v = await this.hooks.fetch(id);
      const image = await loadPhoto(v.image);
      if (this.state.source !== id) return;
      this.view = { grid: v.grid, ids: v.ids, image };
      this.state.mask = this.state.mask.filter((i) => i < v.ids.length);
      setAspect(this.canvas, aspectOf(image, v.grid));
      this.draw();
    } catch (err) {
      showStatus((err as Error).message);
    }
  }

  draw(): void {
    if (!this.view) return;
    const { grid, ids, image } = this.view;
    drawTokenOverlay(this.canvas, image, { grid, ids, marked: this.state.mask, opacity: 0, highlight: null, showIds: false, pixelated: true });
    byId('mask-count').textContent = `${this.state.mask.length} of ${grid[0] * grid[1]} cells`;
    this.hooks.drawn();
  }

  clear(): void {
    this.state.mask = [];
    this.hooks.save();
    this.draw();
  }

  private cellAt(e: PointerEvent): number | null {
    return this.view ? cellAt(this.canvas, this.view.grid, e) : null;
  }

  private paint(e: PointerEvent): void {
    const cell = this.cellAt(e);
    if (cell === null || !this.painting) return;
    const has = this.state.mask.includes(cell);
    if (this.painting === 'add' && !has) this.state.mask.push(cell);
    else if (this.painting === 'erase' && has) this.state.mask = this.state.mask.filter((i) => i !== cell);
    else return;
    this.hooks.save();
    this.draw();
  }
}

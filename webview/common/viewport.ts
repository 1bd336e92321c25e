// Pan (drag) and zoom (wheel, around the cursor) of a picture drawn with one transform.
// The picture is drawn from a single bitmap with drawImage, so the cost of a frame does not
// depend on how many cells it holds (K = 500,000 codes is one 708 x 707 bitmap).

export interface ViewTransform {
  scale: number;
  tx: number;
  ty: number;
}

export class Viewport {
  t: ViewTransform = { scale: 1, tx: 0, ty: 0 };
  private drag: { x: number; y: number; moved: boolean } | null = null;
  private frame = 0;
  /** removes the canvas listeners: a picture replaced on the same canvas stops answering */
  private readonly listening = new AbortController();

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly content: { width: number; height: number },
    private readonly redraw: () => void,
    private readonly onChange: (t: ViewTransform) => void,
  ) {
    const signal = this.listening.signal;
    canvas.addEventListener('wheel', (e) => this.onWheel(e), { passive: false, signal });
    canvas.addEventListener('pointerdown', (e) => {
      this.drag = { x: e.clientX, y: e.clientY, moved: false };
      canvas.setPointerCapture(e.pointerId);
    }, { signal });
    canvas.addEventListener('pointermove', (e) => {
      if (!this.drag || (e.buttons & 1) === 0) return;
      const dx = e.clientX - this.drag.x;
      const dy = e.clientY - this.drag.y;
      if (!this.drag.moved && Math.hypot(dx, dy) < 3) return;
      this.drag = { x: e.clientX, y: e.clientY, moved: true };
      this.t = { ...this.t, tx: this.t.tx + dx, ty: this.t.ty + dy };
      canvas.classList.add('panning');
      this.changed();
    }, { signal });
    canvas.addEventListener('pointerup', () => {
      canvas.classList.remove('panning');
      // keep `drag` until the click event has seen whether this was a drag
      setTimeout(() => (this.drag = null), 0);
    }, { signal });
  }

  dispose(): void {
    this.listening.abort();
  }

  /** True while the current pointer gesture is a pan, so a click handler can ignore it. */
  get panned(): boolean {
    return this.drag?.moved ?? false;
  }

  /** Scales the content to fit the canvas, centred. */
  fit(): void {
    const w = this.canvas.clientWidth;
    const h = this.canvas.clientHeight;
    const scale = Math.min(w / this.content.width, h / this.content.height);
    this.t = { scale, tx: (w - this.content.width * scale) / 2, ty: (h - this.content.height * scale) / 2 };
    this.changed();
  }

  /** Zooms by `factor` keeping the content point under (x, y) (canvas CSS pixels) in place. */
  zoomAt(x: number, y: number, factor: number): void {
    const min = 0.5 * Math.min(this.canvas.clientWidth / this.content.width, this.canvas.clientHeight / this.content.height);
    const scale = Math.min(256, Math.max(min, this.t.scale * factor));
    const k = scale / this.t.scale;
    this.t = { scale, tx: x - (x - this.t.tx) * k, ty: y - (y - this.t.ty) * k };
    this.changed();
  }

  /** Canvas CSS pixel -> content coordinates. */
  toContent(x: number, y: number): [number, number] {
    return [(x - this.t.tx) / this.t.scale, (y - this.t.ty) / this.t.scale];
  }

  private onWheel(e: WheelEvent): void {
    e.preventDefault();
    const r = this.canvas.getBoundingClientRect();
    // trackpads send many small deltas, mouse wheels few large ones: exponential keeps both smooth
    this.zoomAt(e.clientX - r.left, e.clientY - r.top, Math.exp(-e.deltaY * 0.0015));
  }

  private changed(): void {
    this.onChange(this.t);
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.redraw();
    });
  }
}

/** Sizes a canvas's backing store to its CSS box at the device pixel ratio; returns that ratio. */
export function fitBackingStore(canvas: HTMLCanvasElement): number {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
  const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  return dpr;
}

/**
 * Calls `redraw` after VS Code switches the colour theme. Canvases keep pixels, not CSS, so they
 * must be drawn again: VS Code writes the new theme's variables into <html>'s style and its kind
 * (vscode-light, vscode-dark, vscode-high-contrast…) into <body>'s class; both are watched, and a
 * burst of changes gives one redraw on the next frame.
 */
export function onThemeChange(redraw: () => void): void {
  let pending = false;
  const observer = new MutationObserver(() => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      redraw();
    });
  });
  observer.observe(document.documentElement, { attributes: true, attributeFilter: ['style'] });
  observer.observe(document.body, { attributes: true, attributeFilter: ['class'] });
}

/** A VS Code theme colour for canvas drawing (canvases cannot use CSS variables directly). */
export function themeColor(variable: string, fallback: string): string {
  return getComputedStyle(document.body).getPropertyValue(variable).trim() || fallback;
}

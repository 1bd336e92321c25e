// Small DOM helpers shared by the panels (no framework: the panels are a few canvases and
// controls, and the heavy drawing never goes through the DOM).

type Attrs = Record<string, string | number | boolean | undefined>;

/** Creates an element; `attrs` become attributes (booleans toggle), children are nodes or text. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs, ...children: (Node | string)[]): HTMLElementTagNameMap[K];
export function h(tag: string, attrs?: Attrs, ...children: (Node | string)[]): HTMLElement;
export function h(tag: string, attrs: Attrs = {}, ...children: (Node | string)[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    el.setAttribute(name, value === true ? '' : String(value));
  }
  el.append(...children);
  return el;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return el as T;
}

/** A codicon glyph (the codicon stylesheet is linked by the host page). */
export const icon = (name: string): HTMLElement => h('span', { class: `codicon codicon-${name}`, 'aria-hidden': 'true' });

/** The floating tooltip every panel uses (`#tooltip`, positioned near the pointer). */
export class Tooltip {
  readonly el = h('div', { id: 'tooltip', role: 'tooltip', hidden: true });

  constructor() {
    document.body.append(this.el);
  }

  show(clientX: number, clientY: number, lines: string[]): void {
    this.el.replaceChildren(...lines.map((l, i) => h(i === 0 ? 'strong' : 'div', {}, l)));
    this.el.hidden = false;
    const pad = 14;
    const r = this.el.getBoundingClientRect();
    const x = clientX + pad + r.width > window.innerWidth ? clientX - pad - r.width : clientX + pad;
    const y = clientY + pad + r.height > window.innerHeight ? clientY - pad - r.height : clientY + pad;
    this.el.style.left = `${Math.max(0, x)}px`;
    this.el.style.top = `${Math.max(0, y)}px`;
  }

  hide(): void {
    this.el.hidden = true;
  }
}

export const formatInt = (n: number): string => Math.round(n).toLocaleString('en-US');
export const formatPct = (x: number, digits = 1): string => `${(x * 100).toFixed(digits)}%`;
/** A share as people read one: 12.34%, then two significant digits below 0.1% (0.045%), and
 *  "< 0.0001%" below that — never an exponent. */
export function formatShare(x: number): string {
  if (x === 0) return '0%';
  if (x >= 0.001) return formatPct(x, 2);
  if (x < 1e-6) return '< 0.0001%';
  return `${Number((x * 100).toPrecision(2)).toFixed(Math.min(20, 1 - Math.floor(Math.log10(x * 100))))}%`;
}

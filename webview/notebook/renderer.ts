// Notebook renderer for token grids (mime type TOKENS_MIME, common/protocol/notebook.ts): a Jupyter
// notebook in VS Code that outputs token JSON shows each grid over its photo (when the Python side
// embedded it as a data: URI in `preview`), or the grid alone with square cells. An ES module, as
// VS Code loads renderers (the renderer API: renderOutputItem(outputItem, element)).
import { notebookTokens, type NotebookTokenGrid } from '../../common/protocol/notebook.js';
import { checked } from '../../common/protocol/shared.js';
import { aspectOf, cellAt, drawTokenOverlay, loadPhoto } from '../common/token-overlay.js';

/** The part of VS Code's renderer API used here (vscode-notebook-renderer's OutputItem). */
interface OutputItem {
  readonly id: string;
  readonly mime: string;
  json(): unknown;
}

interface RendererApi {
  renderOutputItem(item: OutputItem, element: HTMLElement, signal?: AbortSignal): Promise<void>;
  disposeOutputItem(id?: string): void;
}

/** Grids shown per output; a data set of thousands would only slow the notebook down. */
const MAX_GRIDS = 24;
/** Height a grid is drawn at (its width follows the photo's aspect ratio, up to the cell's width). */
const GRID_HEIGHT = 280;

export function activate(): RendererApi {
  const cleanups = new Map<string, () => void>();
  return {
    async renderOutputItem(item, element) {
      cleanups.get(item.id)?.();
      element.replaceChildren();
      const parsed = checked(notebookTokens, item.json(), 'tokens');
      if (!parsed.ok) {
        element.append(line(`UniCode² tokens could not be shown: ${parsed.problem}`, 'var(--vscode-errorForeground)'));
        return;
      }
      const grids = 'results' in parsed.value ? parsed.value.results : [parsed.value];
      const observers = await Promise.all(grids.slice(0, MAX_GRIDS).map((g) => renderGrid(g, element)));
      if (grids.length > MAX_GRIDS) element.append(line(`… and ${grids.length - MAX_GRIDS} more grids`, 'var(--vscode-descriptionForeground)'));
      cleanups.set(item.id, () => observers.forEach((o) => o.disconnect()));
    },
    disposeOutputItem(id) {
      for (const [key, cleanup] of cleanups) {
        if (id === undefined || key === id) {
          cleanup();
          cleanups.delete(key);
        }
      }
    },
  };
}

/** One grid: a canvas at the photo's aspect ratio and a caption that names the cell under the pointer. */
async function renderGrid(g: NotebookTokenGrid, parent: HTMLElement): Promise<ResizeObserver> {
  const photo = g.preview ? await loadPhoto(g.preview).catch(() => null) : null;
  const aspect = aspectOf(photo, g.grid);
  const figure = document.createElement('figure');
  figure.className = 'unicode2-tokens';
  figure.style.margin = '4px 0 12px';
  const canvas = document.createElement('canvas');
  Object.assign(canvas.style, { display: 'block', width: `min(100%, ${Math.round(GRID_HEIGHT * aspect)}px)`, aspectRatio: String(aspect), borderRadius: '3px' });
  const [gh, gw] = g.grid;
  const name = g.image ? g.image.split(/[\\/]/).pop() : 'tokens';
  const about = `${name} · ${gh} × ${gw} tokens · ${new Set(g.ids).size} distinct codes${g.codebook ? ` · codebook ${g.codebook}` : ''}${photo ? '' : ' · grid alone (no preview image)'}`;
  const caption = line(about, 'var(--vscode-descriptionForeground)');
  figure.append(canvas, caption);
  parent.append(figure);

  const draw = (): void => drawTokenOverlay(canvas, photo, { grid: g.grid, ids: g.ids, opacity: 0.45, highlight: null, showIds: false });
  canvas.addEventListener('pointermove', (e) => {
    const cell = cellAt(canvas, g.grid, e);
    caption.textContent = cell === null ? about : `code ${g.ids[cell]} · cell row ${Math.floor(cell / gw)}, col ${cell % gw}`;
  });
  canvas.addEventListener('pointerleave', () => (caption.textContent = about));
  const observer = new ResizeObserver(draw);
  observer.observe(canvas);
  return observer;
}

function line(text: string, color: string): HTMLElement {
  const el = document.createElement('div');
  el.textContent = text;
  Object.assign(el.style, { color, fontSize: '0.9em', marginTop: '4px' });
  return el;
}

// The token set editor's search by words (a set that keeps its images' pooled embeddings): a
// search box; the images ranked by the cosine similarity of their pooled image embedding and the
// text's embedding, each with its token grid (click one to select it); and the codes those images
// share most (click one to outline its cells). The score is the encoder's image-text score, with
// the tokens shown beside it: not a score of the tokens.
import type { TokenSetSearch, TokenSetView } from '../../common/protocol/tokens.js';
import { byId, formatInt, h } from '../common/dom.js';
import { codeColor, css } from '../common/colors.js';
import { drawTokenOverlay, loadPhoto } from '../common/token-overlay.js';

export interface SearchHost {
  search(query: string): Promise<TokenSetSearch>;
  select(index: number): void;
  highlight(code: number): void;
  labelOf(index: number): string;
}

export function searchSection(): HTMLElement {
  return h('section', { id: 'text-search', class: 'card', hidden: true },
    h('h2', {}, 'Search by words'),
    h('form', { id: 'search-form', class: 'search-form' },
      h('input', { id: 'search-query', type: 'search', placeholder: 'a red kite', 'aria-label': 'words to search the images for' }),
      h('button', { id: 'search-go', type: 'submit' }, 'Search'),
    ),
    h('p', { id: 'search-note', class: 'muted note' }),
    h('ol', { id: 'search-hits', class: 'search-hits' }),
    h('h3', { id: 'shared-title', hidden: true }, 'Codes these images share'),
    h('ol', { id: 'shared-codes', class: 'top-codes' }),
  );
}

/** Shows the search when the view offers it, and wires the box to `host`. */
export function mountSearch(view: TokenSetView, host: SearchHost): void {
  const section = byId('text-search');
  section.hidden = !view.textSearch;
  if (!view.textSearch) return;
  const { encoder, output, d } = view.textSearch;
  const note = byId('search-note');
  note.textContent = `Ranked by the cosine of each image's ${output} (d = ${d}) and the text's embedding from the text tower of ${encoder}: how well that model's vision and text towers agree on the image. The tokens are shown beside; the score does not measure them.`;
  const form = byId<HTMLFormElement>('search-form');
  form.onsubmit = (e) => {
    e.preventDefault();
    const query = byId<HTMLInputElement>('search-query').value.trim();
    if (query) void run(query, host);
  };
}

async function run(query: string, host: SearchHost): Promise<void> {
  const hits = byId('search-hits');
  hits.replaceChildren(h('li', { class: 'muted' }, `Searching for “${query}”…`));
  try {
    const result = await host.search(query);
    if (byId<HTMLInputElement>('search-query').value.trim() !== query) return; // a newer search is under way
    render(result, host);
  } catch (err) {
    hits.replaceChildren(h('li', { class: 'error' }, (err as Error).message));
  }
}

function render(result: TokenSetSearch, host: SearchHost): void {
  const n = result.hits.length;
  byId('search-hits').replaceChildren(
    ...result.hits.map(({ grid, score }, rank) => {
      const canvas = h('canvas', { class: 'search-grid', 'aria-label': `token grid of ${host.labelOf(grid.index)}` });
      const item = h('li', {},
        h('button', { class: 'search-hit', 'data-index': grid.index, 'data-score': score.toFixed(4), title: grid.missing ?? '' },
          canvas, h('span', {}, `${rank + 1}. ${host.labelOf(grid.index)}`), h('span', { class: 'muted' }, ` cos ${score.toFixed(3)}`)));
      item.querySelector('button')!.addEventListener('click', () => host.select(grid.index));
      canvas.style.aspectRatio = `${grid.grid[1]} / ${grid.grid[0]}`;
      void (grid.image ? loadPhoto(grid.image) : Promise.resolve(null)).then((photo) =>
        requestAnimationFrame(() => drawTokenOverlay(canvas, photo, { grid: grid.grid, ids: grid.ids, opacity: 0.45, highlight: null, showIds: false })));
      return item;
    }),
  );
  byId('shared-title').hidden = result.shared.length === 0;
  byId('shared-title').textContent = `Codes the top ${n} share`;
  byId('shared-codes').replaceChildren(
    ...result.shared.map((s) => {
      const swatch = h('span', { class: 'swatch' });
      swatch.style.background = css(codeColor(s.code));
      const item = h('li', {},
        h('button', { class: 'code-link shared-code', 'data-code': s.code }, swatch, `code ${s.code}`),
        h('span', { class: 'muted' }, ` in ${s.images} of ${n} images · ${formatInt(s.tokens)} tokens`));
      item.querySelector('button')!.addEventListener('click', () => host.highlight(s.code));
      return item;
    }),
  );
  byId('search-note').dataset.model = result.model;
}

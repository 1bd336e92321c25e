// Generation panel: choose a token source (a tokenized image, the edited grid from the token-grid
// panel, a tokens JSON file), the decoder and its output size, generate, and save results.
import '../common/elements.js';
import { generationProtocol, type GenerationResult, type GenerationSource } from '../../common/protocol/generation.js';
import { connect, loadState, saveState } from '../common/vscode.js';
import { byId, h } from '../common/dom.js';

type Value = HTMLElement & { value: string };

const state = loadState<{ source: string | null; upscale: number }>({ source: null, upscale: 2 });
const host = connect(generationProtocol, {
  sources: ({ sources }) => renderSources(sources),
  progress: ({ done, total, message }) => showProgress(done, total, message),
});

document.body.append(
  h('header', { class: 'toolbar' }, h('h1', {}, 'Generation'), h('span', { class: 'spacer' }), h('span', { id: 'codebook', class: 'muted' })),
  h('section', { class: 'card form' },
    h('label', { for: 'source' }, 'Tokens'),
    h('div', { class: 'row' },
      h('vscode-single-select', { id: 'source', 'aria-label': 'token source' }),
      h('vscode-button', { id: 'add-file', secondary: true, icon: 'folder-opened' }, 'Tokens file…'),
    ),
    h('label', { for: 'decoder' }, 'Decoder'),
    h('vscode-single-select', { id: 'decoder', 'aria-label': 'decoder' },
      h('vscode-option', { value: 'atlas', selected: true, description: 'mean pixel patch of each code' }, 'Atlas (codebook)')),
    h('label', { for: 'upscale' }, 'Output size'),
    h('vscode-single-select', { id: 'upscale', 'aria-label': 'output size' },
      ...[1, 2, 4].map((u) => h('vscode-option', { value: u, selected: u === state.upscale }, `${u}× (nearest)`))),
    h('div', { class: 'row' },
      h('vscode-button', { id: 'generate', icon: 'sparkle' }, 'Generate'),
      h('vscode-progress-bar', { id: 'progress', hidden: true }),
      h('span', { id: 'status', class: 'muted' }),
    ),
  ),
  h('section', { id: 'results', class: 'results', 'aria-live': 'polite' }),
);

function renderSources(sources: GenerationSource[]): void {
  const select = byId<Value>('source');
  const selected = sources.some((s) => s.id === state.source) ? state.source : (sources[0]?.id ?? null);
  select.replaceChildren(
    ...sources.map((s) => h('vscode-option', { value: s.id, selected: s.id === selected, description: `${s.grid[0]}×${s.grid[1]}` }, s.label)),
  );
  if (selected) select.value = selected;
  state.source = selected;
  saveState(state);
  byId('generate').toggleAttribute('disabled', sources.length === 0);
  byId('status').textContent = sources.length ? '' : 'Tokenize an image or open a tokens file first.';
}

function showProgress(done: number, total: number, message?: string): void {
  const bar = byId('progress') as HTMLElement & { value: number; max: number };
  bar.hidden = done >= total;
  bar.max = total;
  bar.value = done;
  byId('status').textContent = message ?? '';
}

function addResult(r: GenerationResult): void {
  const save = h('vscode-button', { secondary: true, 'data-result': r.id, icon: 'save' }, 'Save as PNG');
  save.addEventListener('click', async () => {
    const saved = await host.request('savePng', { result: r.id });
    if (saved) byId('status').textContent = `Saved ${saved}`;
  });
  byId('results').prepend(
    h('figure', { class: 'card result' },
      h('img', { src: r.image, alt: r.label, width: r.width, height: r.height }),
      h('figcaption', {}, h('span', {}, `${r.label} · ${r.width}×${r.height}`), save)),
  );
}

byId('source').addEventListener('change', () => {
  state.source = byId<Value>('source').value;
  saveState(state);
});
byId('upscale').addEventListener('change', () => {
  state.upscale = Number(byId<Value>('upscale').value);
  saveState(state);
});
byId('add-file').addEventListener('click', async () => {
  renderSources(await host.request('addTokensFile'));
});
byId('generate').addEventListener('click', async () => {
  if (!state.source) return;
  const button = byId('generate');
  button.toggleAttribute('disabled', true);
  showProgress(0, 1, 'Decoding…');
  try {
    addResult(await host.request('generate', { source: state.source, upscale: state.upscale }));
    showProgress(1, 1, '');
  } catch (err) {
    showProgress(1, 1, (err as Error).message);
  } finally {
    button.toggleAttribute('disabled', false);
  }
});

host
  .request('init')
  .then((init) => {
    byId('codebook').textContent = init.codebook ? `codebook ${init.codebook}` : 'no active codebook';
    renderSources(init.sources);
    init.results.forEach(addResult);
  })
  .catch((err: Error) => (byId('status').textContent = err.message));

// A run's output: the progress bar and the live preview while a diffusion decoder denoises, and
// the gallery of results, newest first, each with its settings and Save as PNG.
import type { GenerationResult } from '../../common/protocol/generation.js';
import { byId, h } from '../common/dom.js';
import { showStatus } from './page.js';

export function showProgress(done: number, total: number, message?: string, preview?: string): void {
  const bar = byId('progress') as HTMLElement & { value: number; max: number };
  bar.hidden = done >= total;
  bar.max = total;
  bar.value = done;
  if (message) showStatus(message);
  if (preview) {
    byId<HTMLImageElement>('preview').src = preview;
    byId('live').hidden = false;
    byId('live-caption').textContent = `Current estimate · step ${done} of ${total}`;
  }
}

type Save = (result: string) => Promise<string | null>;

/** A gallery button that saves through the host and says where. */
function saveButton(r: GenerationResult, label: string, icon: string, save: Save): HTMLElement {
  const button = h('vscode-button', { secondary: true, 'data-result': r.id, icon }, label);
  button.addEventListener('click', async () => {
    try {
      const saved = await save(r.id);
      if (saved) showStatus(`Saved ${saved}`);
    } catch (err) {
      showStatus((err as Error).message);
    }
  });
  return button;
}

/** Adds a result to the gallery: Save as PNG, and Save Tokens for a result whose grid the host kept. */
export function addResult(r: GenerationResult, save: { png: Save; tokens: Save }): void {
  // a result sent while the panel was loading also comes with its init
  if (document.querySelector(`figure.result[data-result="${CSS.escape(r.id)}"]`)) return;
  const buttons = [saveButton(r, 'Save as PNG', 'save', save.png), ...(r.tokens ? [saveButton(r, 'Save Tokens', 'symbol-array', save.tokens)] : [])];
  const details = h('dl', { class: 'result-settings' },
    ...r.settings.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))]),
    ...(r.grid ? [h('dt', {}, 'grid'), h('dd', {}, `${r.grid[0]}×${r.grid[1]}`)] : []),
    h('dt', {}, 'device'), h('dd', { title: r.device }, r.device),
    h('dt', {}, 'time'), h('dd', {}, `${r.seconds.toFixed(2)} s`));
  byId('results').prepend(
    h('figure', { class: 'card result', 'data-result': r.id },
      h('img', { src: r.image, alt: r.label, width: r.width, height: r.height }),
      h('figcaption', {}, h('div', { class: 'row' }, h('strong', {}, r.label), h('span', { class: 'muted' }, `${r.width}×${r.height}`), h('span', { class: 'spacer' }), ...buttons), details)),
  );
}

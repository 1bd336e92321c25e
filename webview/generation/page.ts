// The Generation panel's page: the Tokens form, the cells-to-redraw card, the Decoder form, the
// live preview and the results gallery. Each form row carries data-row, so the panel can show
// only the rows the chosen mode and decoder use.
import type { GenerationMode } from '../../common/protocol/generation.js';
import { byId, h } from '../common/dom.js';

const MODES: { mode: GenerationMode; label: string; description: string }[] = [
  { mode: 'decode', label: 'Decode tokens', description: 'a token grid as it is' },
  { mode: 'sample', label: 'Sample from a prior', description: 'a new grid' },
  { mode: 'inpaint', label: 'Inpaint a region', description: 'redraw painted cells' },
  { mode: 'variations', label: 'Variations', description: 'redraw a share of the cells' },
];

const field = (id: string, label: string, attrs: Record<string, string | number> = {}) =>
  h('vscode-textfield', { id, 'aria-label': label, size: 6, ...attrs });
const labelled = (id: string, text: string, ...controls: HTMLElement[]) =>
  [h('label', { for: controls[0]?.id ?? id, 'data-row': id }, text), h('div', { class: 'row', 'data-row': id }, ...controls)];
const muted = (text: string) => h('span', { class: 'muted' }, text);

export function buildPage(): void {
  document.body.append(
    h('header', { class: 'toolbar' }, h('h1', {}, 'Generation'), h('span', { class: 'spacer' }), h('span', { id: 'codebook', class: 'muted' })),
    h('main', { class: 'generation-layout' },
      h('div', { class: 'generation-controls' }, tokensCard(), maskCard(), decoderCard()),
      h('div', { class: 'generation-output' },
        h('figure', { id: 'ar-live', class: 'card live', hidden: true },
          h('canvas', { id: 'ar-grid', 'aria-label': 'the token grid as the autoregressive prior draws it' }),
          h('figcaption', { id: 'ar-caption', class: 'muted' })),
        h('figure', { id: 'live', class: 'card live', hidden: true },
          h('img', { id: 'preview', alt: 'current estimate of the image' }),
          h('figcaption', { id: 'live-caption', class: 'muted' })),
        h('section', { id: 'results', class: 'results', 'aria-live': 'polite' }),
      ),
    ),
  );
}

/** Says something in the status line (progress, errors, what was saved). */
export function showStatus(text: string): void {
  byId('status').textContent = text;
}

function tokensCard(): HTMLElement {
  return h('section', { class: 'card form', 'aria-label': 'tokens' },
    h('h2', { class: 'form-title' }, 'Tokens'),
    ...labelled('mode', 'Make',
      h('vscode-single-select', { id: 'mode', 'aria-label': 'what to make' },
        ...MODES.map((m) => h('vscode-option', { value: m.mode, description: m.description }, m.label)))),
    ...labelled('source', 'Grid',
      h('vscode-single-select', { id: 'source', 'aria-label': 'token source' }),
      h('vscode-button', { id: 'add-file', secondary: true, icon: 'folder-opened' }, 'Tokens file…')),
    ...labelled('prior', 'Prior',
      h('vscode-single-select', { id: 'prior', 'aria-label': 'token prior' }),
      h('vscode-button', { id: 'open-prior', secondary: true, icon: 'folder-opened' }, 'Prior file…'),
      h('vscode-button', { id: 'open-ar-prior', secondary: true, icon: 'folder-library', title: 'An autoregressive model folder (ONNX, config.json, unicode2.json)' }, 'Model folder…'),
      h('vscode-button', { id: 'fit-prior', secondary: true, icon: 'graph', title: "Fit a prior on the token sets you tick (held-out ones are left out)" }, 'Fit')),
    ...labelled('ar', 'Class',
      h('vscode-single-select', { id: 'class', 'aria-label': 'class' }),
      muted('guidance'), field('prior-guidance', 'classifier-free guidance of the prior', { title: 'uncond + G × (cond − uncond); 1 = none' })),
    ...labelled('grid', 'Size', field('rows', 'grid rows'), muted('×'), field('cols', 'grid columns'), muted('tokens')),
    ...labelled('variations', 'Redraw', field('variations-share', 'share of cells to redraw'), muted('% of the cells')),
    ...labelled('sampling', 'Sampling',
      muted('temperature'), field('temperature', 'temperature'),
      muted('top-k'), field('top-k', 'top-k'),
      muted('top-p'), field('top-p', 'top-p')),
    ...labelled('seed', 'Seed', field('seed-value', 'seed'), h('vscode-button', { id: 'new-seed', secondary: true, icon: 'refresh', title: 'A new random seed' }, 'New')),
  );
}

function maskCard(): HTMLElement {
  return h('section', { id: 'mask-card', class: 'card', 'aria-label': 'mask' },
    h('h2', {}, 'Cells to redraw'),
    // keeps-aspect: the canvas takes its source's aspect ratio from the token overlay's setAspect
    h('canvas', { id: 'mask', class: 'keeps-aspect', 'aria-label': 'token grid: drag to paint the cells to redraw' }),
    h('div', { class: 'row' },
      h('span', { id: 'mask-count', class: 'muted' }),
      h('span', { class: 'spacer' }),
      h('vscode-button', { id: 'clear-mask', secondary: true, icon: 'clear-all' }, 'Clear')),
  );
}

function decoderCard(): HTMLElement {
  return h('section', { class: 'card form', 'aria-label': 'decoder' },
    h('h2', { class: 'form-title' }, 'Decoder'),
    ...labelled('decoder', 'Decoder',
      h('vscode-single-select', { id: 'decoder', 'aria-label': 'decoder' }),
      h('vscode-button', { id: 'add-decoder', secondary: true, icon: 'folder-opened' }, 'Diffusion folder…')),
    ...labelled('scheduler', 'Sampler',
      h('vscode-single-select', { id: 'scheduler', 'aria-label': 'scheduler' },
        h('vscode-option', { value: 'ddim' }, 'DDIM'), h('vscode-option', { value: 'euler' }, 'Euler')),
      muted('steps'), field('steps', 'steps'),
      muted('guidance'), field('guidance', 'guidance scale')),
    ...labelled('upscale', 'Output',
      h('vscode-single-select', { id: 'upscale', 'aria-label': 'output size' },
        ...[1, 2, 4].map((u) => h('vscode-option', { value: u }, `${u}× (nearest)`)))),
    h('div', { class: 'row actions' },
      h('vscode-button', { id: 'generate', icon: 'sparkle' }, 'Generate'),
      h('vscode-button', { id: 'cancel', secondary: true, icon: 'debug-stop', hidden: true }, 'Cancel'),
      h('vscode-progress-bar', { id: 'progress', hidden: true }),
      h('span', { id: 'hint', class: 'muted' }),
      h('span', { id: 'status', class: 'muted', role: 'status' })),
  );
}

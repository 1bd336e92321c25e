// The Lab: a notebook of runs. Each cell shows its inputs, parameters, live progress and outputs
// (metrics, thumbnails, a token-grid preview, files) and can be re-run, opened or removed.
// The host owns the cells (kept in workspaceState); this view only renders what it is sent.
import '../common/elements.js';
import { labProtocol, type LabCell, type LabKind } from '../../common/protocol/lab.js';
import { connect } from '../common/vscode.js';
import { h, icon } from '../common/dom.js';
import { codeColor } from '../common/colors.js';

const host = connect(labProtocol, { cells: ({ cells }) => render(cells) });

const KINDS: { kind: LabKind; label: string; icon: string }[] = [
  { kind: 'build', label: 'Build', icon: 'database' },
  { kind: 'tokenize', label: 'Tokenize', icon: 'symbol-array' },
  { kind: 'decode', label: 'Decode', icon: 'file-media' },
  { kind: 'refine', label: 'Refine', icon: 'wand' },
  { kind: 'demo', label: 'Demo', icon: 'beaker' },
  { kind: 'generate', label: 'Generate', icon: 'sparkle' },
  { kind: 'fit', label: 'Fit', icon: 'graph-line' },
];
const kindIcon = (kind: LabKind): string => KINDS.find((k) => k.kind === kind)!.icon;
const STATUS_ICON: Record<LabCell['status'], string> = {
  running: 'loading codicon-modifier-spin', done: 'pass', failed: 'error', cancelled: 'circle-slash',
};

const toolbar = h('nav', { class: 'lab-toolbar', 'aria-label': 'new run' },
  ...KINDS.map((k) => {
    const b = h('vscode-button', { secondary: true, title: `New ${k.label.toLowerCase()} run`, 'data-run': k.kind, icon: k.icon }, k.label);
    b.addEventListener('click', () => void host.request('run', { kind: k.kind }));
    return b;
  }),
);
const list = h('div', { id: 'cells', class: 'lab-cells' });
document.body.classList.add('lab');
document.body.append(toolbar, list);

function action(name: 'rerun' | 'open' | 'remove' | 'cancel', title: string, codicon: string, cell: string): HTMLElement {
  const b = h('button', { class: 'icon-button', title, 'aria-label': title, 'data-action': name }, icon(codicon));
  b.addEventListener('click', () => void host.request(name, { cell }));
  return b;
}

/** A path cut in the middle when it does not fit: the start of the folder, an ellipsis, the whole
 *  file name (what tells two outputs of one run apart); the full path on hover. */
function pathView(file: string): HTMLElement {
  const cut = Math.max(file.lastIndexOf('/'), file.lastIndexOf('\\')) + 1;
  return h('span', { class: 'path', title: file }, h('span', { class: 'dir' }, file.slice(0, cut)), h('span', { class: 'base' }, file.slice(cut)));
}

function table(rows: [string, string | HTMLElement][], cls: string): HTMLElement | string {
  if (!rows.length) return '';
  return h('dl', { class: cls }, ...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', typeof v === 'string' ? { title: v } : {}, v)]));
}

/**
 * The settings a run was given and the figures it reported, each once: a figure that repeats a
 * setting (K = 256 after k = 256) replaces it, and says what was set when it differs (a build
 * that stopped early: iterations 12, set 20).
 */
function settingsAndResults(cell: LabCell): { settings: [string, string][]; results: [string, string][] } {
  const metrics = cell.metrics ?? {};
  const metricKey = new Map(Object.keys(metrics).map((k) => [k.toLowerCase(), k]));
  const settings: [string, string][] = [];
  const setFor = new Map<string, string>();
  for (const [key, value] of Object.entries(cell.params)) {
    const twin = metricKey.get(key.toLowerCase());
    if (twin === undefined) settings.push([key, String(value)]);
    else if (String(metrics[twin]) !== String(value)) setFor.set(twin, String(value));
  }
  const results = Object.entries(metrics).map(([k, v]): [string, string] => [k, setFor.has(k) ? `${v} (set ${setFor.get(k)})` : String(v)]);
  return { settings, results };
}

function tokenPreview(p: NonNullable<LabCell['tokenPreview']>): HTMLCanvasElement {
  const [gh, gw] = p.grid;
  const c = h('canvas', { class: 'token-preview', width: gw, height: gh, title: `${gh}×${gw} tokens` });
  const ctx = c.getContext('2d')!;
  const img = ctx.createImageData(gw, gh);
  p.ids.forEach((id, i) => img.data.set([...codeColor(id), 255], i * 4));
  ctx.putImageData(img, 0, 0);
  return c;
}

function progressView(cell: LabCell): HTMLElement | null {
  if (cell.status !== 'running' || !cell.progress) return null;
  return h('div', { class: 'progress' },
    h('vscode-progress-bar', { value: cell.progress.done, max: Math.max(1, cell.progress.total), indeterminate: cell.progress.total === 0 }),
    h('span', { class: 'muted' }, cell.progress.message ?? `${cell.progress.done} / ${cell.progress.total}`));
}

type SlurmTask = NonNullable<LabCell['slurm']>['tasks'][number];
const TASK_STATES: SlurmTask['state'][] = ['pending', 'running', 'done', 'failed'];
const TASK_ICON: Record<SlurmTask['state'], string> = { pending: 'clock', running: 'loading codicon-modifier-spin', done: 'pass', failed: 'error' };

function slurmTaskView(cell: string, t: SlurmTask): HTMLElement {
  const name = typeof t.task === 'number' ? `task ${t.task}` : t.task;
  // the job id once Slurm has given one (a pending task's status file has none yet)
  const what = [t.state, ...(t.job ? [t.job] : []), `${t.shards} shard${t.shards === 1 ? '' : 's'}`, ...(t.images !== undefined ? [`${t.images} images`] : [])].join(' · ');
  const log = h('button', { class: 'icon-button', title: `Open the log of ${name}`, 'aria-label': `Open the log of ${name}`, 'data-action': 'log' }, icon('output'));
  log.addEventListener('click', () => void host.request('log', { cell, task: t.task }));
  return h('li', { class: 'slurm-task', 'data-task': String(t.task), 'data-state': t.state },
    h('span', { class: `status status-${t.state}`, title: t.state }, icon(TASK_ICON[t.state])),
    h('span', { class: 'name' }, name),
    h('span', { class: 'muted what', title: what }, what),
    log,
    t.error ? h('div', { class: 'error' }, t.error) : '',
    t.tail ? h('pre', { class: 'tail', title: 'the last lines of its log' }, t.tail) : '');
}

/** A run on Slurm: its jobs and how many tasks are in each state (the merge step after an array
 *  not counted), then each task with its state, job and shards, a button that opens its log, and
 *  why it failed. Tasks come as the job folder names them: array tasks by number, a plan's by name. */
function slurmView(cell: LabCell): HTMLElement | string {
  const slurm = cell.slurm;
  if (!slurm) return '';
  const tasks = slurm.tasks.filter((t) => t.task !== 'merge');
  const counts = TASK_STATES.map((state) => `${tasks.filter((t) => t.state === state).length} ${state}`).join(', ');
  return h('section', { class: 'slurm', 'aria-label': 'Slurm tasks' },
    h('div', { class: 'slurm-summary muted' }, `Slurm jobs ${slurm.jobs.join(', ')}: ${counts}`),
    h('ul', { class: 'slurm-tasks' }, ...slurm.tasks.map((t) => slurmTaskView(cell.id, t))));
}

function cellView(cell: LabCell): HTMLElement {
  const time = new Date(cell.startedAt).toLocaleTimeString();
  const actions = h('span', { class: 'actions' },
    ...(cell.status === 'running'
      ? [action('cancel', 'Cancel', 'debug-stop', cell.id)]
      : [action('rerun', 'Run again', 'refresh', cell.id), action('open', 'Open in a panel', 'go-to-file', cell.id), action('remove', 'Remove', 'trash', cell.id)]),
  );
  const progress = progressView(cell) ?? '';
  const outputs = h('div', { class: 'outputs' },
    ...(cell.thumbnails ?? []).map((src) => h('img', { class: 'thumb', src, alt: 'output' })),
    cell.tokenPreview ? tokenPreview(cell.tokenPreview) : '',
  );
  const { settings, results } = settingsAndResults(cell);
  return h('article', { class: 'lab-cell', 'data-kind': cell.kind, 'data-status': cell.status, 'data-id': cell.id },
    // the title gets a line of its own: at the sidebar's width, beside the icons and buttons it was cut to a word
    h('header', {},
      h('span', { class: `status status-${cell.status}`, title: cell.status }, icon(STATUS_ICON[cell.status])),
      icon(kindIcon(cell.kind)),
      h('span', { class: 'muted time' }, time),
      actions),
    h('strong', { class: 'title' }, cell.title),
    table(Object.entries(cell.inputs).map(([k, v]) => [k, pathView(v)]), 'inputs'),
    table(settings, 'params'),
    progress,
    slurmView(cell),
    table(results, 'metrics'),
    outputs.childElementCount ? outputs : '',
    ...(cell.files ?? []).map((f) => h('div', { class: 'file muted' }, icon('file'), pathView(f))),
    cell.warning ? h('div', { class: 'warning' }, icon('warning'), ' ', cell.warning) : '',
    cell.error ? h('div', { class: 'error' }, cell.error) : '',
  );
}

/**
 * Each shown cell's element and what it shows apart from its progress. The host sends the whole
 * list on every progress tick of a running job; rebuilding every cell each time replaced the
 * buttons under the pointer, and a click that straddled a rebuild was lost. So a cell keeps its
 * element while it is unchanged, a tick replaces only its progress bar, and only cells that
 * changed are drawn again.
 */
const shown = new Map<string, { state: string; element: HTMLElement }>();

function render(cells: LabCell[]): void {
  if (!cells.length) {
    shown.clear();
    list.replaceChildren(h('p', { class: 'empty muted' }, 'No runs yet. Start one above, or from the command palette (UniCode²: …).'));
    return;
  }
  const elements = cells.map((cell) => {
    const state = JSON.stringify({ ...cell, progress: undefined });
    const before = shown.get(cell.id);
    const oldBar = before?.element.querySelector(':scope > .progress');
    const newBar = progressView(cell);
    if (before && before.state === state && !oldBar === !newBar) {
      if (oldBar && newBar) oldBar.replaceWith(newBar);
      return before.element;
    }
    const element = cellView(cell);
    shown.set(cell.id, { state, element });
    return element;
  });
  const ids = new Set(cells.map((c) => c.id));
  for (const id of shown.keys()) if (!ids.has(id)) shown.delete(id);
  // leave every element that stays in place where it is: remove the rest, then insert what is new
  const wanted = new Set<Element>(elements);
  for (const child of [...list.children]) if (!wanted.has(child)) child.remove();
  elements.forEach((element, i) => {
    if (list.children[i] !== element) list.insertBefore(element, list.children[i] ?? null);
  });
}

host
  .request('init')
  .then(render)
  .catch((err: Error) => list.replaceChildren(h('p', { class: 'error' }, err.message)));

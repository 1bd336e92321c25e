// Loads the built extension (dist/extension.js) in a plain node process and calls activate(), with
// a stand-in for the `vscode` module that only serves to observe: what the extension registers and
// which modules get required while it loads and activates. Run as a script, it prints one JSON
// document (ActivationReport) on stdout; test/unit/activation.test.ts runs it in a fresh process
// so nothing loaded earlier hides a require.
//
// The stand-in answers every API the activation touches: settings read their defaults, mementos
// are empty, there is no workspace folder, and anything else is an inert object whose methods
// return more inert objects (disposables, events, status-bar items...).
import Module from 'node:module';
import * as path from 'node:path';

export interface ActivationReport {
  /** every bare package name required while loading + activating, in first-seen order */
  packages: string[];
  /** command ids registered through vscode.commands.registerCommand */
  commands: string[];
  /** view types of the webview panel serializers registered (panels restored after a reload) */
  serializers: string[];
  /** milliseconds: require(dist/extension.js), then activate() */
  loadMs: number;
  activateMs: number;
}

type Inert = { (...args: unknown[]): Inert; [key: string | symbol]: unknown };

/** An object whose every property is another inert object and whose calls return one; what is
 *  assigned to it (statusBarItem.text = ...) reads back. */
function inert(label: string): Inert {
  const target = function () {} as unknown as Inert;
  const assigned = new Map<string | symbol, unknown>();
  return new Proxy(target, {
    get: (_t, prop) => {
      if (assigned.has(prop)) return assigned.get(prop);
      if (prop === 'then') return undefined; // not a thenable: `await inert` must not hang
      if (prop === Symbol.toPrimitive || prop === 'toString' || prop === 'toJSON') return () => label;
      return inert(`${label}.${String(prop)}`);
    },
    set: (_t, prop, value) => (assigned.set(prop, value), true),
    apply: () => inert(`${label}()`),
    construct: () => inert(`new ${label}`),
  });
}

// The names a bundle may import from 'vscode'. esbuild copies a required module's own properties
// into its import namespace, so the stand-in must list them; anything not named here reads as
// undefined and the probe fails loudly (add the name).
const API_NAMES = [
  'window', 'workspace', 'commands', 'env', 'extensions', 'languages', 'notebooks', 'l10n', 'debug', 'tasks',
  'Uri', 'EventEmitter', 'Disposable', 'CancellationTokenSource', 'StatusBarAlignment', 'ProgressLocation',
  'ConfigurationTarget', 'ViewColumn', 'ThemeIcon', 'ThemeColor', 'MarkdownString', 'RelativePattern', 'FileType',
  'QuickPickItemKind', 'TreeItem', 'TreeItemCollapsibleState', 'NotebookCellOutput', 'NotebookCellOutputItem',
  'ExtensionMode', 'UIKind', 'LogLevel', 'Range', 'Position', 'Selection',
];

function vscodeStandIn(report: Pick<ActivationReport, 'commands' | 'serializers'>): Record<string, unknown> {
  const configuration = { get: (_key: string, fallback?: unknown) => fallback, has: () => false, inspect: () => undefined, update: async () => undefined };
  const overrides: Record<string, Record<string | symbol, unknown>> = {
    workspace: { getConfiguration: () => configuration, workspaceFolders: undefined, isTrusted: true },
    commands: { registerCommand: (id: string) => (report.commands.push(id), inert(`command ${id}`)) },
    window: { registerWebviewPanelSerializer: (viewType: string) => (report.serializers.push(viewType), inert(`serializer ${viewType}`)) },
  };
  const api: Record<string, unknown> = {};
  for (const name of API_NAMES) {
    const base = inert(`vscode.${name}`);
    const own = overrides[name];
    api[name] = own ? new Proxy(base, { get: (t, prop) => (prop in own ? own[prop] : t[prop]) }) : base;
  }
  return api;
}

const memento = { get: (_key: string, fallback?: unknown) => fallback, update: async () => undefined, keys: () => [] };

export async function probeActivation(extensionMain: string): Promise<ActivationReport> {
  const packages: string[] = [];
  const registered = { commands: [] as string[], serializers: [] as string[] };
  const vscode = vscodeStandIn(registered);
  const loader = Module as unknown as { _load(request: string, parent: unknown, isMain: boolean): unknown };
  const original = loader._load;
  loader._load = function (request: string, parent: unknown, isMain: boolean) {
    if (!request.startsWith('.') && !path.isAbsolute(request) && !Module.isBuiltin(request)) {
      const name = request.startsWith('@') ? request.split('/').slice(0, 2).join('/') : request.split('/')[0]!;
      if (!packages.includes(name)) packages.push(name);
    }
    if (request === 'vscode') return vscode;
    return original.call(this, request, parent, isMain);
  };
  try {
    const t0 = performance.now();
    const extension = require(path.resolve(extensionMain)) as { activate(context: unknown): unknown };
    const t1 = performance.now();
    const context = new Proxy(inert('context'), {
      get: (t, prop) =>
        prop === 'subscriptions' ? [] :
        prop === 'workspaceState' || prop === 'globalState' ? memento :
        (t as Record<string | symbol, unknown>)[prop],
    });
    await extension.activate(context);
    const t2 = performance.now();
    return { packages, ...registered, loadMs: t1 - t0, activateMs: t2 - t1 };
  } finally {
    loader._load = original;
  }
}

if (require.main === module) {
  probeActivation(process.argv[2] ?? 'dist/extension.js').then(
    (report) => {
      process.stdout.write(JSON.stringify(report) + '\n');
      // Whatever activation started (timers, a native module holding the loop) must not keep this
      // probe alive: the report is all it is for.
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}

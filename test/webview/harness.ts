// Loads a panel's real bundle (dist/webview/<panel>.js) in headless Chromium inside the same
// CSP-locked page the extension serves, with a stand-in for acquireVsCodeApi: every message the
// webview posts goes through a real HostEndpoint of the panel's protocol (so a malformed request
// from the webview is caught) to the test's handlers, and the test can post back.
import { chromium, type Browser, type Page } from 'playwright-core';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { renderWebviewHtml, newNonce } from '../../extension/panels/html.js';
import { HostEndpoint, type AnyProtocol, type Envelope, type Handlers, type Params, type RequestName } from '../../common/protocol/shared.js';
import { TOKENS_MIME } from '../../common/protocol/notebook.js';

const root = path.resolve(__dirname, '../..');
export const artifacts = path.join(root, '.test-artifacts');
const fileUrl = (p: string): string => pathToFileURL(path.join(root, p)).href;

/** The bundles come from `node scripts/build.mjs` (npm test runs it before the tiers). */
function requireBundle(panel: string): void {
  if (!existsSync(path.join(root, `dist/webview/${panel}.js`))) {
    throw new Error(`dist/webview/${panel}.js is missing: run node scripts/build.mjs first`);
  }
}

export type Theme = 'light' | 'dark' | 'high-contrast';
/** Every theme a panel is screenshotted in. */
export const THEME_NAMES: Theme[] = ['light', 'dark', 'high-contrast'];

/** A small subset of VS Code's Default Light Modern / Dark Modern / Dark High Contrast colours. */
const THEMES: Record<Theme, Record<string, string>> = {
  dark: {
    foreground: '#cccccc', 'editor-background': '#1f1f1f', descriptionForeground: '#9d9d9d', 'sideBar-background': '#181818',
    'widget-border': '#313131', 'editorWidget-background': '#202020', 'editorWidget-border': '#454545', focusBorder: '#0078d4',
    'button-background': '#0078d4', 'button-foreground': '#ffffff', 'button-hoverBackground': '#026ec1', 'button-border': '#ffffff12',
    'button-secondaryBackground': '#313131', 'button-secondaryForeground': '#cccccc', 'button-secondaryHoverBackground': '#3c3c3c',
    'dropdown-background': '#313131', 'dropdown-border': '#3c3c3c', 'dropdown-foreground': '#cccccc', 'dropdown-listBackground': '#1f1f1f',
    'input-background': '#313131', 'input-border': '#3c3c3c', 'input-foreground': '#cccccc', 'input-placeholderForeground': '#989898',
    'editorHoverWidget-background': '#202020', 'editorHoverWidget-border': '#454545', 'editorHoverWidget-foreground': '#cccccc',
    'textLink-foreground': '#4daafc', 'textLink-activeForeground': '#4daafc', 'progressBar-background': '#0078d4', 'charts-blue': '#3794ff',
    'charts-green': '#89d185', 'errorForeground': '#f85149', 'editorWarning-foreground': '#cca700', 'icon-foreground': '#cccccc',
    'toolbar-hoverBackground': '#5a5d5e50', 'list-activeSelectionBackground': '#04395e', 'list-hoverBackground': '#2a2d2e',
    'badge-background': '#616161', 'badge-foreground': '#f8f8f8', 'testing-iconPassed': '#73c991', 'widget-shadow': '#0000005c',
    'settings-dropdownBackground': '#313131', 'settings-dropdownBorder': '#3c3c3c', 'settings-dropdownForeground': '#cccccc',
    'settings-dropdownListBorder': '#454545', 'settings-textInputBackground': '#313131', 'settings-textInputBorder': '#3c3c3c',
    'settings-textInputForeground': '#cccccc', 'list-activeSelectionForeground': '#ffffff', 'checkbox-background': '#313131', 'checkbox-border': '#3c3c3c',
    'font-family': 'system-ui, "Ubuntu", "Droid Sans", sans-serif', 'font-size': '13px', 'editor-font-family': '"DejaVu Sans Mono", monospace',
  },
  light: {
    foreground: '#3b3b3b', 'editor-background': '#ffffff', descriptionForeground: '#717171', 'sideBar-background': '#f8f8f8',
    'widget-border': '#e5e5e5', 'editorWidget-background': '#f8f8f8', 'editorWidget-border': '#c8c8c8', focusBorder: '#005fb8',
    'button-background': '#005fb8', 'button-foreground': '#ffffff', 'button-hoverBackground': '#0258a8', 'button-border': '#0000001a',
    'button-secondaryBackground': '#e5e5e5', 'button-secondaryForeground': '#3b3b3b', 'button-secondaryHoverBackground': '#cccccc',
    'dropdown-background': '#ffffff', 'dropdown-border': '#cecece', 'dropdown-foreground': '#3b3b3b', 'dropdown-listBackground': '#ffffff',
    'input-background': '#ffffff', 'input-border': '#cecece', 'input-foreground': '#3b3b3b', 'input-placeholderForeground': '#767676',
    'editorHoverWidget-background': '#f8f8f8', 'editorHoverWidget-border': '#c8c8c8', 'editorHoverWidget-foreground': '#3b3b3b',
    'textLink-foreground': '#005fb8', 'textLink-activeForeground': '#005fb8', 'progressBar-background': '#005fb8', 'charts-blue': '#1a85ff',
    'charts-green': '#388a34', 'errorForeground': '#f85149', 'editorWarning-foreground': '#bf8803', 'icon-foreground': '#3b3b3b',
    'toolbar-hoverBackground': '#b8b8b850', 'list-activeSelectionBackground': '#e8e8e8', 'list-hoverBackground': '#f2f2f2',
    'badge-background': '#cccccc', 'badge-foreground': '#3b3b3b', 'testing-iconPassed': '#388a34', 'widget-shadow': '#00000029',
    'settings-dropdownBackground': '#ffffff', 'settings-dropdownBorder': '#cecece', 'settings-dropdownForeground': '#3b3b3b',
    'settings-dropdownListBorder': '#c8c8c8', 'settings-textInputBackground': '#ffffff', 'settings-textInputBorder': '#cecece',
    'settings-textInputForeground': '#3b3b3b', 'list-activeSelectionForeground': '#000000', 'checkbox-background': '#f8f8f8', 'checkbox-border': '#cecece',
    'font-family': 'system-ui, "Ubuntu", "Droid Sans", sans-serif', 'font-size': '13px', 'editor-font-family': '"DejaVu Sans Mono", monospace',
  },
  // High contrast leaves most fills black and marks every widget edge with contrastBorder and the
  // focused one with contrastActiveBorder.
  'high-contrast': {
    foreground: '#ffffff', 'editor-background': '#000000', descriptionForeground: '#ffffffb3', 'sideBar-background': '#000000',
    contrastBorder: '#6fc3df', contrastActiveBorder: '#f38518', focusBorder: '#f38518',
    'widget-border': '#6fc3df', 'editorWidget-background': '#0c141f', 'editorWidget-border': '#6fc3df',
    'button-background': '#000000', 'button-foreground': '#ffffff', 'button-border': '#6fc3df',
    'button-secondaryBackground': '#000000', 'button-secondaryForeground': '#ffffff',
    'dropdown-background': '#000000', 'dropdown-border': '#6fc3df', 'dropdown-foreground': '#ffffff', 'dropdown-listBackground': '#000000',
    'input-background': '#000000', 'input-border': '#6fc3df', 'input-foreground': '#ffffff', 'input-placeholderForeground': '#ffffffb3',
    'editorHoverWidget-background': '#0c141f', 'editorHoverWidget-border': '#6fc3df', 'editorHoverWidget-foreground': '#ffffff',
    'textLink-foreground': '#21a6ff', 'textLink-activeForeground': '#21a6ff', 'progressBar-background': '#6fc3df', 'charts-blue': '#3794ff',
    'charts-green': '#89d185', 'errorForeground': '#f48771', 'editorWarning-foreground': '#ffd370', 'icon-foreground': '#ffffff',
    'badge-background': '#000000', 'badge-foreground': '#ffffff', 'testing-iconPassed': '#73c991',
    'settings-dropdownBackground': '#000000', 'settings-dropdownBorder': '#6fc3df', 'settings-dropdownForeground': '#ffffff',
    'settings-dropdownListBorder': '#6fc3df', 'settings-textInputBackground': '#000000', 'settings-textInputBorder': '#6fc3df',
    'settings-textInputForeground': '#ffffff', 'list-activeSelectionForeground': '#ffffff', 'checkbox-background': '#000000', 'checkbox-border': '#6fc3df',
    'font-family': 'system-ui, "Ubuntu", "Droid Sans", sans-serif', 'font-size': '13px', 'editor-font-family': '"DejaVu Sans Mono", monospace',
  },
};

/** A theme's colour as [r, g, b] (for comparing with canvas pixels). */
export function themeRgb(theme: Theme, variable: string): [number, number, number] {
  const hex = THEMES[theme][variable];
  if (!hex || !/^#[0-9a-f]{6}$/i.test(hex)) throw new Error(`no opaque colour ${variable} in the ${theme} theme`);
  return [parseInt(hex.slice(1, 3), 16), parseInt(hex.slice(3, 5), 16), parseInt(hex.slice(5, 7), 16)];
}

/** The test's host: handlers for the requests the test expects (typed by the protocol, as the
 *  extension's are); any other request gets an error reply naming it. */
export type TestHost<P extends AnyProtocol> = Partial<Handlers<P>>;

export interface PanelPage<P extends AnyProtocol> {
  page: Page;
  /** every envelope the webview posted, in order */
  posted: Envelope[];
  /** the parameters of every request of that type the webview sent, in order */
  requests<K extends RequestName<P>>(type: K): Params<P, K>[];
  /** requests from the webview that failed the protocol's schemas */
  rejected: string[];
  /** the console warnings the page logged (the webview reports dropped messages there) */
  warnings: string[];
  /** loads the page again keeping its saved state, as VS Code brings back a webview that was not
   *  kept alive while its tab was hidden */
  reload(): Promise<void>;
  /** posts a raw message into the webview, as the host's postMessage would */
  post(message: unknown): Promise<void>;
  /** switches the colour theme the way VS Code does: variables on <html>'s style, kind on <body>'s class */
  setTheme(theme: Theme): Promise<void>;
  screenshot(name: string): Promise<string>;
  close(): Promise<void>;
}

let browser: Browser | null = null;

export async function openPanel<P extends AnyProtocol>(
  panel: string,
  protocol: P,
  theme: Theme,
  host: TestHost<P>,
  viewport = { width: 1100, height: 700 },
): Promise<PanelPage<P>> {
  requireBundle(panel);
  browser ??= await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--allow-file-access-from-files'],
  });
  const page = await browser.newPage({ viewport, deviceScaleFactor: 1 });
  const posted: Envelope[] = [];
  const rejected: string[] = [];
  const warnings: string[] = [];
  page.on('console', (m) => (m.type() === 'warning' || m.type() === 'error') && warnings.push(m.text()));
  page.on('pageerror', (e) => warnings.push(`pageerror: ${e.message}`));

  const post = async (message: unknown): Promise<void> => {
    await page.evaluate((m) => window.postMessage(m, '*'), message as object);
  };
  const handlers = Object.fromEntries(
    Object.keys(protocol.requests).map((type) => [
      type,
      (host as Record<string, unknown>)[type] ??
        (() => {
          throw new Error(`this test does not answer ${type} requests`);
        }),
    ]),
  ) as Handlers<P>;
  const endpoint = new HostEndpoint(protocol, handlers, { post: (m) => void post(m), onReject: (reason) => rejected.push(reason) });
  await page.exposeFunction('__toHost', async (envelope: Envelope) => {
    posted.push(envelope);
    await endpoint.receive(envelope);
  });

  const nonce = newNonce();
  const vars = Object.entries(THEMES[theme]).map(([k, v]) => `--vscode-${k}: ${v};`).join(' ');
  const standIn = `<style nonce="${nonce}">html { ${vars} }</style>
<script nonce="${nonce}">
  // kept in sessionStorage: it outlives a reload() as VS Code's outlives a hidden tab
  let state = JSON.parse(sessionStorage.getItem('vscode-state') ?? 'null') ?? undefined;
  window.acquireVsCodeApi = () => ({
    postMessage: (m) => window.__toHost(m),
    getState: () => state,
    setState: (s) => { state = s; sessionStorage.setItem('vscode-state', JSON.stringify(s)); },
  });
  document.addEventListener('DOMContentLoaded', () => document.body.classList.add('vscode-${theme}'));
</script>`;
  const html = renderWebviewHtml({
    cspSource: 'file:',
    nonce,
    title: panel,
    script: fileUrl(`dist/webview/${panel}.js`),
    stylesheet: fileUrl('media/styles/webview.css'),
    codicons: fileUrl('media/styles/codicons/codicon.css'),
  }).replace('<body>', `<body>\n${standIn}`);
  const dir = path.join(artifacts, 'webview');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${panel}-${theme}.html`);
  writeFileSync(file, html);
  await page.goto(pathToFileURL(file).href);

  return {
    page,
    posted,
    requests: (type) => posted.flatMap((m) => (m.kind === 'request' && m.type === type ? [m.params as never] : [])),
    rejected,
    warnings,
    post,
    async reload() {
      await page.reload();
    },
    async setTheme(next) {
      await page.evaluate(([vars, kind, all]) => {
        for (const [k, v] of Object.entries(vars as Record<string, string>)) document.documentElement.style.setProperty(`--vscode-${k}`, v);
        document.body.classList.remove(...(all as string[]).map((t) => `vscode-${t}`));
        document.body.classList.add(`vscode-${kind as string}`);
      }, [THEMES[next], next, THEME_NAMES] as const);
    },
    async screenshot(name) {
      const shots = path.join(artifacts, 'screenshots');
      mkdirSync(shots, { recursive: true });
      const out = path.join(shots, `${name}.png`);
      await page.screenshot({ path: out });
      return out;
    },
    async close() {
      await page.close();
      // every test checks, on the way out, that the bundle only sent requests its protocol allows
      if (rejected.length) throw new Error(`the webview sent malformed requests: ${rejected.join('; ')}`);
    },
  };
}

export async function closeBrowser(): Promise<void> {
  await browser?.close();
  browser = null;
}


/** Canvas pixel (CSS coordinates, DPR 1) as [r, g, b, a]. */
export async function canvasPixel(page: Page, selector: string, x: number, y: number): Promise<number[]> {
  return page.evaluate(
    ([sel, px, py]) => {
      const c = document.querySelector(sel as string) as HTMLCanvasElement;
      return Array.from(c.getContext('2d')!.getImageData(px as number, py as number, 1, 1).data);
    },
    [selector, x, y] as const,
  );
}

/** The photo's own pixels at fractional positions (decoded into a scratch canvas at its natural size). */
export async function photoPixels(page: Page, uri: string, at: [number, number][]): Promise<number[][]> {
  return page.evaluate(
    async ([src, points]) => {
      const img = new Image();
      img.src = src as string;
      await img.decode();
      const c = document.createElement('canvas');
      c.width = img.naturalWidth;
      c.height = img.naturalHeight;
      const ctx = c.getContext('2d')!;
      ctx.drawImage(img, 0, 0);
      return (points as [number, number][]).map(([fx, fy]) => Array.from(ctx.getImageData(Math.floor(fx * c.width), Math.floor(fy * c.height), 1, 1).data));
    },
    [uri, at] as const,
  );
}

/**
 * Polls `predicate` (e.g. on `posted`, which fills asynchronously, or a canvas pixel read back from
 * the page) until it holds or 5 s pass.
 */
export async function until(predicate: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (const started = Date.now(); !(await predicate()); await new Promise((r) => setTimeout(r, 20))) {
    if (Date.now() - started > 5000) throw new Error(`timed out waiting for ${what}`);
  }
}

export interface RendererPage {
  page: Page;
  warnings: string[];
  /** renders one output item (as VS Code's notebook does) into a fresh element #output-<id> */
  render(id: string, data: unknown): Promise<void>;
  screenshot(name: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * The notebook renderer's real bundle (dist/webview/tokens-renderer.js, an ES module) in a page
 * themed like a VS Code notebook, loaded the way VS Code loads renderers: imported, activate()
 * called, renderOutputItem(item, element) per output. The page is served through Playwright's
 * request routing under a made-up origin (ES modules do not load from file: URLs); nothing
 * leaves the machine.
 */
export async function openRenderer(theme: Theme, viewport = { width: 900, height: 700 }): Promise<RendererPage> {
  requireBundle('tokens-renderer');
  browser ??= await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--allow-file-access-from-files'] });
  const page = await browser.newPage({ viewport, deviceScaleFactor: 1 });
  const warnings: string[] = [];
  page.on('console', (m) => (m.type() === 'warning' || m.type() === 'error') && warnings.push(m.text()));
  page.on('pageerror', (e) => warnings.push(`pageerror: ${e.message}`));
  const vars = Object.entries(THEMES[theme]).map(([k, v]) => `--vscode-${k}: ${v};`).join(' ');
  const html = `<!DOCTYPE html><html style='${vars}'><head><meta charset="UTF-8"></head>
<body class="vscode-${theme}" style="background: var(--vscode-editor-background); color: var(--vscode-foreground); font-family: var(--vscode-font-family); margin: 12px">
<script type="module">
  import { activate } from './tokens-renderer.js';
  const api = activate();
  window.__render = (id, data) => {
    const element = document.createElement('div');
    element.id = 'output-' + id;
    document.body.append(element);
    return api.renderOutputItem({ id, mime: ${JSON.stringify(TOKENS_MIME)}, json: () => data }, element);
  };
</script></body></html>`;
  await page.route('https://notebook.test/**', (route) => {
    const url = new URL(route.request().url());
    if (url.pathname === '/tokens-renderer.js') return route.fulfill({ path: path.join(root, 'dist/webview/tokens-renderer.js'), contentType: 'text/javascript' });
    return route.fulfill({ body: html, contentType: 'text/html' });
  });
  await page.goto('https://notebook.test/');
  await page.waitForFunction(() => typeof (window as unknown as { __render?: unknown }).__render === 'function');
  return {
    page,
    warnings,
    render: (id, data) => page.evaluate(([i, d]) => (window as unknown as { __render(id: string, d: unknown): Promise<void> }).__render(i as string, d), [id, data] as const),
    async screenshot(name) {
      const out = path.join(artifacts, 'screenshots', `${name}.png`);
      mkdirSync(path.dirname(out), { recursive: true });
      await page.screenshot({ path: out, fullPage: true });
      return out;
    },
    close: () => page.close(),
  };
}

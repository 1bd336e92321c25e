// Drives the code-server workbench the way a person does: command palette, the simple file
// dialog (a quick input in the browser build), notifications, and the webviews two frames deep.
import { chromium, type BrowserContext, type Frame, type Locator, type Page } from 'playwright-core';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './code-server.js';

const artifactsDir = join(repoRoot, '.test-artifacts', 'e2e');

export interface Workbench {
  page: Page;
  /** Folder of this workbench's screenshots: .test-artifacts/e2e/<name>/. */
  artifacts: string;
  /** Saves a numbered screenshot (01-<step>.png, ...) so each step can be looked at afterwards. */
  screenshot(step: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * Debian's chromium, headless, with a fresh profile; code-server loaded and its workbench visible.
 * `name` names the folder its screenshots go to.
 */
export async function openWorkbench(url: string, name: string, timeoutMs = 90_000): Promise<Workbench> {
  const profile = await mkdtemp(join(tmpdir(), 'unicode2-e2e-chromium-'));
  let context: BrowserContext | undefined;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      viewport: { width: 1400, height: 900 },
      // Playwright sets the profile itself and refuses --user-data-dir here.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(url);
    await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: timeoutMs });
    const opened = context;
    const artifacts = join(artifactsDir, name);
    await rm(artifacts, { recursive: true, force: true });
    await mkdir(artifacts, { recursive: true });
    let shots = 0;
    return {
      page,
      artifacts,
      screenshot: async (step) => {
        shots += 1;
        await page.screenshot({ path: join(artifacts, `${String(shots).padStart(2, '0')}-${step}.png`) });
      },
      close: async () => {
        await opened.close();
        await rm(profile, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await context?.close();
    await rm(profile, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Runs a command from the palette by its full title ("UniCode²: Run Demo"). A palette opened before
 * the extension host has registered the extension never lists its commands and does not refresh,
 * so the palette is reopened until the entry shows up.
 */
export async function runCommand(page: Page, title: string, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const palette = page.locator('.quick-input-widget');
  const entry = palette.locator('.monaco-list-row', { hasText: title }).first();
  while (Date.now() < deadline) {
    await page.keyboard.press('Escape');
    // A panel that just opened may hold the keyboard focus inside its webview iframe, where F1
    // only reaches the workbench once the webview has loaded: give the focus back to the page.
    await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
    await page.keyboard.press('F1');
    try {
      await palette.locator('input').waitFor({ state: 'visible', timeout: 10_000 });
    } catch {
      continue; // the palette did not open: try again until the deadline
    }
    await page.keyboard.type(title);
    try {
      await entry.waitFor({ state: 'visible', timeout: 3_000 });
      await entry.click();
      return;
    } catch {
      await page.keyboard.press('Escape');
      await page.waitForTimeout(2_000);
    }
  }
  throw new Error(`command "${title}" never appeared in the palette within ${timeoutMs} ms`);
}

/**
 * Answers the browser build's simple file dialog, a quick input whose text is a path: the absolute
 * path is typed over what is there and accepted with Enter. Two races are handled by retrying:
 * the dialog's first listing of its start folder ends by writing that folder back into the input,
 * over anything typed before it finished; and an Enter that comes before the dialog has resolved
 * the typed path moves into the folder instead of accepting it. So before every Enter the input is
 * checked to still hold the path (typed again if not), until the dialog closes.
 */
export async function answerFileDialog(page: Page, absolutePath: string, timeoutMs = 60_000): Promise<void> {
  const widget = page.locator('.quick-input-widget');
  const input = widget.locator('input');
  const value = () => input.inputValue().catch(() => '');
  const deadline = Date.now() + timeoutMs;
  // The palette that ran the command closes as the dialog opens in the same widget: wait until the
  // input holds a path (the dialog starts at the workspace folder) rather than the palette's ">...".
  while (!(await value()).startsWith('/')) {
    if (Date.now() > deadline) throw new Error(`no file dialog opened within ${timeoutMs} ms`);
    await page.waitForTimeout(250);
  }
  let seen = '';
  while (Date.now() < deadline) {
    if ((await value()) !== absolutePath) await input.fill(absolutePath);
    // The dialog resolves the typed path asynchronously; give it a moment before each Enter.
    await page.waitForTimeout(1_000);
    seen = await value();
    if (seen !== absolutePath) continue;
    await input.press('Enter');
    try {
      await widget.waitFor({ state: 'hidden', timeout: 2_000 });
      return;
    } catch {
      // Still open: either the command asks its next question in the same widget (a quick pick,
      // whose input holds no path), or the dialog moved into the folder: type the path again.
      if (!(await value()).startsWith('/')) return;
    }
  }
  throw new Error(`the file dialog did not accept ${absolutePath} within ${timeoutMs} ms (its input last held "${seen}")`);
}

/**
 * The frame of the webview whose document contains `selector`. Webview content sits two frames deep
 * (iframe.webview > #active-frame); searching every frame also copes with several panels open.
 */
export async function findWebviewFrame(page: Page, selector: string, timeoutMs = 60_000): Promise<Frame> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const frame of page.frames()) {
      if (frame === page.mainFrame()) continue;
      try {
        if (await frame.$(selector)) return frame;
      } catch {
        // the frame navigated or went away while being searched
      }
    }
    await page.waitForTimeout(500);
  }
  throw new Error(`no webview shows "${selector}" within ${timeoutMs} ms`);
}

/** The notification toast whose text contains `text`. */
export function notification(page: Page, text: string | RegExp) {
  return page.locator('.notification-toast', { hasText: text }).first();
}

/**
 * Shows a file in the Explorer, expanding the folders on its way (`segments` from the workspace
 * root), and returns its row.
 */
export async function revealInExplorer(page: Page, segments: string[], timeoutMs = 30_000): Promise<Locator> {
  await runCommand(page, 'View: Show Explorer');
  // a row's aria-label is its file name
  const row = (name: string): Locator => page.locator(`.explorer-folders-view .monaco-list-row[aria-label="${name}"]`).first();
  for (const [i, name] of segments.entries()) {
    const r = row(name);
    await r.waitFor({ state: 'visible', timeout: timeoutMs });
    if (i < segments.length - 1 && (await r.getAttribute('aria-expanded')) !== 'true') await r.click();
  }
  return row(segments.at(-1)!);
}

/**
 * Explorer > right click > Open With… > the editor named `editor` (e.g. "UniCode² Codebook"). A
 * click that lands while the context menu is still settling is sometimes lost (seen once here:
 * the item stayed highlighted, nothing opened), so the item is chosen again, by keyboard, until the
 * editor picker shows.
 */
export async function openWith(page: Page, row: Locator, editor: string): Promise<void> {
  await row.click({ button: 'right' });
  const item = page.locator('.context-view .monaco-menu .action-label', { hasText: /^Open With/ }).first();
  const choice = page.locator('.quick-input-widget .monaco-list-row', { hasText: editor }).first();
  await item.click();
  for (let attempt = 0; ; attempt++) {
    try {
      await choice.waitFor({ state: 'visible', timeout: 5_000 });
      break;
    } catch (err) {
      if (attempt === 3 || !(await item.isVisible())) throw err;
      await item.hover();
      await page.keyboard.press('Enter');
    }
  }
  await choice.click();
}

/** Picks the entry `label` of the quick pick that is open (or opening): typed as its filter, then Enter. */
export async function pickQuickItem(page: Page, label: string, timeoutMs = 30_000): Promise<void> {
  const widget = page.locator('.quick-input-widget');
  await widget.locator('.monaco-list-row', { hasText: label }).first().waitFor({ state: 'visible', timeout: timeoutMs });
  await widget.locator('input').fill(label);
  await page.keyboard.press('Enter');
  await widget.waitFor({ state: 'hidden', timeout: timeoutMs });
}

/**
 * Answers the input box that is open (or opening) — after a file dialog, in the same widget — with
 * `value` typed over what it offers, or with what it offers; returns the value it offered.
 */
export async function answerInputBox(page: Page, value?: string, timeoutMs = 30_000): Promise<string> {
  const widget = page.locator('.quick-input-widget');
  const input = widget.locator('input');
  const deadline = Date.now() + timeoutMs;
  let offered = '';
  // the file dialog's path stays in the input until the box replaces it
  while (!offered || offered.startsWith('/') || offered.startsWith('>')) {
    if (Date.now() > deadline) throw new Error(`no input box opened within ${timeoutMs} ms`);
    await page.waitForTimeout(250);
    offered = (await widget.isVisible()) ? await input.inputValue().catch(() => '') : '';
  }
  if (value !== undefined) await input.fill(value);
  await input.press('Enter');
  await widget.waitFor({ state: 'hidden', timeout: timeoutMs });
  return offered;
}

/** Clicks the button `name` of the modal dialog that is open (or opening). */
export async function answerDialog(page: Page, name: string, timeoutMs = 30_000): Promise<void> {
  const dialog = page.locator('.monaco-dialog-box');
  await dialog.waitFor({ state: 'visible', timeout: timeoutMs });
  await dialog.getByRole('button', { name, exact: true }).click();
  await dialog.waitFor({ state: 'hidden', timeout: timeoutMs });
}

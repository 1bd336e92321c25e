// UniCode² Studio inside a real VS Code (code-server + Chromium), driven as a person would:
// command palette, the file dialog, progress notifications and the webview panels.
// The steps share one workbench and run in order: the codebook built first is the one tokenized
// with, opened, and protected by the cancelled rebuild at the end.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Page } from 'playwright-core';
import { readCodebook } from '../../extension/engine/codebook';
import { repoRoot, startCodeServer, type CodeServer } from './code-server';
import { answerFileDialog, findWebviewFrame, notification, openWith, openWorkbench, revealInExplorer, runCommand, type Workbench } from './workbench';
import { listFolder, makeRepeatedImages, makeWorkspace, sha256, writeWorkspaceSettings } from './workspace';

// Small and quick for the codebook the later steps use. The cancelled build is made to run for
// minutes however fast the machine (every one of 1000 iterations, no early stop), so Cancel is
// always pressed while it runs.
const quickSettings = { 'unicode2.device': 'cpu', 'unicode2.encoder': 'dct', 'unicode2.k': 64, 'unicode2.iterations': 5 };
const slowSettings = { ...quickSettings, 'unicode2.k': 512, 'unicode2.iterations': 1000, 'unicode2.tolerance': 0 };
const STEP_TIMEOUT = 5 * 60_000;

describe('UniCode² Studio in code-server', { timeout: 20 * 60_000 }, () => {
  let workspace: string;
  let server: CodeServer | undefined;
  let workbench: Workbench | undefined;
  const bench = (): Workbench => {
    if (!workbench) throw new Error('the workbench did not open');
    return workbench;
  };
  const page = (): Page => bench().page;
  const codebookFile = () => join(workspace, '.unicode2', 'codebook.safetensors');

  /** A step that leaves a screenshot behind when it fails, to see what the workbench showed. */
  const step = (name: string, fn: () => Promise<void>) =>
    test(name, { timeout: STEP_TIMEOUT }, async () => {
      try {
        await fn();
      } catch (err) {
        await workbench?.screenshot(`failed-${name.replace(/[^a-z0-9]+/gi, '-')}`).catch(() => undefined);
        throw err;
      }
    });

  before(async () => {
    // Run against what the sources say now, also when this file is run on its own.
    await promisify(execFile)('node', ['scripts/build.mjs', '--quiet'], { cwd: repoRoot });
    workspace = await makeWorkspace();
    await writeWorkspaceSettings(workspace, quickSettings);
    server = await startCodeServer({ workspace });
    workbench = await openWorkbench(server.url, 'studio');
    await workbench.screenshot('workbench');
  }, { timeout: STEP_TIMEOUT });

  after(async () => {
    if (server && workbench) await server.saveLogs(join(workbench.artifacts, 'logs')).catch(() => undefined);
    await workbench?.close();
    await server?.stop();
    if (workspace) await rm(workspace, { recursive: true, force: true });
  });

  step('Build Codebook from Folder… writes the workspace codebook', async () => {
    await runCommand(page(), 'UniCode²: Build Codebook from Folder…');
    await answerFileDialog(page(), join(workspace, 'images') + '/');
    await bench().screenshot('build-running');
    await waitFor(() => existsSync(codebookFile()), 4 * 60_000, 'the codebook file to be written');
    // Written whole under its final name (atomically): it reads back as the build the settings asked for.
    const cb = await readCodebook(codebookFile());
    assert.deepEqual([cb.frozen.rows, cb.frozen.cols, cb.meta.encoder.id], [quickSettings['unicode2.k'], 768, 'dct:224']);
    await bench().screenshot('build-done');
  });

  step('Tokenize Image… opens the Token Grid panel with a 14x14 grid', async () => {
    await runCommand(page(), 'UniCode²: Tokenize Image…');
    await answerFileDialog(page(), join(workspace, 'images', 'coffee.jpg'));
    const view = await findWebviewFrame(page(), 'canvas#token-grid[data-drawn="true"]', 3 * 60_000);
    const grid = view.locator('canvas#token-grid');
    assert.equal(await grid.getAttribute('data-grid-h'), '14');
    assert.equal(await grid.getAttribute('data-grid-w'), '14');
    await view.locator('#reconstruction').waitFor({ state: 'visible', timeout: 30_000 });
    await page().locator('.tab', { hasText: 'Tokens: coffee.jpg' }).waitFor({ state: 'visible', timeout: 10_000 });

    await grid.hover({ position: { x: 10, y: 10 } });
    const tooltip = view.locator('#tooltip');
    await tooltip.waitFor({ state: 'visible', timeout: 10_000 });
    const code = Number(/code (\d+)/.exec(await tooltip.innerText())?.[1]);
    assert.ok(Number.isInteger(code) && code >= 0 && code < quickSettings['unicode2.k'], `the tooltip names a code of the K=64 codebook (got ${code})`);
    await bench().screenshot('token-grid');
  });

  step('Open Codebook… draws the usage heatmap and explains a cell on hover', async () => {
    await runCommand(page(), 'UniCode²: Open Codebook…');
    await answerFileDialog(page(), codebookFile());
    const view = await findWebviewFrame(page(), 'canvas#heatmap[data-drawn="true"]', 2 * 60_000);
    const heatmap = view.locator('canvas#heatmap');
    assert.equal(await heatmap.getAttribute('data-k'), String(quickSettings['unicode2.k']));
    assert.match(await view.locator('#summary').innerText(), new RegExp(`\\b${quickSettings['unicode2.k']}\\b`));

    const box = await heatmap.boundingBox();
    assert.ok(box && box.width > 0 && box.height > 0, 'the heatmap canvas has a size on screen');
    await heatmap.hover({ position: { x: box.width / 2, y: box.height / 2 } });
    const tooltip = view.locator('#tooltip');
    await tooltip.waitFor({ state: 'visible', timeout: 10_000 });
    const text = await tooltip.innerText();
    assert.match(text, /code \d+/);
    assert.match(text, /count [\d,]+/);
    await bench().screenshot('codebook-heatmap');
  });

  step('Explorer: Open With… UniCode² Codebook shows the heatmap; a .safetensors without UniCode² metadata says so', async () => {
    await openWith(page(), await revealInExplorer(page(), ['.unicode2', 'codebook.safetensors']), 'UniCode² Codebook');
    const view = await findWebviewFrame(page(), 'canvas#heatmap[data-drawn="true"]', 2 * 60_000);
    assert.equal(await view.locator('canvas#heatmap').getAttribute('data-k'), String(quickSettings['unicode2.k']));
    await page().locator('.tab', { hasText: 'codebook.safetensors' }).first().waitFor({ state: 'visible', timeout: 10_000 });
    await bench().screenshot('codebook-editor');

    // model weights (the reference package's file): no UniCode² metadata
    await copyFile(join(repoRoot, 'test', 'fixtures', 'safetensors', 'reference.safetensors'), join(workspace, 'weights.safetensors'));
    await openWith(page(), await revealInExplorer(page(), ['weights.safetensors']), 'UniCode² Codebook');
    const notice = await findWebviewFrame(page(), '#notice:not([hidden])', 60_000);
    assert.match(await notice.locator('#notice').innerText(), /cannot be shown as a UniCode² codebook[\s\S]*not a UniCode² codebook/);
    await bench().screenshot('not-a-codebook');
  });

  step('Explorer: a tokens file opens in the token set editor, its grid over the photo', async () => {
    (await revealInExplorer(page(), ['.unicode2', 'tokens', 'coffee.tokens.json'])).click();
    const view = await findWebviewFrame(page(), 'canvas#set-grid[data-drawn="true"]', 60_000);
    assert.deepEqual(await view.locator('.image-item').allInnerTexts(), ['coffee.jpg']);
    const box = await view.locator('canvas#set-grid').boundingBox();
    assert.ok(box && Math.abs(box.width / box.height - 256 / 171) < 0.03, `coffee.jpg (256 x 171) shows at ${box?.width} x ${box?.height}`);
    assert.match(await view.locator('#usage').innerText(), /tokens\s*196/);
    await bench().screenshot('token-set-editor');
  });

  step('the getting-started walkthrough opens and its first step\'s button builds from the sample photos', async () => {
    await runCommand(page(), 'Welcome: Open Walkthrough...');
    await page().locator('.quick-input-widget .monaco-list-row', { hasText: 'Get started with UniCode² Studio' }).first().click();
    const button = page().getByRole('button', { name: 'Build from the sample photos' });
    await button.waitFor({ state: 'visible', timeout: 30_000 });
    await bench().screenshot('walkthrough');
    await button.click();
    // the demo builds K = 256 from the bundled photos and opens that codebook
    await findWebviewFrame(page(), 'canvas#heatmap[data-k="256"][data-drawn="true"]', 3 * 60_000);
    await bench().screenshot('walkthrough-demo-done');
  });

  step('cancelling a build keeps the previous codebook byte for byte', async () => {
    const before = await sha256(codebookFile());
    const folderBefore = await listFolder(join(workspace, '.unicode2'));
    const images = await makeRepeatedImages(workspace, 'images-repeated', 6);
    await writeWorkspaceSettings(workspace, slowSettings);
    // The settings file is re-read from disk by the workbench's file watcher.
    await page().waitForTimeout(3_000);

    await runCommand(page(), 'UniCode²: Build Codebook from Folder…');
    await answerFileDialog(page(), images + '/');
    const cancel = page().locator('.notification-toast').getByRole('button', { name: 'Cancel' }).first();
    await cancel.waitFor({ state: 'visible', timeout: 60_000 });
    await bench().screenshot('slow-build-running');
    await cancel.click();

    await notification(page(), 'build cancelled').waitFor({ state: 'visible', timeout: 60_000 });
    await bench().screenshot('slow-build-cancelled');
    assert.equal(await sha256(codebookFile()), before, 'the codebook is byte-identical to before the cancelled build');
    assert.deepEqual(await listFolder(join(workspace, '.unicode2')), folderBefore, 'no temp file is left beside it');
  });
});

async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

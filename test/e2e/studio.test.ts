// UniCode² Studio inside a real VS Code (code-server + Chromium), driven as a person would:
// command palette, file dialogs, quick picks, modal dialogs, notifications, the Lab and the panels.
// Every palette command runs at least once. The steps share one workbench and run in order: the
// workspace opens in Restricted Mode (workspace trust on) and is trusted half-way; the codebook
// built first is the one later steps tokenize with, refine, re-run, and protect at the end.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Page } from 'playwright-core';
import { repoRoot, startCodeServer, type CodeServer } from './code-server.js';
import { nativeModulesLoaded } from './host-process.js';
import {
  answerDialog, answerFileDialog, answerInputBox, findWebviewFrame, notification, openWith, openWorkbench, pickQuickItem, revealInExplorer, runCommand, type Workbench,
} from './workbench.js';
import { listFolder, makeRepeatedImages, makeWorkspace, sha256, writeWorkspaceSettings } from './workspace.js';
import { dctVisionTower, FAMILY_CONFIGS, siglipConfig, writeModelFolder } from '../helpers/siglip-model.js';
import { startHubServer, type HubServer } from '../helpers/hub-server.js';
import { writeArFolder } from '../helpers/ar-model.js';
import { readCodebook } from '../../extension/engine/codebook/codebook.js';
import { readTokenGrids } from '../../extension/engine/codebook/token-files.js';
import { listImages } from '../../extension/engine/embed/image.js';

// Small and quick for the codebook the later steps use. The cancelled build is made to run for
// minutes however fast the machine (every one of 1000 iterations, no early stop), so Cancel is
// always pressed while it runs. The device is not set here: Select Compute Device sets it.
const quickSettings = { 'unicode2.encoder': 'dct', 'unicode2.k': 64, 'unicode2.iterations': 5 };
const slowSettings = { ...quickSettings, 'unicode2.k': 1024, 'unicode2.iterations': 1000, 'unicode2.tolerance': 0 };
const STEP_TIMEOUT = 5 * 60_000;
const cli = (...args: string[]) => promisify(execFile)(process.execPath, [join(repoRoot, 'dist', 'cli.js'), ...args, '--device', 'cpu', '--quiet']);

describe('UniCode² Studio in code-server', { timeout: 30 * 60_000 }, () => {
  let workspace: string;
  let model: string;
  let server: CodeServer | undefined;
  let hub: HubServer | undefined;
  let hubCache: string | undefined;
  let workbench: Workbench | undefined;
  const bench = (): Workbench => {
    if (!workbench) throw new Error('the workbench did not open');
    return workbench;
  };
  const page = (): Page => bench().page;
  const ws = (...parts: string[]) => join(workspace, ...parts);
  // each build writes a codebook of its own, named when it is built: this one is offered 'k64-dct'
  const codebookFile = () => ws('.unicode2', 'codebooks', 'k64-dct.safetensors');
  const statusItem = (text: string | RegExp) => page().locator('.statusbar-item', { hasText: text }).first();
  const images = () => ws('images');

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
    // A codebook that names an ONNX model (a SigLIP-shaped tower built here), and one built from
    // external embeddings, which names no encoder at all: both as a shared workspace could hold them.
    model = await writeModelFolder(ws('models', 'tiny-siglip'), dctVisionTower(), siglipConfig());
    await cli('build', '--images', images(), '--encoder', model, '--k', '16', '--iters', '2', '--out', ws('shared', 'onnx.safetensors'));
    await cli('embed', images(), '--out', ws('shared', 'embeddings.npy'));
    await cli('build', '--embeddings', ws('shared', 'embeddings.npy'), '--k', '16', '--iters', '2', '--out', ws('shared', 'external.safetensors'));
    // A codebook naming a model by Hugging Face id, served by a stand-in for the hub on the
    // loopback (HF_ENDPOINT, inherited by code-server); the cache is emptied afterwards, so that
    // the model is one to download again (the consent step).
    const siglip = FAMILY_CONFIGS.siglip(16, 224);
    const utf8 = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    hub = await startHubServer({ 'org/tiny-siglip': { commit: 'e'.repeat(40), files: { 'config.json': utf8(siglip.config), 'preprocessor_config.json': utf8(siglipConfig()), 'onnx/vision_model.onnx': dctVisionTower() } } });
    hubCache = await mkdtemp(join(tmpdir(), 'e2e-hf-cache-'));
    Object.assign(process.env, { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: hubCache });
    await cli('build', '--images', images(), '--encoder', 'org/tiny-siglip', '--k', '16', '--iters', '2', '--out', ws('shared', 'hub.safetensors'));
    await rm(hubCache, { recursive: true, force: true });
    // The workspace names that model as its encoder: ignored while the workspace is untrusted.
    await writeWorkspaceSettings(workspace, { ...quickSettings, 'unicode2.encoder': model });
    server = await startCodeServer({ workspace, workspaceTrust: true });
    workbench = await openWorkbench(server.url, 'studio');
    await workbench.screenshot('workbench');
  }, { timeout: STEP_TIMEOUT });

  after(async () => {
    if (server && workbench) await server.saveLogs(join(workbench.artifacts, 'logs')).catch(() => undefined);
    await workbench?.close();
    await server?.stop();
    await hub?.close();
    if (hubCache) await rm(hubCache, { recursive: true, force: true });
    if (workspace) await rm(workspace, { recursive: true, force: true });
  });

  step('Select Compute Device… sets the device; activating loaded no native module', async () => {
    await runCommand(page(), 'UniCode²: Select Compute Device…');
    await pickQuickItem(page(), 'cpu');
    await page().locator('.statusbar-item', { hasText: 'UniCode²: cpu' }).waitFor({ state: 'visible', timeout: 30_000 });
    assert.deepEqual(await nativeModulesLoaded(server!.pid), [], 'the extension host has mapped no onnxruntime, libvips or Dawn');
  });

  step("in Restricted Mode, Build does not use the workspace's encoder setting (a model): it builds with the DCT", async () => {
    await runCommand(page(), 'UniCode²: Build Codebook from Folder…');
    await answerFileDialog(page(), images() + '/');
    // the name offered says what is built: K = 64 with the DCT (not the workspace's model)
    assert.equal(await answerInputBox(page()), 'k64-dct');
    await waitFor(() => existsSync(codebookFile()), 4 * 60_000, 'the codebook file to be written');
    // the new codebook is the active one, by name, in the status bar
    await statusItem('k64-dct').waitFor({ state: 'visible', timeout: 60_000 });
    // Written whole under its final name (atomically): it reads back as the build the settings asked
    // for, with the DCT (dct:224), not the workspace's model.
    const cb = await readCodebook(codebookFile());
    assert.deepEqual([cb.frozen.rows, cb.frozen.cols, cb.meta.encoder.id], [quickSettings['unicode2.k'], 768, 'dct:224']);
    // A CPU build loaded onnxruntime and sharp, and never Dawn.
    assert.deepEqual(await nativeModulesLoaded(server!.pid), ['onnxruntime', 'sharp']);
  });

  step("in Restricted Mode, a codebook's ONNX model loads only after consent", async () => {
    await runCommand(page(), 'UniCode²: Open Codebook…');
    await answerFileDialog(page(), ws('shared', 'onnx.safetensors'));
    await findWebviewFrame(page(), 'canvas#heatmap[data-drawn="true"]', 2 * 60_000);

    await runCommand(page(), 'UniCode²: Tokenize Image…');
    await answerFileDialog(page(), ws('images', 'coffee.jpg'));
    await bench().screenshot('model-consent');
    await answerDialog(page(), 'Cancel');
    await notification(page(), 'was not loaded').waitFor({ state: 'visible', timeout: 30_000 });

    await runCommand(page(), 'UniCode²: Tokenize Image…');
    await answerFileDialog(page(), ws('images', 'coffee.jpg'));
    await answerDialog(page(), 'Load the Model');
    const view = await findWebviewFrame(page(), 'canvas#token-grid[data-drawn="true"]', 3 * 60_000);
    assert.equal(await view.locator('canvas#token-grid').getAttribute('data-grid-h'), '14');
    const tokens = (await readTokenGrids(ws('.unicode2', 'tokens', 'coffee.onnx.tokens.json')))[0]!;
    assert.equal(tokens.encoder, model, 'tokenized with the model the codebook names');
  });

  step("in Restricted Mode, a codebook's model named by a Hugging Face id the cache lacks is downloaded only after consent", async () => {
    hub!.seen.length = 0;
    await runCommand(page(), 'UniCode²: Open Codebook…');
    await answerFileDialog(page(), ws('shared', 'hub.safetensors'));
    await findWebviewFrame(page(), 'canvas#heatmap[data-drawn="true"]', 2 * 60_000);
    await runCommand(page(), 'UniCode²: Tokenize Image…');
    await answerFileDialog(page(), ws('images', 'coffee.jpg'));
    await answerDialog(page(), 'Cancel');
    await notification(page(), 'was not loaded').waitFor({ state: 'visible', timeout: 30_000 });
    assert.deepEqual(hub!.seen.map((s) => s.url), [], 'no request to the hub before consent');
    await runCommand(page(), 'UniCode²: Tokenize Image…');
    await answerFileDialog(page(), ws('images', 'coffee.jpg'));
    await answerDialog(page(), 'Load the Model');
    await findWebviewFrame(page(), 'canvas#token-grid[data-drawn="true"]', 3 * 60_000);
    assert.ok(hub!.seen.some((s) => s.server === 'cdn'), 'downloaded once allowed');
    assert.ok(existsSync(join(hubCache!, 'models--org--tiny-siglip', 'snapshots', 'e'.repeat(40), 'onnx', 'vision_model.onnx')), 'into the cache');
  });

  step('trusting the workspace from the workbench', async () => {
    await runCommand(page(), 'Workspaces: Manage Workspace Trust');
    await page().locator('.workspace-trust-editor .monaco-button', { hasText: /^Trust$/ }).click();
    await page().locator('.statusbar-item', { hasText: 'Restricted Mode' }).waitFor({ state: 'hidden', timeout: 30_000 });
    await writeWorkspaceSettings(workspace, quickSettings);
    await page().waitForTimeout(3_000); // the settings file is re-read by the workbench's watcher
  });

  step('Open Codebook… draws the usage heatmap and explains a cell on hover', async () => {
    await runCommand(page(), 'UniCode²: Open Codebook…');
    await answerFileDialog(page(), codebookFile());
    const view = await findWebviewFrame(page(), 'canvas#heatmap[data-drawn="true"][data-k="64"]', 2 * 60_000);
    const heatmap = view.locator('canvas#heatmap');
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

  step('right after a build, a used code says why it shows no patches; one click tokenizes the build corpus and shows them', async () => {
    const view = await findWebviewFrame(page(), 'canvas#heatmap[data-drawn="true"][data-k="64"]', 60_000);
    const heatmap = view.locator('canvas#heatmap');
    const box = (await heatmap.boundingBox())!;
    // a code the build used (a dead one has no patches anywhere)
    let at: { x: number; y: number } | null = null;
    for (const [fx, fy] of [[0.5, 0.5], [0.3, 0.3], [0.7, 0.3], [0.3, 0.7], [0.7, 0.7], [0.5, 0.2]] as const) {
      const position = { x: box.width * fx, y: box.height * fy };
      await heatmap.hover({ position });
      const count = Number(/count ([\d,]+)/.exec(await view.locator('#tooltip').innerText())?.[1]?.replace(/,/g, ''));
      if (count > 0) {
        at = position;
        break;
      }
    }
    assert.ok(at, 'a used code under one of the points tried');
    await heatmap.click({ position: at });
    const note = view.locator('#patches-note');
    await note.waitFor({ state: 'visible', timeout: 60_000 });
    assert.match(await note.innerText(), /No image tokenized with this codebook yet: it has [\d,]+ uses in the build corpus, but a build keeps how often each code was used, not where/);
    await bench().screenshot('code-no-patches-yet');
    await view.locator('#tokenize-corpus', { hasText: 'Tokenize images/' }).click();
    await view.locator('#detail .patches img').first().waitFor({ state: 'visible', timeout: 3 * 60_000 });
    // the editor stayed in front (the set was not opened over it)
    await page().locator('.tab.active', { hasText: 'k64-dct.safetensors' }).waitFor({ state: 'visible', timeout: 10_000 });
    await bench().screenshot('code-patches-after-corpus');
  });

  step('Explorer: Open With… UniCode² Codebook shows the heatmap; a .safetensors without UniCode² metadata says so', async () => {
    await openWith(page(), await revealInExplorer(page(), ['.unicode2', 'codebooks', 'k64-dct.safetensors']), 'UniCode² Codebook');
    const view = await findWebviewFrame(page(), 'canvas#heatmap[data-drawn="true"]', 2 * 60_000);
    assert.equal(await view.locator('canvas#heatmap').getAttribute('data-k'), String(quickSettings['unicode2.k']));
    await page().locator('.tab', { hasText: 'k64-dct.safetensors' }).first().waitFor({ state: 'visible', timeout: 10_000 });
    await bench().screenshot('codebook-editor');

    // model weights (the reference package's file): no UniCode² metadata
    await copyFile(join(repoRoot, 'test', 'fixtures', 'safetensors', 'reference.safetensors'), ws('weights.safetensors'));
    await openWith(page(), await revealInExplorer(page(), ['weights.safetensors']), 'UniCode² Codebook');
    const notice = await findWebviewFrame(page(), '#notice:not([hidden])', 60_000);
    assert.match(await notice.locator('#notice').innerText(), /cannot be shown as a UniCode² codebook[\s\S]*not a UniCode² codebook/);
    await bench().screenshot('not-a-codebook');
  });

  step('Tokenize Image… opens the Token Grid panel with a 14x21 grid (chelsea.png, 256 x 170, keeps its shape)', async () => {
    await runCommand(page(), 'UniCode²: Tokenize Image…');
    await answerFileDialog(page(), ws('images', 'chelsea.png'));
    // this image's panel, not the one the ONNX codebook's step left open
    const view = await findWebviewFrame(page(), 'body:has-text("chelsea.png") canvas#token-grid[data-drawn="true"]', 3 * 60_000);
    await page().locator('.tab', { hasText: 'Tokens: chelsea.png' }).waitFor({ state: 'visible', timeout: 30_000 });
    const grid = view.locator('canvas#token-grid');
    assert.equal(await grid.getAttribute('data-grid-h'), '14');
    assert.equal(await grid.getAttribute('data-grid-w'), '21');
    await view.locator('#reconstruction').waitFor({ state: 'visible', timeout: 30_000 });

    await grid.hover({ position: { x: 10, y: 10 } });
    const tooltip = view.locator('#tooltip');
    await tooltip.waitFor({ state: 'visible', timeout: 10_000 });
    const code = Number(/code (\d+)/.exec(await tooltip.innerText())?.[1]);
    assert.ok(Number.isInteger(code) && code >= 0 && code < quickSettings['unicode2.k'], `the tooltip names a code of the K=64 codebook (got ${code})`);
    await bench().screenshot('token-grid');
  });

  step('Show Active Codebook brings back the codebook Open Codebook made active', async () => {
    await runCommand(page(), 'UniCode²: Show Active Codebook');
    await page().locator('.tab.active', { hasText: 'k64-dct.safetensors' }).waitFor({ state: 'visible', timeout: 60_000 });
    await findWebviewFrame(page(), 'canvas#heatmap[data-drawn="true"][data-k="64"]', 60_000);
  });

  step('Explorer: a tokens file opens in the token set editor, its grid over the photo', async () => {
    (await revealInExplorer(page(), ['.unicode2', 'tokens', 'coffee.hub.tokens.json'])).click();
    const view = await findWebviewFrame(page(), 'canvas#set-grid[data-drawn="true"]', 60_000);
    assert.deepEqual(await view.locator('.image-item').allInnerTexts(), ['coffee.jpg']);
    const box = await view.locator('canvas#set-grid').boundingBox();
    assert.ok(box && Math.abs(box.width / box.height - 256 / 171) < 0.03, `coffee.jpg (256 x 171) shows at ${box?.width} x ${box?.height}`);
    assert.match(await view.locator('#usage').innerText(), /tokens\s*196/); // the model's fixed input: 14 x 14
    await bench().screenshot('token-set-editor');
  });

  step('Codebook editor: a set made with another codebook is offered disabled, refused on screen, and a tab switch keeps the codebook shown', async () => {
    await runCommand(page(), 'UniCode²: Show Active Codebook');
    const view = await findWebviewFrame(page(), 'canvas#heatmap[data-drawn="true"][data-k="64"]', 60_000);
    // coffee.jpg was tokenized with the ONNX codebook (k16): listed, disabled, saying which made it
    const other = view.locator('#dataset vscode-option', { hasText: 'coffee.jpg' }).first();
    assert.match((await other.textContent()) ?? '', /made with codebook (onnx|hub)/);
    assert.equal(await other.evaluate((o) => (o as HTMLElement & { disabled: boolean }).disabled), true);
    // its tokens file chosen through "Tokens file…": the error shows in the panel, the counts stay
    const summary = await view.locator('#summary').innerText();
    await view.locator('#add-dataset').click();
    await answerFileDialog(page(), ws('.unicode2', 'tokens', 'coffee.hub.tokens.json'));
    const error = view.locator('#dataset-error');
    await error.waitFor({ state: 'visible', timeout: 30_000 });
    assert.match(await error.innerText(), /coffee\.hub\.tokens\.json was made with codebook hub, not with k64-dct/);
    // the same image tokenized with two codebooks: each set in a file of its own
    assert.ok(existsSync(ws('.unicode2', 'tokens', 'coffee.onnx.tokens.json')), "the onnx codebook's set is still there");
    assert.equal(await view.locator('#summary').innerText(), summary);
    await bench().screenshot('codebook-other-set-refused');
    // away and back: the editor comes back from its state showing the codebook, not "cannot be shown"
    await page().locator('.tab', { hasText: 'Tokens: chelsea.png' }).first().click();
    await page().locator('.tab', { hasText: 'k64-dct.safetensors' }).first().click();
    const back = await findWebviewFrame(page(), 'canvas#heatmap[data-drawn="true"][data-k="64"]', 60_000);
    assert.equal(await back.locator('#notice').isHidden(), true);
    assert.equal(await back.locator('#summary').innerText(), summary);
  });

  step('Tokenize Folder… writes the token data set and the per-image grids', async () => {
    await runCommand(page(), 'UniCode²: Tokenize Folder…');
    await answerFileDialog(page(), images() + '/');
    const dataset = ws('.unicode2', 'tokens', 'images.k64-dct.tokens.npy');
    await waitFor(() => existsSync(dataset) && existsSync(ws('.unicode2', 'tokens', 'images.k64-dct.tokens.json')), 3 * 60_000, 'the token data set');
    const grids = await readTokenGrids(dataset);
    assert.equal(grids.length, (await listImages(images())).length);
    // the photos keep their shapes: one ragged data set, each image its own grid
    assert.ok(new Set(grids.map((g) => g.grid.join('x'))).size > 1, 'grids of several shapes');
    assert.equal(grids[0]!.codebook, (await readCodebook(codebookFile())).fingerprint);
    // it says so, and the set opens in the token set editor
    await notification(page(), `tokenized ${grids.length} images of images/ with k64-dct`).waitFor({ state: 'visible', timeout: 60_000 });
    await page().locator('.tab.active', { hasText: 'images.k64-dct.tokens.npy' }).waitFor({ state: 'visible', timeout: 60_000 });
    const view = await findWebviewFrame(page(), 'canvas#set-grid[data-drawn="true"]', 60_000);
    assert.equal(await view.locator('.image-item').count(), grids.length);
    await bench().screenshot('tokenize-folder-done');
  });

  step('Decode Tokens… decodes a tokens file into images and shows them in the Generation panel', async () => {
    await runCommand(page(), 'UniCode²: Decode Tokens…');
    await answerFileDialog(page(), ws('.unicode2', 'tokens', 'chelsea.k64-dct.tokens.json'));
    // named per codebook: another codebook's decode of the same tokens would sit beside it
    await waitFor(() => existsSync(ws('.unicode2', 'decoded', 'chelsea.k64-dct.png')), 2 * 60_000, 'the decoded image');
    const view = await findWebviewFrame(page(), '#generate', 60_000);
    const decoded = view.locator('figure.result', { hasText: 'Decoded chelsea.k64-dct.png' }).locator('img');
    await decoded.waitFor({ state: 'visible', timeout: 60_000 });
    // chelsea's 14 x 21 grid through the atlas: 336 x 224 pixels
    assert.deepEqual(await decoded.evaluate((img: HTMLImageElement) => [img.naturalWidth, img.naturalHeight]), [336, 224]);
    await bench().screenshot('decode-tokens');
  });

  step('Open Generation Panel decodes a grid of this session at the output size chosen', async () => {
    await runCommand(page(), 'UniCode²: Open Generation Panel');
    const view = await findWebviewFrame(page(), '#generate', 60_000);
    // the header names the active codebook; a grid of another codebook is listed disabled
    assert.equal(await view.locator('#codebook').innerText(), 'codebook k64-dct');
    const other = view.locator('#source vscode-option', { hasText: 'coffee.jpg' }).first();
    assert.match((await other.textContent()) ?? '', /made with codebook (onnx|hub)/);
    assert.equal(await other.evaluate((o) => (o as HTMLElement & { disabled: boolean }).disabled), true);
    // the grid tokenized with the active codebook (the session also holds the ONNX codebook's)
    await view.locator('#source').evaluate((select: HTMLElement & { value: string }) => {
      const option = [...select.querySelectorAll('vscode-option')].find((o) => o.textContent?.trim() === 'chelsea.png');
      if (!option) throw new Error('no token source chelsea.png');
      select.value = option.getAttribute('value')!;
      select.dispatchEvent(new Event('change'));
    });
    // the gallery already holds what Decode Tokens… decoded: the new result comes first
    const shown = await view.locator('figure.result').count();
    await view.locator('#generate').click();
    await waitForAsync(async () => (await view.locator('figure.result').count()) === shown + 1, 60_000, 'the result in the gallery');
    const result = view.locator('figure.result img').first();
    const upscale = Number(await view.locator('#upscale').evaluate((select: HTMLElement & { value: string }) => select.value));
    // chelsea's 14 x 21 grid: 336 x 224 pixels, times the output size chosen
    assert.deepEqual(await result.evaluate((img: HTMLImageElement) => [img.naturalWidth, img.naturalHeight]), [336 * upscale, 224 * upscale]);
    await bench().screenshot('generation');
  });

  step('Generation panel: an AR prior folder draws a grid token by token for a class named in unicode2.json', async () => {
    const k = (await readCodebook(codebookFile())).frozen.rows;
    const folder = ws('ar-prior');
    await writeArFolder(folder, { vocab: k + 3, hidden: 16, heads: 2, layers: 2, maxPositions: 32 }, {
      image_token_offset: 0, num_image_tokens: k, grid: [4, 4], condition: { type: 'class', token_offset: k, num_classes: 2, null_token: k + 2 }, class_names: ['cat', 'dog'],
    });
    const view = await findWebviewFrame(page(), '#generate', 60_000);
    const choose = (id: string, value: string) => view.locator(id).evaluate((select: HTMLElement & { value: string }, v) => {
      select.value = v;
      select.dispatchEvent(new Event('change'));
    }, value);
    await choose('#mode', 'sample');
    await view.locator('#open-ar-prior').click();
    await answerFileDialog(page(), folder + '/');
    await view.locator('label[data-row="ar"]').waitFor({ state: 'visible', timeout: 60_000 });
    await choose('#class', '1');
    await view.locator('#generate').click();
    await view.locator('figure.result', { hasText: 'Sampled 4×4 · dog' }).waitFor({ state: 'visible', timeout: 60_000 });
    assert.equal(await view.locator('#ar-grid').getAttribute('data-drawn'), '16', 'every token reached the panel');
    await bench().screenshot('generation-ar');
    // the Lab cell replays it: the same class, seed and sampling give the same grid, so the same image
    await page().locator('.activitybar [aria-label^="UniCode² Lab"]').first().click();
    try {
      const lab = await findWebviewFrame(page(), 'article.lab-cell[data-kind="generate"]', 60_000);
      await lab.locator('article.lab-cell[data-kind="generate"][data-status="done"]', { hasText: 'Sampled 4×4 · dog' }).first().locator('button[data-action="rerun"]').click();
      const results = view.locator('figure.result', { hasText: 'Sampled 4×4 · dog' }).locator('img');
      await waitForAsync(async () => (await results.count()) === 2, 60_000, 'the re-run result in the gallery');
      const [again, first] = await results.evaluateAll((imgs) => imgs.map((i) => (i as HTMLImageElement).src));
      assert.equal(again, first);
    } finally {
      // the later steps open the Lab by clicking its entry, which would close it if it were open
      await page().locator('.activitybar [aria-label^="Explorer"]').first().click();
    }
  });

  step('an edited grid sent to Generation is saved with its run; Fit asks which token sets (held-out ones unticked) and records a Lab cell', async () => {
    // two photos kept out of training, in a folder that says so
    const heldOut = ws('held-out');
    await mkdir(heldOut);
    for (const photo of ['coffee.jpg', 'chelsea.png']) await copyFile(join(images(), photo), join(heldOut, photo));
    await runCommand(page(), 'UniCode²: Tokenize Folder…');
    await answerFileDialog(page(), heldOut + '/');
    await notification(page(), 'tokenized 2 images of held-out/ with k64-dct').waitFor({ state: 'visible', timeout: 3 * 60_000 });

    await page().locator('.tab', { hasText: 'Tokens: chelsea.png' }).first().click();
    const tokens = await findWebviewFrame(page(), 'body:has-text("chelsea.png") canvas#token-grid[data-drawn="true"]', 60_000);
    const canvas = tokens.locator('canvas#token-grid');
    const box = (await canvas.boundingBox())!;
    const cell = { x: box.width * 0.25, y: box.height * 0.25 };
    await canvas.hover({ position: cell });
    const code = Number(/code (\d+)/.exec(await tokens.locator('#tooltip').innerText())![1]);
    await tokens.locator('#paint').click();
    await tokens.locator('#paint-code').click();
    await page().keyboard.type(String((code + 1) % quickSettings['unicode2.k']));
    await canvas.click({ position: cell });
    assert.equal(await tokens.locator('#edits').innerText(), '1 cell edited');
    await tokens.locator('#to-generation').click();

    const view = await findWebviewFrame(page(), '#generate', 60_000);
    await view.locator('#mode').evaluate((select: HTMLElement & { value: string }) => {
      select.value = 'decode';
      select.dispatchEvent(new Event('change'));
    });
    assert.match(await view.locator('#source').evaluate((s: HTMLElement & { value: string }) => s.value), /^edited$/);
    await view.locator('#generate').click();
    await view.locator('figure.result', { hasText: 'Edited grid · chelsea.png' }).first().waitFor({ state: 'visible', timeout: 60_000 });
    // the edited grid is kept in a tokens file the Lab cell names, and the image under generated/, per codebook
    const saved = (await listFolder(ws('.unicode2', 'tokens'))).filter((f) => /^chelsea\.edited-[0-9a-f]{8}\.k64-dct\.tokens\.json$/.test(f));
    assert.equal(saved.length, 1, 'one tokens file of the edited grid');
    const [edited] = await readTokenGrids(ws('.unicode2', 'tokens', saved[0]!));
    const [original] = await readTokenGrids(ws('.unicode2', 'tokens', 'chelsea.k64-dct.tokens.json'));
    assert.equal(edited!.ids.filter((id, i) => id !== original!.ids[i]).length, 1, 'the grid as edited: one cell differs');
    assert.ok((await listFolder(ws('.unicode2', 'generated'))).includes('Edited-grid-chelsea.k64-dct.png'));
    // the grid behind a result saves as a tokens file of the codebook it was decoded with
    const savedTokens = ws('.unicode2', 'tokens', 'edited-chelsea.k64-dct.tokens.json');
    await view.locator('figure.result', { hasText: 'Edited grid · chelsea.png' }).first().locator('vscode-button', { hasText: 'Save Tokens' }).click();
    await answerFileDialog(page(), savedTokens);
    await waitFor(() => existsSync(savedTokens), 30_000, 'the saved tokens file');
    const [back] = await readTokenGrids(savedTokens);
    assert.deepEqual(back!.ids, edited!.ids);
    assert.equal(back!.codebook, (await readCodebook(codebookFile())).fingerprint);

    // Fit (in a mode that uses a prior): the sets of the active codebook, the held-out one unticked
    await view.locator('#mode').evaluate((select: HTMLElement & { value: string }) => {
      select.value = 'sample';
      select.dispatchEvent(new Event('change'));
    });
    await view.locator('#fit-prior').click();
    const widget = page().locator('.quick-input-widget');
    const held = widget.locator('.monaco-list-row', { hasText: 'held-out' }).first();
    await held.waitFor({ state: 'visible', timeout: 30_000 });
    await bench().screenshot('fit-choose-sets');
    const ticked = async (row: typeof held) => (await row.getAttribute('aria-checked')) ?? String(await row.locator('input[type="checkbox"]').isChecked());
    assert.equal(await ticked(held), 'false', 'the held-out set is left out');
    assert.equal(await ticked(widget.locator('.monaco-list-row', { hasText: 'images (' }).first()), 'true', 'the corpus set is in');
    await page().keyboard.press('Enter');
    await waitFor(() => existsSync(ws('.unicode2', 'priors', 'prior-order3.k64-dct.safetensors')), 60_000, 'the fitted prior');
    await view.locator('#status', { hasText: /^Fitted prior-order3\.k64-dct\.safetensors/ }).waitFor({ state: 'visible', timeout: 30_000 });
    await page().locator('.activitybar [aria-label^="UniCode² Lab"]').first().click();
    try {
      const lab = await findWebviewFrame(page(), 'article.lab-cell[data-kind="fit"][data-status="done"]', 60_000);
      const fit = await lab.locator('article.lab-cell[data-kind="fit"]').first().innerText();
      assert.match(fit, /order\s+3/);
      assert.doesNotMatch(fit, /held-out/, 'the fit names the sets it used, and the held-out one is not among them');
      await bench().screenshot('lab-fit');
    } finally {
      await page().locator('.activitybar [aria-label^="Explorer"]').first().click();
    }
  });

  step('Refine Trainable Codebook… writes a refined atlas into the codebook', async () => {
    await runCommand(page(), 'UniCode²: Refine Trainable Codebook…');
    await answerFileDialog(page(), images() + '/');
    await waitForAsync(async () => (await readCodebook(codebookFile()).catch(() => null))?.meta.atlas === 'refined', 3 * 60_000, 'the refined atlas');
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

  step('Run Demo writes the report again', async () => {
    const report = ws('.unicode2', 'demo', 'report.html');
    const before = (await stat(report)).mtimeMs; // the walkthrough's demo wrote it first
    await runCommand(page(), 'UniCode²: Run Demo');
    await waitForAsync(async () => (await stat(report)).mtimeMs !== before, 4 * 60_000, 'the demo report to be written again');
  });

  step('a codebook of external embeddings asks for its encoder once, then remembers it', async () => {
    await runCommand(page(), 'UniCode²: Open Codebook…');
    await answerFileDialog(page(), ws('shared', 'external.safetensors'));
    await runCommand(page(), 'UniCode²: Tokenize Image…');
    await answerFileDialog(page(), ws('images', 'coffee.jpg'));
    await bench().screenshot('encoder-question');
    await pickQuickItem(page(), 'dct');
    await page().locator('.tab.active', { hasText: 'Tokens: coffee.jpg' }).waitFor({ state: 'visible', timeout: 3 * 60_000 });

    // Asked once: the next image of that codebook goes straight to its token grid.
    await runCommand(page(), 'UniCode²: Tokenize Image…');
    await answerFileDialog(page(), ws('images', 'astronaut.jpg'));
    await page().locator('.tab', { hasText: 'Tokens: astronaut.jpg' }).waitFor({ state: 'visible', timeout: 3 * 60_000 });
    assert.equal(await page().locator('.quick-input-widget').isVisible(), false);
    const tokens = (await readTokenGrids(ws('.unicode2', 'tokens', 'astronaut.external.tokens.json')))[0]!;
    assert.equal(tokens.codebook, (await readCodebook(ws('shared', 'external.safetensors'))).fingerprint);
  });

  step("Lab Run again on the edited grid's Generate cell decodes with the cell's codebook, not the active one; the re-run lands in the gallery, and Open in a panel brings it back", async () => {
    await statusItem('external').waitFor({ state: 'visible', timeout: 30_000 });
    const generated = ws('.unicode2', 'generated');
    const before = await listFolder(generated);
    await page().locator('.activitybar [aria-label^="UniCode² Lab"]').first().click();
    try {
      const lab = await findWebviewFrame(page(), 'article.lab-cell[data-kind="generate"]', 60_000);
      const cells = lab.locator('article.lab-cell[data-kind="generate"][data-status="done"]', { hasText: 'Edited grid · chelsea.png' });
      // it reads as a notebook: which codebook and tokens file, no internal fields
      const text = await cells.first().innerText();
      assert.match(text, /codebook[\s\S]*k64-dct\.safetensors/);
      assert.match(text, /tokens[\s\S]*chelsea\.edited-[0-9a-f]{8}\.k64-dct\.tokens\.json/);
      assert.doesNotMatch(text, /\bindex\b|\bmask\b|nprobe 0/);
      await cells.first().locator('button[data-action="rerun"]').click();
      await waitForAsync(async () => (await listFolder(generated)).includes('Edited-grid-chelsea-2.k64-dct.png'), 2 * 60_000, "the re-run's image, decoded with k64-dct");
      await waitForAsync(async () => (await cells.count()) === 2, 60_000, "the re-run's cell done");
      assert.equal((await listFolder(generated)).length, before.length + 1);
      const view = await findWebviewFrame(page(), '#generate', 60_000);
      await waitForAsync(async () => (await view.locator('figure.result', { hasText: 'Edited grid · chelsea.png' }).count()) === 2, 60_000, 'the re-run in the gallery');
      // the panel closed, Open in a panel on the re-run's cell shows the re-run's image again
      await page().locator('.tab', { hasText: 'Generation' }).first().click();
      await runCommand(page(), 'View: Close Editor');
      await page().locator('.tab', { hasText: 'Generation' }).waitFor({ state: 'detached', timeout: 30_000 });
      await cells.first().locator('button[data-action="open"]').click();
      const reopened = await findWebviewFrame(page(), 'figure.result img', 60_000);
      assert.equal(await reopened.locator('figure.result', { hasText: 'Edited grid · chelsea.png' }).count(), 1);
      await bench().screenshot('lab-rerun-in-gallery');
    } finally {
      await page().locator('.activitybar [aria-label^="Explorer"]').first().click();
    }
  });

  step("a Lab re-run repeats the cell's parameters, not today's settings, into a codebook of its own", async () => {
    await writeWorkspaceSettings(workspace, { ...quickSettings, 'unicode2.k': 32 });
    await page().waitForTimeout(3_000);
    const first = await sha256(codebookFile());
    const rebuilt = ws('.unicode2', 'codebooks', 'k64-dct-2.safetensors');
    await page().locator('.activitybar [aria-label^="UniCode² Lab"]').first().click();
    const lab = await findWebviewFrame(page(), 'article.lab-cell[data-kind="build"][data-status="done"]', 60_000);
    await bench().screenshot('lab');
    await lab.locator('article.lab-cell[data-kind="build"][data-status="done"] button[data-action="rerun"]').first().click();
    await waitFor(() => existsSync(rebuilt), 4 * 60_000, 'the re-run to write k64-dct-2');
    await lab.locator('article.lab-cell[data-kind="build"][data-status="running"]').waitFor({ state: 'detached', timeout: 60_000 });
    const cb = await readCodebook(rebuilt);
    assert.equal(cb.frozen.rows, quickSettings['unicode2.k'], 'K of the cell (64), not of the settings (32)');
    assert.equal(cb.meta.encoder.kind, 'dct');
    // the codebook the cell made, and what was made with it, are untouched
    assert.equal(await sha256(codebookFile()), first);
    await statusItem('k64-dct-2').waitFor({ state: 'visible', timeout: 60_000 });
  });

  step('the active codebook is remembered across a reload; its status bar item picks another', async () => {
    await runCommand(page(), 'Developer: Reload Window');
    await page().locator('.monaco-workbench').waitFor({ state: 'visible', timeout: 90_000 });
    // the workspace holds codebooks: the extension starts with the window and names the one chosen last
    await statusItem('k64-dct-2').waitFor({ state: 'visible', timeout: 90_000 });
    await statusItem('k64-dct-2').click();
    const widget = page().locator('.quick-input-widget');
    await widget.locator('.monaco-list-row', { hasText: 'k64-dct-2' }).first().waitFor({ state: 'visible', timeout: 30_000 });
    const rows = await widget.locator('.monaco-list-row').allInnerTexts();
    // the workspace's two codebooks by name, what each is and what it was built from, then "Open…"
    assert.equal(rows.length, 3, JSON.stringify(rows));
    assert.match(rows[0]!, /^\s*k64-dct(?!-)[\s\S]*K = 64, d = 768 · dct:224 · from images\//);
    assert.match(rows[1]!, /k64-dct-2[\s\S]*K = 64, d = 768 · dct:224 · from images\//);
    await bench().screenshot('choose-codebook');
    await widget.locator('.monaco-list-row').first().click();
    await statusItem(/k64-dct(?!-)/).waitFor({ state: 'visible', timeout: 30_000 });
    await findWebviewFrame(page(), 'canvas#heatmap[data-drawn="true"][data-k="64"]', 60_000);
    await page().locator('.tab.active', { hasText: /^k64-dct\.safetensors/ }).waitFor({ state: 'visible', timeout: 30_000 });
    await bench().screenshot('codebook-chosen');
  });

  step('the Codebooks view lists the codebooks side by side, the active one marked, with what was made from each', async () => {
    // (the Lab's container may be open already since the reload: a click on its entry would close it)
    await runCommand(page(), 'Focus on Codebooks View');
    try {
      const header = page().locator('.pane-header', { hasText: 'Codebooks' }).first();
      await header.waitFor({ state: 'visible', timeout: 30_000 });
      if ((await header.getAttribute('aria-expanded')) !== 'true') await header.click();
      const rows = page().locator('.pane-body .monaco-list-row');
      const first = rows.filter({ hasText: /^\s*k64-dct(?!-)/ }).first();
      await first.waitFor({ state: 'visible', timeout: 30_000 });
      assert.match(await first.innerText(), /active · K = 64 · dct:224 · from images\//);
      assert.match(await rows.filter({ hasText: 'k64-dct-2' }).first().innerText(), /K = 64 · dct:224 · from images\//);
      // its lineage: the token sets, decodes and generations made with it
      await first.click();
      await page().keyboard.press('ArrowRight');
      await rows.filter({ hasText: 'tokens: images.k64-dct.tokens.json' }).first().waitFor({ state: 'visible', timeout: 30_000 });
      await rows.filter({ hasText: 'decoded: chelsea.k64-dct.png' }).first().waitFor({ state: 'visible', timeout: 30_000 });
      await bench().screenshot('codebooks-view');
    } finally {
      await page().locator('.activitybar [aria-label^="Explorer"]').first().click();
    }
  });

  step("an existing codebook's name is refused, and cancelling a build writes nothing and replaces no codebook", async () => {
    const codebooks = ws('.unicode2', 'codebooks');
    const hashes = async () => Promise.all((await listFolder(codebooks)).map((f) => sha256(join(codebooks, f))));
    const before = await hashes();
    const folderBefore = await listFolder(ws('.unicode2'));
    const codebooksBefore = await listFolder(codebooks);
    const repeated = await makeRepeatedImages(workspace, 'images-repeated', 8);
    await writeWorkspaceSettings(workspace, slowSettings);
    await page().waitForTimeout(3_000);

    await runCommand(page(), 'UniCode²: Build Codebook from Folder…');
    await answerFileDialog(page(), repeated + '/');
    // the name box refuses an existing codebook's name, saying why (and one a build is writing:
    // the unit tests), before anything runs
    const widget = page().locator('.quick-input-widget');
    await waitForAsync(async () => (await widget.locator('input').inputValue().catch(() => '')) === 'k1024-dct', 30_000, 'the name box to offer k1024-dct');
    await widget.locator('input').fill('k64-dct');
    await widget.locator('.quick-input-message', { hasText: 'k64-dct already exists: a build never replaces a codebook' }).waitFor({ state: 'visible', timeout: 30_000 });
    await bench().screenshot('build-name-refused');
    await answerInputBox(page(), 'k1024-dct');
    const cancel = notification(page(), 'images-repeated').getByRole('button', { name: 'Cancel' });
    await cancel.waitFor({ state: 'visible', timeout: 60_000 });
    await waitFor(() => existsSync(join(codebooks, 'k1024-dct.safetensors.lock')), 60_000, 'the build to hold its name');
    assert.ok(await cancel.isVisible(), 'the build still runs');

    await cancel.click();
    await notification(page(), 'build of k1024-dct cancelled').waitFor({ state: 'visible', timeout: 60_000 });
    await bench().screenshot('slow-build-cancelled');
    assert.deepEqual(await listFolder(codebooks), codebooksBefore, 'no codebook, temp or lock file is left');
    assert.deepEqual(await hashes(), before, 'every codebook is byte-identical to before');
    assert.deepEqual(await listFolder(ws('.unicode2')), folderBefore);
  });
});

async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  await waitForAsync(async () => condition(), timeoutMs, what);
}

async function waitForAsync(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

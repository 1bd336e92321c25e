// The generation panel's bundle in headless Chromium, against a stand-in host that computes with
// the real engine: a prior fitted on the fixture photos' tokens, the atlas decoder, and a tiny
// diffusion decoder folder, and a tiny autoregressive model folder (test/helpers/ar-model.ts) run by
// onnxruntime through the panel host's own AR code (extension/panels/generation-ar.ts). Sampling,
// inpainting a painted mask, a diffusion run with live previews, an AR prior's class, guidance and
// its grid filling in raster order, Cancel (between tokens), the gallery and Save; screenshots.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openPanel, closeBrowser, until, THEME_NAMES, type PanelPage, type TestHost } from './harness.js';
import { generationProtocol, type GenerateRequest, type GenerationResult } from '../../common/protocol/generation.js';
import { realFixture, disposeFixture, type Fixture } from './fixture-codebook.js';
import {
  CancelledError, DEFAULTS, fitPrior, inpaintGrid, openArModel, openTokenDecoder, readArFolder, sampleArGrid, samplePriorGrid, upscale, type ArModel, type TokenDecoder, type TokenPrior,
} from '../../extension/engine/index.js';
import { pngDataUri } from '../../extension/panels/images.js';
import { ArPriors, arPriorInfo, drawArGrid } from '../../extension/panels/generation-ar.js';
import { codeColor } from '../../webview/common/colors.js';
import { denoiserModel, sdSchedulerConfig, vaeDecoderModel, writeDiffusionFolder } from '../helpers/diffusion-model.js';
import { writeArFolder } from '../helpers/ar-model.js';

let tmp: string;
let folder: string;
/** the tiny AR prior: K = 256 image tokens (the fixture codebook's), 4 named classes, a null token */
let arModel: ArModel;
before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-gen-panel-'));
  folder = await writeDiffusionFolder(path.join(tmp, 'tiny-decoder'), {
    denoiser: denoiserModel({ context: 768, size: 8 }), vae: vaeDecoderModel().model, scheduler: sdSchedulerConfig(),
  });
  const arFolder = path.join(tmp, 'tiny-ar');
  await writeArFolder(arFolder, { vocab: 261, hidden: 16, heads: 2, layers: 2, maxPositions: 80, seed: 3 }, {
    image_token_offset: 0, num_image_tokens: 256, grid: [8, 8],
    condition: { type: 'class', token_offset: 256, num_classes: 4, null_token: 260 }, class_names: ['cat', 'dog', 'ship', 'tree'],
  });
  arModel = await openArModel(await readArFolder(arFolder), { device: 'cpu' });
});
after(async () => {
  await arModel.session.release();
  await closeBrowser();
  await disposeFixture();
  await fs.rm(tmp, { recursive: true, force: true });
});

const PRIOR = 'prior:/work/.unicode2/prior.safetensors';
const defaults = { ...DEFAULTS.generation, seed: 0, upscale: 2, classId: null, priorGuidance: 1 };
const { eta: _eta, priorOrder: _order, ...settingsDefaults } = defaults;

interface StandInOptions {
  holdUntilCancel?: boolean;
  /** the AR model's session waits before its run number `at` until `gate` resolves */
  arGate?: { at: number; gate: Promise<void> };
  /** the "Model folder…" button's request */
  openArPrior?: TestHost<typeof generationProtocol>['openArPrior'];
}

/** The AR model, its session held at one run by `gate` (so a test sees a grid half drawn). */
function gatedArModel(gate: StandInOptions['arGate']): ArModel {
  if (!gate) return arModel;
  let runs = 0;
  const session = Object.create(arModel.session) as ArModel['session'];
  session.run = async (...args) => {
    if (++runs === gate.at) await gate.gate;
    return arModel.session.run(...args);
  };
  return { ...arModel, session };
}

/** A stand-in host: real priors and decoders, a generate handler that does what the extension's does. */
function standIn(f: Fixture, prior: TokenPrior, page: () => PanelPage<typeof generationProtocol>, opts: StandInOptions = {}) {
  const label = path.basename(f.grid.image);
  const sources = [{ id: 'tokens:1#0', label, grid: f.grid.grid }];
  const results: GenerationResult[] = [];
  const edits: { request: GenerateRequest; ids: Int32Array }[] = [];
  const tokens: { cell: number; code: number }[] = [];
  let diffusion: Promise<TokenDecoder> | null = null;
  let cancelled: (() => void) | null = null;
  const ar = arPriorInfo(arModel.folder);
  let sent: Promise<void> = Promise.resolve();
  const notify = (type: 'progress' | 'arStart' | 'arToken', params: unknown) => (sent = sent.then(() => page().post({ kind: 'notify', type, params })));
  /** an AR run as the panel host makes it (generation-ar.ts), each token sent as it is drawn */
  const drawAr = (r: GenerateRequest, grid: [number, number]) => {
    const abort = new AbortController();
    cancelled = () => abort.abort();
    const s = r.settings;
    return drawArGrid(gatedArModel(opts.arGate), {
      grid, edit: null, sampling: { seed: s.seed, temperature: s.temperature, topK: s.topK, topP: s.topP }, classId: s.classId, guidance: s.priorGuidance, signal: abort.signal,
      onStart: (ids, cells) => notify('arStart', { grid, ids: Array.from(ids), cells }),
      onToken: (cell, code, done, total) => {
        tokens.push({ cell, code });
        notify('arToken', { cell, code, done, total });
      },
    });
  };
  const host: TestHost<typeof generationProtocol> = {
    init: () => ({
      sources,
      // with a "Model folder…" answer the AR prior joins the list through it
      priors: [{ id: PRIOR, label: 'prior.safetensors · order 3', k: prior.k, order: prior.order, grid: prior.grid, kind: 'ngram' as const }, ...(opts.openArPrior ? [] : [ar])],
      decoders: [{ id: 'atlas', label: 'Atlas (codebook)', kind: 'atlas' as const }, { id: folder, label: 'tiny-decoder', kind: 'diffusion' as const }],
      codebook: 'k256-dct',
      results: [],
      defaults: settingsDefaults,
    }),
    sourceView: async () => ({ grid: f.grid.grid, ids: f.grid.ids, image: (await f.decode(f.grid.ids)).image }),
    generate: async (r) => {
      if (opts.holdUntilCancel) {
        await new Promise<void>((resolve) => (cancelled = resolve));
        throw new CancelledError('UniCode²: generation cancelled');
      }
      const s = r.settings;
      const sampling = { seed: s.seed, temperature: s.temperature, topK: s.topK, topP: s.topP };
      let ids: Int32Array;
      let grid = f.grid.grid;
      if (r.mode === 'sample' && r.prior === ar.id) {
        grid = r.grid ?? ar.grid;
        ids = await drawAr(r, grid);
      } else if (r.mode === 'sample') {
        grid = r.grid ?? prior.grid;
        ids = samplePriorGrid(prior, grid, sampling);
      } else if (r.mode === 'inpaint') {
        const mask = new Uint8Array(f.grid.ids.length);
        for (const i of r.mask) mask[i] = 1;
        ids = inpaintGrid(prior, f.grid.ids, grid, mask, sampling);
      } else {
        ids = Int32Array.from(f.grid.ids);
      }
      edits.push({ request: r, ids });
      const decoder = s.decoder === 'atlas' ? await openTokenDecoder('atlas', f.backend) : await (diffusion ??= openTokenDecoder(folder, f.backend));
      const decoded = await decoder.decode(f.cb, ids, grid, { scheduler: s.scheduler, steps: s.steps, guidance: s.guidance, eta: 0, seed: s.seed, previewEvery: 1 }, {
        onStep: (e) => {
          if (!e.preview) return;
          const preview = pngDataUri(e.preview);
          sent = sent.then(async () => page().post({ kind: 'notify', type: 'progress', params: { done: e.step, total: e.total, message: `Step ${e.step} of ${e.total}`, preview: await preview } }));
        },
      });
      await sent; // every preview before the result, as the extension sends them
      const image = s.decoder === 'atlas' ? upscale(decoded.image, s.upscale) : decoded.image;
      const result: GenerationResult = {
        id: `result-${results.length + 1}`, label: r.mode === 'sample' ? `Sampled ${grid[0]}×${grid[1]}` : label, image: await pngDataUri(image),
        width: image.width, height: image.height, grid, settings: [['decoder', s.decoder === 'atlas' ? 'atlas' : 'tiny-decoder'], ['seed', s.seed]],
        device: decoded.device, seconds: 0.1, tokens: r.mode === 'sample',
      };
      results.push(result);
      return result;
    },
    cancel: () => {
      cancelled?.();
      return null;
    },
    savePng: () => '/work/sampled-generated.png',
    saveTokens: () => '/work/.unicode2/tokens/Sampled-10-12.k256-dct.tokens.json',
    ...(opts.openArPrior ? { openArPrior: opts.openArPrior } : {}),
  };
  return { host, edits, tokens, ar };
}

/** Sets a control's value and fires its change event, as picking an option or typing does. */
async function setValue(p: PanelPage<typeof generationProtocol>, selector: string, value: string): Promise<void> {
  await p.page.evaluate(([sel, v]) => {
    const el = document.querySelector(sel!) as HTMLElement & { value: string };
    el.value = v!;
    el.dispatchEvent(new Event('change'));
  }, [selector, value] as const);
}

async function setup(theme: (typeof THEME_NAMES)[number], opts: StandInOptions = {}) {
  const f = await realFixture();
  const prior = fitPrior(f.grids, f.cb.frozen.rows, 3, f.cb.fingerprint);
  let p: PanelPage<typeof generationProtocol> | null = null;
  const { host, edits, tokens, ar } = standIn(f, prior, () => p!, opts);
  p = await openPanel('generation', generationProtocol, theme, host, { width: 1100, height: 820 });
  await p.page.locator('#prior vscode-option').first().waitFor({ state: 'attached' });
  return { f, prior, p, edits, tokens, ar, host };
}

for (const theme of THEME_NAMES) {
  test(`sample a grid from a prior through the atlas; the gallery keeps its settings; Save (${theme})`, async () => {
    const { p, edits } = await setup(theme);
    try {
      await setValue(p, '#mode', 'sample');
      assert.equal(await p.page.locator('label[data-row="source"]').isHidden(), true, 'sampling needs no token source');
      await setValue(p, '#rows', '10');
      await setValue(p, '#cols', '12');
      await setValue(p, '#seed-value', '7');
      await setValue(p, '#temperature', '0.9');
      await p.page.locator('#generate').click();
      const img = p.page.locator('#results figure img');
      await img.waitFor();
      const [request] = p.requests('generate');
      assert.equal(request!.mode, 'sample');
      assert.equal(request!.prior, PRIOR);
      assert.deepEqual(request!.grid, [10, 12]);
      assert.equal(request!.source, null);
      assert.equal(request!.settings.seed, 7);
      assert.equal(request!.settings.temperature, 0.9);
      assert.equal(request!.settings.classId, null, 'an n-gram prior has no class');
      assert.equal(edits[0]!.ids.length, 120);
      assert.equal(await img.getAttribute('width'), String(12 * 16 * 2));
      assert.match(await p.page.locator('#results .result-settings').innerText(), /seed\s+7/);
      await p.page.waitForFunction(() => (document.querySelector('#results img') as HTMLImageElement).complete);
      await p.screenshot(`generation-${theme}`);
      await p.page.locator('#results vscode-button[data-result="result-1"]', { hasText: 'Save as PNG' }).click();
      await p.page.waitForFunction(() => document.querySelector('#status')!.textContent!.startsWith('Saved'));
      assert.deepEqual(p.requests('savePng'), [{ result: 'result-1' }]);
      // a sampled grid saves as tokens too
      await p.page.locator('#results vscode-button[data-result="result-1"]', { hasText: 'Save Tokens' }).click();
      await p.page.waitForFunction(() => document.querySelector('#status')!.textContent!.endsWith('.tokens.json'));
      assert.deepEqual(p.requests('saveTokens'), [{ result: 'result-1' }]);
      assert.equal(p.warnings.length, 0, p.warnings.join('\n'));
    } finally {
      await p.close();
    }
  });
}

test('inpaint: paint cells on the grid, only those are drawn again', async () => {
  const { f, p, edits } = await setup('dark');
  try {
    await setValue(p, '#mode', 'inpaint');
    const canvas = p.page.locator('#mask');
    // chelsea (256 x 170) keeps its shape: a 14 x 21 grid
    assert.deepEqual(f.grid.grid, [14, 21]);
    await p.page.waitForFunction(() => document.querySelector('#mask-count')!.textContent!.includes('of 294 cells'));
    assert.equal(await p.page.locator('#generate').getAttribute('disabled'), '', 'nothing painted yet');
    const box = (await canvas.boundingBox())!;
    const [cellW, cellH] = [box.width / 21, box.height / 14];
    // drag along row 3 from column 2 to column 8, then paint one cell of row 9
    await p.page.mouse.move(box.x + 2.5 * cellW, box.y + 3.5 * cellH);
    await p.page.mouse.down();
    await p.page.mouse.move(box.x + 8.5 * cellW, box.y + 3.5 * cellH, { steps: 12 });
    await p.page.mouse.up();
    await p.page.mouse.click(box.x + 5.5 * cellW, box.y + 9.5 * cellH);
    await p.page.waitForFunction(() => document.querySelector('#mask-count')!.textContent!.startsWith('8 of 294'));
    await p.screenshot('generation-inpaint-dark');
    await p.page.locator('#generate').click();
    await p.page.locator('#results figure img').waitFor();
    const [request] = p.requests('generate');
    assert.deepEqual(request!.mask, [65, 66, 67, 68, 69, 70, 71, 9 * 21 + 5]);
    const masked = new Set(request!.mask);
    edits[0]!.ids.forEach((id, i) => masked.has(i) || assert.equal(id, f.grid.ids[i], `cell ${i}`));
    // painting a painted cell erases it (Generate scrolled the page: measure again)
    const moved = (await canvas.boundingBox())!;
    await p.page.mouse.click(moved.x + 5.5 * cellW, moved.y + 9.5 * cellH);
    await p.page.waitForFunction(() => document.querySelector('#mask-count')!.textContent!.startsWith('7 of 294'));
    assert.equal(p.warnings.length, 0, p.warnings.join('\n'));
  } finally {
    await p.close();
  }
});

test('a diffusion decoder: its sampler, steps and guidance; live previews while it denoises', async () => {
  const { p } = await setup('light');
  try {
    await setValue(p, '#decoder', folder);
    assert.equal(await p.page.locator('label[data-row="scheduler"]').isVisible(), true);
    assert.equal(await p.page.locator('label[data-row="upscale"]').isHidden(), true, 'the atlas output size is not a diffusion setting');
    await setValue(p, '#scheduler', 'euler');
    await setValue(p, '#steps', '4');
    await setValue(p, '#guidance', '3');
    await p.page.locator('#generate').click();
    await p.page.locator('#results figure img').waitFor();
    const [request] = p.requests('generate');
    assert.deepEqual([request!.settings.decoder, request!.settings.scheduler, request!.settings.steps, request!.settings.guidance], [folder, 'euler', 4, 3]);
    assert.equal(await p.page.locator('#live').isVisible(), true, 'the last preview stays in view');
    assert.match(await p.page.locator('#live-caption').innerText(), /step 3 of 4/);
    assert.match((await p.page.locator('#preview').getAttribute('src'))!, /^data:image\/png;base64,/);
    await p.screenshot('generation-diffusion-light');
    assert.equal(p.warnings.length, 0, p.warnings.join('\n'));
  } finally {
    await p.close();
  }
});

test('Cancel stops the run; the panel says so and can run again', async () => {
  const { p } = await setup('dark', { holdUntilCancel: true });
  try {
    await p.page.locator('#generate').click();
    await p.page.locator('#cancel').waitFor({ state: 'visible' });
    assert.equal(await p.page.locator('#generate').getAttribute('disabled'), '', 'one run at a time');
    await p.page.locator('#cancel').click();
    await p.page.waitForFunction(() => /cancelled/.test(document.querySelector('#status')!.textContent!));
    assert.equal(p.requests('cancel').length, 1);
    assert.equal(await p.page.locator('#cancel').isHidden(), true);
    assert.equal(await p.page.locator('#generate').getAttribute('disabled'), null);
    assert.equal(await p.page.locator('#results figure').count(), 0);
  } finally {
    await p.close();
  }
});

/** A gate the AR model's session waits at, and its key. */
function gate(): { gate: Promise<void>; open: () => void } {
  let open!: () => void;
  return { gate: new Promise<void>((resolve) => (open = resolve)), open };
}

/** The colour of each cell of the live AR grid canvas, sampled at its centre (alpha 0: not drawn). */
async function liveCells(p: PanelPage<typeof generationProtocol>): Promise<number[][]> {
  return p.page.evaluate(() => {
    const canvas = document.querySelector('#ar-grid') as HTMLCanvasElement;
    const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    const [rows, cols] = [8, 8];
    const [cw, ch] = [canvas.width / cols, canvas.height / rows];
    return Array.from({ length: rows * cols }, (_, i) => {
      const at = (Math.floor((Math.floor(i / cols) + 0.5) * ch) * canvas.width + Math.floor(((i % cols) + 0.5) * cw)) * 4;
      return Array.from(data.subarray(at, at + 4));
    });
  });
}

for (const theme of THEME_NAMES) {
  test(`an AR prior folder: class by name, guidance; the grid fills in raster order as tokens arrive (${theme})`, async () => {
    const held = gate();
    // run 1 is the prompt, run n + 1 follows token n: held before run 21, 20 tokens are drawn
    const { p, edits, tokens, ar } = await setup(theme, { arGate: { at: 21, gate: held.gate } });
    try {
      await setValue(p, '#mode', 'sample');
      assert.equal(await p.page.locator('label[data-row="ar"]').isHidden(), true, 'an n-gram prior has no class');
      await setValue(p, '#prior', ar.id);
      assert.equal(await p.page.locator('label[data-row="ar"]').isVisible(), true);
      const classes = await p.page.locator('#class vscode-option').allInnerTexts();
      assert.deepEqual(classes.map((t) => t.trim()), ['none (unconditional)', 'cat', 'dog', 'ship', 'tree']);
      await setValue(p, '#class', '2');
      await setValue(p, '#prior-guidance', '3');
      await setValue(p, '#rows', '8');
      await setValue(p, '#cols', '8');
      await setValue(p, '#seed-value', '11');
      await p.page.locator('#generate').click();
      await p.page.waitForFunction(() => (document.querySelector('#ar-grid') as HTMLElement | null)?.dataset.drawn === '20');
      assert.match(await p.page.locator('#ar-caption').innerText(), /20 of 64/);
      const cells = await liveCells(p);
      assert.deepEqual(tokens.slice(0, 20).map((t) => t.cell), Array.from({ length: 20 }, (_, i) => i), 'raster order');
      tokens.slice(0, 20).forEach(({ cell, code }) => assert.deepEqual(cells[cell], [...codeColor(code), 255], `cell ${cell} in code ${code}'s colour`));
      cells.slice(20).forEach((c, i) => assert.equal(c[3], 0, `cell ${20 + i} not drawn yet`));
      await p.screenshot(`generation-ar-${theme}`);
      held.open();
      await p.page.locator('#results figure img').waitFor();
      const [request] = p.requests('generate');
      assert.deepEqual([request!.prior, request!.settings.classId, request!.settings.priorGuidance, request!.settings.seed], [ar.id, 2, 3, 11]);
      // the grid the panel got is the engine's for those settings (seeded: the same grid again)
      const again = await sampleArGrid(arModel, [8, 8], { seed: 11, temperature: 1, topK: 0, topP: 1, classId: 2, guidance: 3 });
      assert.deepEqual(Array.from(edits[0]!.ids), Array.from(again));
      assert.equal(await p.page.locator('#ar-grid').getAttribute('data-drawn'), '64');
      assert.equal(p.warnings.length, 0, p.warnings.join('\n'));
    } finally {
      held.open();
      await p.close();
    }
  });
}

test('Cancel stops an AR prior between tokens: no more tokens, no result, the panel says so', async () => {
  const held = gate();
  const { p, tokens, ar } = await setup('dark', { arGate: { at: 11, gate: held.gate } });
  try {
    await setValue(p, '#mode', 'sample');
    await setValue(p, '#prior', ar.id);
    await p.page.locator('#generate').click();
    await p.page.waitForFunction(() => (document.querySelector('#ar-grid') as HTMLElement | null)?.dataset.drawn === '10');
    await p.page.locator('#cancel').click();
    while (p.requests('cancel').length === 0) await new Promise((r) => setImmediate(r));
    held.open(); // the step in flight ends; the next token is never drawn
    await p.page.waitForFunction(() => /cancelled/.test(document.querySelector('#status')!.textContent!));
    assert.equal(tokens.length, 10);
    assert.equal(await p.page.locator('#ar-grid').getAttribute('data-drawn'), '10');
    assert.equal(await p.page.locator('#results figure').count(), 0);
    assert.equal(await p.page.locator('#generate').getAttribute('disabled'), null, 'it can run again');
  } finally {
    held.open();
    await p.close();
  }
});

test('a Lab re-run (a run the page did not start): its tokens fill the grid, its result joins the gallery', async () => {
  const { p, ar, host, tokens } = await setup('dark');
  try {
    // what GenerationPanel.rerun does: the host runs the cell's request, then notifies its result
    const settings = { ...settingsDefaults, classId: 3, priorGuidance: 2 };
    const result = await host.generate!({ mode: 'sample', source: null, prior: ar.id, grid: [8, 8], mask: [], settings });
    await p.post({ kind: 'notify', type: 'result', params: result });
    await p.page.locator('#results figure img').waitFor();
    assert.equal(await p.page.locator('#ar-grid').getAttribute('data-drawn'), '64');
    assert.equal(tokens.length, 64);
    assert.equal(await p.page.locator('#progress').isHidden(), true, 'no run of this page is in progress');
    assert.equal(await p.page.locator('#results figure img').getAttribute('src'), result.image);
    assert.equal(p.warnings.length, 0, p.warnings.join('\n'));
  } finally {
    await p.close();
  }
});

test('Model folder…: a folder the host refuses says why in the panel; a good one joins the list, chosen, with its grid and classes', async () => {
  const priors = new ArPriors(async () => 'cpu', () => undefined);
  const broken = path.join(tmp, 'no-present');
  await writeArFolder(broken, { vocab: 261, hidden: 16, heads: 2, layers: 1, noPresent: true }, { image_token_offset: 0, num_image_tokens: 256, grid: [8, 8], prefix: [260] });
  const picked = [broken, arModel.folder.folder];
  const { p, prior, ar } = await setup('dark', {
    // each click picks the next folder, as the host's folder dialog would
    openArPrior: async () => {
      await priors.add(picked.shift()!);
      return [{ id: PRIOR, label: 'prior.safetensors · order 3', k: prior.k, order: prior.order, grid: prior.grid, kind: 'ngram' as const }, ar];
    },
  });
  try {
    await setValue(p, '#mode', 'sample');
    await p.page.locator('#open-ar-prior').click();
    await p.page.waitForFunction(() => /output 'present\.0\.key' missing/.test(document.querySelector('#status')!.textContent!));
    assert.equal(await p.page.locator('label[data-row="ar"]').isHidden(), true, 'nothing was added');
    await p.page.locator('#open-ar-prior').click();
    await p.page.waitForFunction((id) => (document.querySelector('#prior') as HTMLElement & { value: string }).value === id, ar.id);
    assert.equal(await p.page.locator('label[data-row="ar"]').isVisible(), true);
    assert.deepEqual([await p.page.locator('#rows').evaluate((e) => (e as HTMLInputElement).value), await p.page.locator('#cols').evaluate((e) => (e as HTMLInputElement).value)], ['8', '8']);
    assert.equal(await p.page.locator('#class').evaluate((e) => (e as HTMLInputElement).value), '', 'the null class until one is chosen');
  } finally {
    priors.close();
    await p.close();
  }
});

test('sources made with another codebook are listed disabled with why, never chosen; the header follows the active codebook by name; a grid sent from a token-grid panel is chosen', async () => {
  const p = await openPanel('generation', generationProtocol, 'dark', {
    init: () => ({
      sources: [
        { id: 'tokens:1#0', label: 'coffee.jpg', grid: [14, 14] as [number, number], disabled: 'made with codebook k16-tiny-siglip' },
        { id: 'tokens:2#0', label: 'chelsea.png', grid: [14, 21] as [number, number] },
      ],
      priors: [],
      decoders: [{ id: 'atlas', label: 'Atlas (codebook)', kind: 'atlas' as const }],
      codebook: 'k64-dct',
      results: [],
      defaults: settingsDefaults,
    }),
  });
  try {
    const header = p.page.locator('#codebook');
    await p.page.locator('#source vscode-option').nth(1).waitFor({ state: 'attached' });
    assert.equal(await header.textContent(), 'codebook k64-dct');
    const other = p.page.locator('#source vscode-option[value="tokens:1#0"]');
    assert.equal(await other.evaluate((o) => (o as HTMLElement & { disabled: boolean }).disabled), true);
    assert.equal(await other.textContent(), 'coffee.jpg (made with codebook k16-tiny-siglip)');
    // the first source is the other codebook's: the one chosen is the first that fits
    assert.equal(await p.page.locator('#source').evaluate((s: HTMLElement & { value: string }) => s.value), 'tokens:2#0');
    await p.post({ kind: 'notify', type: 'codebook', params: { codebook: 'k1024-dct' } });
    await p.page.locator('#codebook', { hasText: 'codebook k1024-dct' }).waitFor();
    // a grid sent from a token-grid panel ("Generation" there) is the one chosen
    await p.post({
      kind: 'notify', type: 'sources',
      params: { sources: [{ id: 'edited', label: 'Edited grid · chelsea.png', grid: [14, 21] }, { id: 'tokens:2#0', label: 'chelsea.png', grid: [14, 21] }], select: 'edited' },
    });
    await until(async () => (await p.page.locator('#source').evaluate((s: HTMLElement & { value: string }) => s.value)) === 'edited', 'the edited grid chosen');
  } finally {
    await p.close();
  }
});

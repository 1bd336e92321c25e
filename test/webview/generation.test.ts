// The generation panel's bundle in headless Chromium, against a stand-in host that computes with
// the real engine: a prior fitted on the fixture photos' tokens, the atlas decoder, and a tiny
// diffusion decoder folder. Sampling, inpainting a painted mask, a diffusion run with live
// previews, Cancel, the gallery and Save; screenshots in every theme.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openPanel, closeBrowser, THEME_NAMES, type PanelPage, type TestHost } from './harness.js';
import { generationProtocol, type GenerateRequest, type GenerationResult } from '../../common/protocol/generation.js';
import { realFixture, disposeFixture, type Fixture } from './fixture-codebook.js';
import { CancelledError, DEFAULTS, fitPrior, inpaintGrid, openTokenDecoder, samplePriorGrid, upscale, type TokenDecoder, type TokenPrior } from '../../extension/engine/index.js';
import { pngDataUri } from '../../extension/panels/images.js';
import { denoiserModel, sdSchedulerConfig, vaeDecoderModel, writeDiffusionFolder } from '../helpers/diffusion-model.js';

let tmp: string;
let folder: string;
before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-gen-panel-'));
  folder = await writeDiffusionFolder(path.join(tmp, 'tiny-decoder'), {
    denoiser: denoiserModel({ context: 768, size: 8 }), vae: vaeDecoderModel().model, scheduler: sdSchedulerConfig(),
  });
});
after(async () => {
  await closeBrowser();
  await disposeFixture();
  await fs.rm(tmp, { recursive: true, force: true });
});

const PRIOR = 'prior:/work/.unicode2/prior.safetensors';
const defaults = { ...DEFAULTS.generation, seed: 0, upscale: 2 };
const { eta: _eta, priorOrder: _order, ...settingsDefaults } = defaults;

/** A stand-in host: real priors and decoders, a generate handler that does what the extension's does. */
function standIn(f: Fixture, prior: TokenPrior, page: () => PanelPage<typeof generationProtocol>, opts: { holdUntilCancel?: boolean } = {}) {
  const label = path.basename(f.grid.image);
  const sources = [{ id: 'tokens:1#0', label, grid: f.grid.grid }];
  const results: GenerationResult[] = [];
  const edits: { request: GenerateRequest; ids: Int32Array }[] = [];
  let diffusion: Promise<TokenDecoder> | null = null;
  let cancelled: (() => void) | null = null;
  const host: TestHost<typeof generationProtocol> = {
    init: () => ({
      sources,
      priors: [{ id: PRIOR, label: 'prior.safetensors · order 3', k: prior.k, order: prior.order, grid: prior.grid }],
      decoders: [{ id: 'atlas', label: 'Atlas (codebook)', kind: 'atlas' as const }, { id: folder, label: 'tiny-decoder', kind: 'diffusion' as const }],
      codebook: 'codebook.safetensors',
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
      if (r.mode === 'sample') {
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
      let sent: Promise<void> = Promise.resolve();
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
        device: decoded.device, seconds: 0.1,
      };
      results.push(result);
      return result;
    },
    cancel: () => {
      cancelled?.();
      return null;
    },
    savePng: () => '/work/sampled-generated.png',
  };
  return { host, edits };
}

/** Sets a control's value and fires its change event, as picking an option or typing does. */
async function setValue(p: PanelPage<typeof generationProtocol>, selector: string, value: string): Promise<void> {
  await p.page.evaluate(([sel, v]) => {
    const el = document.querySelector(sel!) as HTMLElement & { value: string };
    el.value = v!;
    el.dispatchEvent(new Event('change'));
  }, [selector, value] as const);
}

async function setup(theme: (typeof THEME_NAMES)[number], opts: { holdUntilCancel?: boolean } = {}) {
  const f = await realFixture();
  const prior = fitPrior(f.grids, f.cb.frozen.rows, 3, f.cb.fingerprint);
  let p: PanelPage<typeof generationProtocol> | null = null;
  const { host, edits } = standIn(f, prior, () => p!, opts);
  p = await openPanel('generation', generationProtocol, theme, host, { width: 1100, height: 820 });
  await p.page.locator('#prior vscode-option').first().waitFor({ state: 'attached' });
  return { f, prior, p, edits };
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
      assert.equal(edits[0]!.ids.length, 120);
      assert.equal(await img.getAttribute('width'), String(12 * 16 * 2));
      assert.match(await p.page.locator('#results .result-settings').innerText(), /seed\s+7/);
      await p.page.waitForFunction(() => (document.querySelector('#results img') as HTMLImageElement).complete);
      await p.screenshot(`generation-${theme}`);
      await p.page.locator('#results vscode-button[data-result="result-1"]').click();
      await p.page.waitForFunction(() => document.querySelector('#status')!.textContent!.startsWith('Saved'));
      assert.deepEqual(p.requests('savePng'), [{ result: 'result-1' }]);
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

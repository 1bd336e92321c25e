// The codebook panel's bundle in headless Chromium: heatmap colours read back from the canvas,
// tooltip, code detail round trip, protocol validation, and pan/zoom at K = 500,000 without
// per-cell DOM, a theme switch redrawing the canvas. Screenshots (light, dark, high contrast) go to
// .test-artifacts/screenshots/.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { openPanel, closeBrowser, canvasPixel, until, THEME_NAMES, themeRgb, type TestHost } from './harness.js';
import { countColor, rampColor, DEAD_CODE_RGB } from '../../webview/common/colors.js';
import { heatmapLayout } from '../../webview/codebook/heatmap.js';
import { codebookProtocol, type CodebookView, type CodeDetail } from '../../common/protocol/codebook.js';
import { realFixture, disposeFixture } from './fixture-codebook.js';
import { similarityOrder } from '../../extension/engine/codeOrder.js';
import { cropPatch, pngDataUri } from '../../extension/panels/images.js';
import * as path from 'node:path';
import { seededRandom } from '../../extension/engine/sampling.js';
import type { Matrix } from '../../native-gpu/backend.js';

after(async () => {
  await closeBrowser();
  await disposeFixture();
});


function codebookData(counts: number[], order: number[], file = 'codebook.safetensors'): CodebookView {
  const tokens = counts.reduce((a, b) => a + b, 0);
  const used = counts.filter((c) => c > 0).length;
  const entropy = -counts.reduce((h, c) => (c > 0 ? h + (c / tokens) * Math.log(c / tokens) : h), 0);
  return {
    summary: {
      file, k: counts.length, d: 768, encoder: 'dct:224', lambda: 0.1, iterations: 20, fingerprint: '3f9a0c1d2e4b5a69', atlas: 'dct',
      tokens, used, utilization: used / counts.length, perplexity: Math.exp(entropy), dead: counts.length - used,
    },
    counts,
    order,
    datasets: [{ id: 'build', label: 'Build corpus' }, { id: 'tokens:1', label: 'china.tokens.json' }],
    dataset: 'build',
  };
}

/**
 * Realistic usage of K codes as a built codebook shows it: code ids in random order over the
 * heatmap layout (the host orders by similarity), heavy-tailed counts that vary smoothly between
 * neighbouring cells (similar codes are used alike), and a dead region where usage fades out.
 */
function realisticData(k: number): CodebookView {
  const rand = seededRandom(7);
  const { cols, rows } = heatmapLayout(k);
  const order = Array.from({ length: k }, (_, i) => i);
  for (let i = k - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const blobs = Array.from({ length: 7 }, () => ({ x: rand(), y: rand(), r: 0.08 + rand() * 0.2, w: 1 + rand() * 3 }));
  const counts = new Array<number>(k).fill(0);
  for (let cell = 0; cell < k; cell++) {
    const x = (cell % cols) / cols;
    const y = Math.floor(cell / cols) / rows;
    let field = 0.6 * (1 - y) + 0.4 * x;
    for (const b of blobs) field += b.w * Math.exp(-((x - b.x) ** 2 + (y - b.y) ** 2) / (2 * b.r * b.r));
    const noise = -Math.log(1 - rand()); // exponential: a long tail within each neighbourhood
    const c = Math.floor(Math.exp(field * 1.6) * noise - 1.2);
    counts[order[cell]!] = Math.max(0, c);
  }
  return codebookData(counts, order);
}

type CodebookHost = TestHost<typeof codebookProtocol>;

const host = (data: CodebookView): CodebookHost => ({
  init: () => data,
  selectDataset: () => data,
  codeDetail: ({ code }) => ({
    code, count: data.counts[code]!, share: data.counts[code]! / data.summary.tokens, patches: [],
    neighbours: [1, 2, 3].map((o) => ({ code: (code + o) % data.counts.length, distance: o * 0.5, count: data.counts[(code + o) % data.counts.length]! })),
    note: 'No tokenized image uses this code.',
  }),
});

test('heatmap pixels follow the colour ramp of the known counts; tooltip names the code', async () => {
  // 64 codes in an 8 x 8 grid, identity order: code i sits at (i % 8, i / 8)
  const counts = Array.from({ length: 64 }, (_, i) => (i % 5 === 0 ? 0 : i * 37));
  const max = Math.max(...counts);
  const data = codebookData(counts, counts.map((_, i) => i));
  const p = await openPanel('codebook', codebookProtocol, 'dark', host(data));
  try {
    const canvas = p.page.locator('#heatmap[data-drawn="true"]');
    await canvas.waitFor();
    assert.equal(await canvas.getAttribute('data-k'), '64');
    const box = (await canvas.boundingBox())!;
    const { cols, rows } = heatmapLayout(64);
    const scale = Math.min(box.width / cols, box.height / rows);
    const x0 = (box.width - cols * scale) / 2;
    const y0 = (box.height - rows * scale) / 2;
    const maxCode = counts.indexOf(max);
    for (const code of [0, 5, 1, 17, 42, maxCode]) {
      const x = Math.round(x0 + ((code % cols) + 0.5) * scale);
      const y = Math.round(y0 + (Math.floor(code / cols) + 0.5) * scale);
      const pixel = await canvasPixel(p.page, '#heatmap', x, y);
      assert.deepEqual(pixel, [...countColor(counts[code]!, max), 255], `colour of code ${code}`);
      await p.page.mouse.move(box.x + x, box.y + y);
      const tip = p.page.locator('#tooltip');
      await tip.waitFor({ state: 'visible' });
      const text = await tip.textContent();
      assert.match(text!, new RegExp(`code ${code}(?!\\d)`));
      assert.match(text!, new RegExp(`count ${counts[code]!.toLocaleString('en-US')}`));
    }
    // the ends of the scale: dead codes get the dead colour, the most used the top of the ramp
    assert.deepEqual(countColor(0, max), DEAD_CODE_RGB);
    assert.deepEqual(countColor(max, max), rampColor(1));
    const summary = await p.page.locator('#summary').textContent();
    assert.match(summary!, /K64/);
    assert.match(summary!, /d768/);
    assert.match(summary!, new RegExp(`utilization${(data.summary.utilization * 100).toFixed(1)}%`));
  } finally {
    await p.close();
  }
});

test('a theme switch while the panel is open redraws the heatmap in the new colours', async () => {
  const counts = Array.from({ length: 64 }, (_, i) => i * 11);
  const data = codebookData(counts, counts.map((_, i) => i));
  const p = await openPanel('codebook', codebookProtocol, 'dark', host(data));
  try {
    const canvas = p.page.locator('#heatmap[data-drawn="true"]');
    await canvas.waitFor();
    const box = (await canvas.boundingBox())!;
    // the 8 x 8 grid is centred in a wider canvas: the strip left of it shows the background
    const [code0x] = cellCentre(box, data, 0);
    assert.ok(code0x - box.height / 16 > 8, 'the canvas leaves a background strip beside the grid');
    const background = () => canvasPixel(p.page, '#heatmap', 3, Math.round(box.height / 2));
    const [x42, y42] = cellCentre(box, data, 42);
    const code42 = () => canvasPixel(p.page, '#heatmap', Math.round(x42), Math.round(y42));
    assert.deepEqual(await background(), [...themeRgb('dark', 'editor-background'), 255]);
    for (const theme of ['light', 'high-contrast', 'dark'] as const) {
      await p.setTheme(theme);
      const want = JSON.stringify([...themeRgb(theme, 'editor-background'), 255]);
      await until(async () => JSON.stringify(await background()) === want, `the heatmap background to turn ${theme}`);
      // data colours do not depend on the theme
      assert.deepEqual(await code42(), [...countColor(counts[42]!, counts[63]!), 255], `code 42 in ${theme}`);
    }
    // (Chromium's hint about this test's own repeated getImageData calls is not the panel's)
    const panelWarnings = p.warnings.filter((w) => !/willReadFrequently/.test(w));
    assert.equal(panelWarnings.length, 0, panelWarnings.join('\n'));
  } finally {
    await p.close();
  }
});

test('clicking a code asks the host for its detail and shows the nearest codes', async () => {
  const data = realisticData(1000);
  const p = await openPanel('codebook', codebookProtocol, 'light', host(data));
  try {
    const canvas = p.page.locator('#heatmap[data-drawn="true"]');
    await canvas.waitFor();
    const box = (await canvas.boundingBox())!;
    await p.page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    const tip = await p.page.locator('#tooltip').textContent();
    const hovered = Number(/code (\d+)/.exec(tip!)![1]);
    await p.page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    await p.page.locator('#detail .neighbours li').first().waitFor();
    assert.deepEqual(p.requests('codeDetail'), [{ code: hovered }]);
    assert.equal(await p.page.locator('#detail h2').textContent(), `Code ${hovered}`);
    assert.equal(await p.page.locator('#detail .neighbours li').count(), 3);
  } finally {
    await p.close();
  }
});

test('a malformed message from the host is rejected and logged, and the panel keeps working', async () => {
  const data = realisticData(100);
  const p = await openPanel('codebook', codebookProtocol, 'dark', host(data));
  try {
    await p.page.locator('#heatmap[data-drawn="true"]').waitFor();
    const before = await p.page.locator('#summary').textContent();
    await p.post({ kind: 'notify', type: 'datasets', params: { datasets: [{ id: 3, label: 'x' }] } });
    await p.post({ kind: 'reply', id: 999, result: { summary: null } });
    await p.post({ kind: 'request', id: 1, type: 'init', params: {} });
    const dropped = (): string[] => p.warnings.filter((w) => w.includes('dropped a malformed message'));
    await until(() => dropped().length === 3, 'three rejections');
    assert.match(dropped()[0]!, /params\.datasets\.0\.id: Invalid type: Expected string but received 3/);
    assert.match(dropped()[1]!, /reply 999 answers no pending request/);
    assert.match(dropped()[2]!, /message\.kind must be reply or notify/);
    assert.equal(await p.page.locator('#summary').textContent(), before);
    assert.equal(await p.page.locator('vscode-option').count(), 2);
  } finally {
    await p.close();
  }
});

test('K = 500,000: one canvas, zoom keeps the code under the cursor, pan moves it, no per-cell DOM', async () => {
  const data = realisticData(500_000);
  const p = await openPanel('codebook', codebookProtocol, 'dark', host(data));
  try {
    const canvas = p.page.locator('#heatmap[data-drawn="true"]');
    await canvas.waitFor({ timeout: 30_000 });
    assert.equal(await canvas.getAttribute('data-k'), '500000');
    const box = (await canvas.boundingBox())!;
    const domSize = (): Promise<number> => p.page.evaluate(() => document.querySelectorAll('*').length);

    const codeAt = async (x: number, y: number): Promise<number> => {
      // arrive from one pixel away: a move to where the pointer already is fires no event
      await p.page.mouse.move(box.x + x - 1, box.y + y - 1);
      await p.page.mouse.move(box.x + x, box.y + y);
      await p.page.locator('#tooltip').waitFor({ state: 'visible' });
      return Number(/code (\d+)/.exec((await p.page.locator('#tooltip').textContent())!)![1]);
    };
    // whole pixels: wheel events carry integer coordinates, and at fit a cell is under one pixel wide
    const cx = Math.round(box.width * 0.4);
    const cy = Math.round(box.height * 0.6);
    const underCursor = await codeAt(cx, cy);
    const before = await domSize(); // with the tooltip filled in
    assert.ok(before < 400, `the page holds ${before} elements`);
    for (let i = 0; i < 12; i++) await p.page.mouse.wheel(0, -240);
    await p.page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    const tooltipAfterZoom = await p.page.locator('#tooltip').textContent();
    assert.match(tooltipAfterZoom!, new RegExp(`code ${underCursor}(?!\\d)`), 'the tooltip follows the zoom');
    assert.equal(await codeAt(cx, cy), underCursor, 'zoom is centred on the cursor');
    const neighbour = await codeAt(cx + 100, cy);
    assert.notEqual(neighbour, underCursor, 'zoomed in, 100 px away is another code');

    await p.page.mouse.move(box.x + cx + 100, box.y + cy);
    await p.page.mouse.down();
    await p.page.mouse.move(box.x + cx + 50, box.y + cy, { steps: 4 });
    await p.page.mouse.move(box.x + cx, box.y + cy, { steps: 4 });
    await p.page.mouse.up();
    await p.page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    assert.equal(await codeAt(cx, cy), neighbour, 'dragging 100 px left brings the neighbour under the cursor');
    assert.equal(await domSize(), before, 'pan and zoom add no DOM');
    const tip = await p.page.locator('#tooltip').textContent();
    assert.match(tip!, new RegExp(`count ${data.counts[neighbour]!.toLocaleString('en-US')}`));
  } finally {
    await p.close();
  }
});

/**
 * The panel over a real codebook: the engine's build of the fixture photos (stored counts), the
 * host's similarity order, and for a clicked code the crops of the fixture photos that use it and
 * its nearest codewords (brute force here; the panel asks the backend).
 */
async function realHost(): Promise<{ data: CodebookView; answer: CodebookHost }> {
  const f = await realFixture();
  const counts = Array.from(f.cb.counts!);
  const data = codebookData(counts, similarityOrder(f.cb.frozen));
  data.summary = { ...data.summary, d: f.cb.frozen.cols, encoder: f.cb.meta.encoder.id, lambda: f.cb.meta.lambda, iterations: f.cb.meta.iterations, fingerprint: f.cb.fingerprint };
  const images = new Map(await Promise.all(f.grids.map(async (g) => [g.image, await f.encoder.load(g.image)] as const)));
  const { rows: k, cols: d, data: w } = f.cb.frozen as Matrix; // built as f32
  const codeDetail = async ({ code }: { code: number }): Promise<CodeDetail> => {
    const patches = [];
    for (const g of f.grids) {
      for (let cell = 0; cell < g.ids.length && patches.length < 24; cell++) {
        if (g.ids[cell] !== code) continue;
        const [row, col] = [Math.floor(cell / g.grid[1]), cell % g.grid[1]];
        patches.push({ src: await pngDataUri(cropPatch(images.get(g.image)!, row, col, f.encoder.patch, 3)), image: path.basename(g.image), row, col });
      }
    }
    const dist = (i: number): number => {
      let s = 0;
      for (let j = 0; j < d; j++) s += (w[i * d + j]! - w[code * d + j]!) ** 2;
      return s;
    };
    const neighbours = Array.from({ length: k }, (_, i) => i).filter((i) => i !== code).sort((a, b) => dist(a) - dist(b)).slice(0, 6)
      .map((i) => ({ code: i, distance: dist(i), count: counts[i]! }));
    return { code, count: counts[code]!, share: counts[code]! / data.summary.tokens, patches, neighbours };
  };
  return { data, answer: { ...host(data), codeDetail } };
}

/** Where a code's cell is drawn right after the panel opened (fit to the canvas, centred). */
function cellCentre(box: { width: number; height: number }, data: CodebookView, code: number): [number, number] {
  const { cols, rows } = heatmapLayout(data.order.length);
  const scale = Math.min(box.width / cols, box.height / rows);
  const cell = data.order.indexOf(code);
  return [(box.width - cols * scale) / 2 + ((cell % cols) + 0.5) * scale, (box.height - rows * scale) / 2 + (Math.floor(cell / cols) + 0.5) * scale];
}

for (const theme of THEME_NAMES) {
  test(`screenshot of a real codebook, ${theme} theme`, async () => {
    const { data, answer } = await realHost();
    const p = await openPanel('codebook', codebookProtocol, theme, answer, { width: 1200, height: 760 });
    try {
      await p.page.locator('#heatmap[data-drawn="true"]').waitFor();
      const box = (await p.page.locator('#heatmap').boundingBox())!;
      // a well-used code (4th by count) shows a full patch list
      const top = data.counts.map((c, code) => [c, code]).sort((a, b) => b[0]! - a[0]! || a[1]! - b[1]!)[3]![1]!;
      const [x, y] = cellCentre(box, data, top);
      await p.page.mouse.click(box.x + x, box.y + y);
      assert.equal(await p.page.locator('#detail h2').textContent(), `Code ${top}`);
      await p.page.locator('#detail .neighbours li').first().waitFor();
      await p.page.waitForFunction(() => [...document.images].every((i) => i.complete));
      await p.page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.3);
      await p.page.locator('#tooltip').waitFor({ state: 'visible' });
      await p.screenshot(`codebook-real-${theme}`);
      assert.equal(p.warnings.length, 0, p.warnings.join('\n'));
    } finally {
      await p.close();
    }
  });
}

test('screenshot at K = 500,000, zoomed in', async () => {
  const p = await openPanel('codebook', codebookProtocol, 'dark', host(realisticData(500_000)), { width: 1200, height: 760 });
  try {
    await p.page.locator('#heatmap[data-drawn="true"]').waitFor({ timeout: 30_000 });
    const box = (await p.page.locator('#heatmap').boundingBox())!;
    await p.page.mouse.move(box.x + box.width * 0.62, box.y + box.height * 0.7);
    for (let i = 0; i < 4; i++) await p.page.mouse.wheel(0, -200);
    await p.page.mouse.click(box.x + box.width * 0.62, box.y + box.height * 0.7);
    await p.page.locator('#detail .neighbours li').first().waitFor();
    await p.page.mouse.move(box.x + box.width * 0.4, box.y + box.height * 0.35);
    await p.page.locator('#tooltip').waitFor({ state: 'visible' });
    await p.screenshot('codebook-500k-dark');
    assert.equal(p.warnings.length, 0, p.warnings.join('\n'));
  } finally {
    await p.close();
  }
});

// The codebook panel's bundle in headless Chromium: heatmap colours read back from the canvas,
// tooltip, code detail round trip, protocol validation, and pan/zoom at K = 500,000 without
// per-cell DOM, a theme switch redrawing the canvas, the training-drift colouring. Screenshots (light, dark, high contrast) go to
// .test-artifacts/screenshots/.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { openPanel, closeBrowser, canvasPixel, until, THEME_NAMES, themeRgb, type TestHost } from './harness.js';
import { contrastRatio, countColor, deadCodeColor, driftColor, rampColor, type Rgb } from '../../common/colormap.js';
import sharp from 'sharp';
import type { Page } from 'playwright-core';
import { coarseCells, cropPatch, fewVectorsWarning, kmeans, trainingDrift } from '../../extension/engine/index.js';
import { rowsF32 } from '../../native-gpu/tables.js';
import { heatmapLayout } from '../../webview/codebook/heatmap.js';
import { codebookProtocol, type CodebookView, type CodeDetail } from '../../common/protocol/codebook.js';
import { realFixture, disposeFixture, trainedFixture } from './fixture-codebook.js';
import { similarityOrder } from '../../extension/engine/report/code-order.js';
import { pngDataUri } from '../../extension/panels/images.js';
import * as path from 'node:path';
import { seededRandom } from '../../extension/engine/core/sampling.js';
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
    coarse: null,
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
  const dark = themeRgb('dark', 'editor-background');
  const data = codebookData(counts, counts.map((_, i) => i));
  const p = await openPanel('codebook', codebookProtocol, 'dark', host(data));
  try {
    const canvas = p.page.locator('#heatmap[data-drawn="true"]');
    await canvas.waitFor();
    assert.equal(await canvas.getAttribute('data-k'), '64');
    // the legend says the scale is logarithmic, and where it starts and ends
    const legend = await Promise.all(['#ramp-scale', '#ramp-min', '#ramp-max'].map((id) => p.page.locator(id).textContent()));
    assert.deepEqual(legend, ['uses, log scale:', '1', max.toLocaleString('en-US')]);
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
      assert.deepEqual(pixel, [...countColor(counts[code]!, max, deadCodeColor(dark)), 255], `colour of code ${code}`);
      await p.page.mouse.move(box.x + x, box.y + y);
      const tip = p.page.locator('#tooltip');
      await tip.waitFor({ state: 'visible' });
      const text = await tip.textContent();
      assert.match(text!, new RegExp(`code ${code}(?!\\d)`));
      assert.match(text!, new RegExp(`count ${counts[code]!.toLocaleString('en-US')}`));
    }
    // the ends of the scale: dead codes get the dead colour, the most used the top of the ramp
    assert.deepEqual(countColor(0, max, deadCodeColor(dark)), deadCodeColor(dark));
    assert.deepEqual(countColor(max, max, deadCodeColor(dark)), rampColor(1));
    assert.equal(await p.page.locator('#coarse').isHidden(), true, 'no coarse level, no coarse card');
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
      assert.deepEqual(await code42(), [...countColor(counts[42]!, counts[63]!, [0, 0, 0]), 255], `code 42 in ${theme}`);
    }
    // (Chromium's hint about this test's own repeated getImageData calls is not the panel's)
    const panelWarnings = p.warnings.filter((w) => !/willReadFrequently/.test(w));
    assert.equal(panelWarnings.length, 0, panelWarnings.join('\n'));
  } finally {
    await p.close();
  }
});

test('dead codes stand out in every theme: contrast >= 3 against the background and the rarest codes, hatched once cells are large', async () => {
  // 64 codes, identity order: code 0 dead, code 1 the rarest used, the rest used more
  const counts = Array.from({ length: 64 }, (_, i) => (i === 0 ? 0 : i === 1 ? 1 : 50 + i * 40));
  const data = codebookData(counts, counts.map((_, i) => i));
  for (const theme of THEME_NAMES) {
    const p = await openPanel('codebook', codebookProtocol, theme, host(data));
    try {
      const canvas = p.page.locator('#heatmap[data-drawn="true"]');
      await canvas.waitFor();
      const box = (await canvas.boundingBox())!;
      const scale = Math.min(box.width / 8, box.height / 8);
      const [x0, y0] = cellCentre(box, data, 0);
      const px = async (x: number, y: number): Promise<Rgb> => (await canvasPixel(p.page, '#heatmap', Math.round(x), Math.round(y))).slice(0, 3) as unknown as Rgb;
      const background = await px(3, box.height / 2);
      assert.deepEqual(background, themeRgb(theme, 'editor-background'), `${theme} background`);
      // the cell is ~80 px wide: it is the dead colour hatched with background-coloured stripes
      // (a 9 x 9 sample of its inside: mostly the dead colour, some stripes); a used cell is not hatched
      assert.ok(scale > 8);
      const inside = async (x: number, y: number): Promise<Rgb[]> => {
        const out: Rgb[] = [];
        for (let i = -4; i <= 4; i++) for (let j = -4; j <= 4; j++) out.push(await px(x + (i * scale) / 10, y + (j * scale) / 10));
        return out;
      };
      const same = (a: Rgb, b: Rgb): boolean => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]) < 40;
      const dead = deadCodeColor(background);
      const deadCell = await inside(x0, y0);
      const stripes = deadCell.filter((c) => same(c, background)).length;
      const filled = deadCell.filter((c) => same(c, dead)).length;
      assert.ok(stripes >= 6 && filled >= 45, `${theme}: of 81 samples ${filled} are the dead colour ${dead}, ${stripes} on stripes`);
      const rare = await px(...cellCentre(box, data, 1));
      assert.equal((await inside(...cellCentre(box, data, 1))).filter((c) => same(c, background)).length, 0, 'used cells are not hatched');
      assert.ok(contrastRatio(dead, background) >= 3, `${theme}: dead ${dead} on ${background} has contrast ${contrastRatio(dead, background).toFixed(2)}`);
      assert.ok(contrastRatio(dead, rare) >= 3, `${theme}: dead ${dead} vs rarest ${rare}: ${contrastRatio(dead, rare).toFixed(2)}`);
      // the legend's swatch shows the same colour on the same background
      const swatch = await sharp(await p.page.locator('#dead-swatch').screenshot()).raw().toBuffer({ resolveWithObject: true });
      let matching = 0;
      for (let i = 0; i < swatch.data.length; i += swatch.info.channels) {
        if (Math.hypot(swatch.data[i]! - dead[0], swatch.data[i + 1]! - dead[1], swatch.data[i + 2]! - dead[2]) < 30) matching++;
      }
      assert.ok(matching / (swatch.info.width * swatch.info.height) > 0.5, `${theme}: the legend swatch is mostly the dead colour`);
      await p.screenshot(`codebook-dead-${theme}`);
      assert.equal(p.warnings.filter((w) => !/willReadFrequently/.test(w)).length, 0, p.warnings.join('\n'));
    } finally {
      await p.close();
    }
  }
});

test('the header keeps its whole title and "Counts from" on one line at normal editor widths', async () => {
  const data = codebookData([1, 2, 3, 0], [0, 1, 2, 3], 'codebook-k16384-siglip-so400m.safetensors');
  for (const width of [700, 860, 1100]) {
    const p = await openPanel('codebook', codebookProtocol, 'light', host(data), { width, height: 700 });
    try {
      await p.page.locator('#heatmap[data-drawn="true"]').waitFor();
      const title = await p.page.locator('#title').evaluate((e) => ({ text: e.textContent, cut: e.scrollWidth > e.clientWidth + 1 }));
      assert.deepEqual(title, { text: 'Codebook · codebook-k16384-siglip-so400m.safetensors', cut: false }, `at ${width} px`);
      const label = await p.page.locator('label[for="dataset"]').evaluate((e) => e.getClientRects().length);
      assert.equal(label, 1, `"Counts from" wraps at ${width} px`);
      const picker = (await p.page.locator('.dataset-picker').boundingBox())!;
      assert.ok(picker.x + picker.width <= width, `the data-set picker fits at ${width} px`);
    } finally {
      await p.close();
    }
  }
});

/**
 * The real codebook with a coarse level made here the way the ivf/two-level helpers do it: the
 * codewords grouped by a small k-means (K1 = 16), each code's cell in coarse_assign.
 */
async function withCoarseLevel(): Promise<{ data: CodebookView; answer: CodebookHost; assign: number[] }> {
  const f = await realFixture();
  const { data, answer } = await realHost();
  const frozen = { rows: f.cb.frozen.rows, cols: f.cb.frozen.cols, data: rowsF32(f.cb.frozen, 0, f.cb.frozen.rows) };
  const coarse = await kmeans(frozen, { k: 16, iterations: 10, seed: 1 }, f.backend);
  const assign = Array.from(coarse.ids);
  // the cells and their use as the host computes them (engine coarseCells)
  const cells = coarseCells({ ...f.cb, coarse: { centroids: coarse.centroids, assign: coarse.ids } }, data.counts)!;
  const withCoarse: CodebookView = {
    ...data,
    coarse: { order: similarityOrder(coarse.centroids), cells: cells.map((c) => ({ codes: Array.from(c.codes), tokens: c.tokens, used: c.used })) },
  };
  return { data: withCoarse, answer: { ...answer, init: () => withCoarse, selectDataset: () => withCoarse }, assign };
}

test('the coarse level: cells coloured by their codes\' use, click one to list its codes and fade the rest of the heatmap', async () => {
  const { data, answer, assign } = await withCoarseLevel();
  const p = await openPanel('codebook', codebookProtocol, 'dark', answer, { width: 1200, height: 900 });
  try {
    const map = p.page.locator('#coarse-map[data-drawn="true"]');
    await map.waitFor();
    assert.equal(await map.getAttribute('data-cells'), '16');
    const uses = Array.from({ length: 16 }, (_, cell) => assign.reduce((s, c, code) => s + (c === cell ? data.counts[code]! : 0), 0));
    const maxUse = Math.max(...uses);
    const dead = deadCodeColor(themeRgb('dark', 'editor-background'));
    const box = (await map.boundingBox())!;
    const side = box.width / 4; // 16 cells: 4 x 4
    const order = data.coarse!.order;
    for (const place of [0, 5, 15]) {
      const pixel = await canvasPixel(p.page, '#coarse-map', Math.floor((place % 4) * side + side / 2), Math.floor(Math.floor(place / 4) * side + side / 2));
      assert.deepEqual(pixel, [...countColor(uses[order[place]!]!, maxUse, dead), 255], `coarse square ${place} (cell ${order[place]})`);
    }
    // click the square of the busiest cell
    const busiest = uses.indexOf(maxUse);
    const place = order.indexOf(busiest);
    await p.page.mouse.click(box.x + (place % 4) * side + side / 2, box.y + Math.floor(place / 4) * side + side / 2);
    await p.page.locator('#coarse-detail h3').waitFor();
    assert.equal(await p.page.locator('#coarse-detail h3').textContent(), `Cell ${busiest}`);
    const members = assign.flatMap((c, code) => (c === busiest ? [code] : [])).sort((a, b) => data.counts[b]! - data.counts[a]! || a - b);
    const listed = await p.page.locator('#cell-codes a').evaluateAll((els) => els.map((e) => Number((e as HTMLElement).dataset.code)));
    assert.deepEqual(listed, members.slice(0, 40));
    // on the heatmap a member keeps its colour, a code of another cell is faded toward the background
    const heat = (await p.page.locator('#heatmap').boundingBox())!;
    const max = Math.max(...data.counts);
    const member = members[0]!;
    const outsider = data.order.find((code) => assign[code] !== busiest)!;
    assert.deepEqual(await canvasPixel(p.page, '#heatmap', ...cellCentre(heat, data, member).map(Math.round) as [number, number]), [...countColor(data.counts[member]!, max, dead), 255]);
    const faded = await canvasPixel(p.page, '#heatmap', ...cellCentre(heat, data, outsider).map(Math.round) as [number, number]);
    assert.notDeepEqual(faded, [...countColor(data.counts[outsider]!, max, dead), 255], 'a code outside the cell is faded');
    // a listed code opens its detail
    await p.page.locator(`#cell-codes a[data-code="${members[1]}"]`).click();
    await p.page.locator('#detail .neighbours li').first().waitFor();
    assert.deepEqual(p.requests('codeDetail').at(-1), { code: members[1] });
    await p.screenshot('codebook-coarse-dark');
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

test('a data set made with another codebook is listed disabled with why; a refused choice shows its error under the picker and keeps the counts', async () => {
  const data: CodebookView = {
    ...realisticData(100),
    datasets: [
      { id: 'build', label: 'Build corpus' },
      { id: 'tokens:1', label: 'coffee.jpg', disabled: 'made with codebook k16-tiny-siglip' },
      { id: 'tokens:2', label: 'images (6 images)' },
    ],
  };
  const refusal = 'images (6 images) was made with codebook k16-tiny-siglip, not with k64-dct';
  const p = await openPanel('codebook', codebookProtocol, 'light', {
    ...host(data),
    selectDataset: () => {
      throw new Error(refusal);
    },
  });
  try {
    await p.page.locator('#heatmap[data-drawn="true"]').waitFor();
    const other = p.page.locator('#dataset vscode-option[value="tokens:1"]');
    assert.equal(await other.evaluate((o) => (o as HTMLElement & { disabled: boolean }).disabled), true);
    assert.equal(await other.textContent(), 'coffee.jpg (made with codebook k16-tiny-siglip)');
    const counts = await p.page.locator('#summary').textContent();
    await p.page.locator('#dataset').evaluate((select: HTMLElement & { value: string }) => {
      select.value = 'tokens:2';
      select.dispatchEvent(new Event('change'));
    });
    const error = p.page.locator('#dataset-error');
    await error.waitFor({ state: 'visible' });
    assert.equal(await error.textContent(), refusal);
    assert.deepEqual(p.requests('selectDataset'), [{ dataset: 'tokens:2' }]);
    // the panel still shows the codebook and the counts it showed, the picker back on them
    assert.equal(await p.page.locator('#notice').isHidden(), true);
    assert.equal(await p.page.locator('#summary').textContent(), counts);
    assert.equal(await p.page.locator('#dataset').evaluate((select: HTMLElement & { value: string }) => select.value), 'build');
    await p.screenshot('codebook-dataset-refused');
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
    assert.equal(await p.page.locator('#dataset vscode-option').count(), 2);
  } finally {
    await p.close();
  }
});

test('a rebuilt file starts over: the new layout at fit, no code selected, no detail of the old code', async () => {
  let data = realisticData(1000);
  const p = await openPanel('codebook', codebookProtocol, 'dark', { ...host(data), init: () => data });
  try {
    const canvas = p.page.locator('#heatmap[data-drawn="true"]');
    await canvas.waitFor();
    const box = (await canvas.boundingBox())!;
    const [x, y] = [box.x + box.width * 0.3, box.y + box.height * 0.4];
    const codeAt = async (): Promise<number> => {
      await p.page.mouse.move(x - 1, y - 1);
      await p.page.mouse.move(x, y);
      return Number(/code (\d+)/.exec((await p.page.locator('#tooltip').textContent())!)![1]);
    };
    const atFit = await codeAt();
    for (let i = 0; i < 6; i++) await p.page.mouse.wheel(0, -240);
    await p.page.mouse.click(x, y);
    await p.page.locator('#detail .neighbours li').first().waitFor();
    // the same K, rebuilt: other codes, so another layout (here the reversed order)
    data = { ...realisticData(1000), order: [...data.order].reverse() };
    const cell = data.order.indexOf(atFit);
    await p.post({ kind: 'notify', type: 'fileChanged', params: {} });
    await p.page.locator('#detail p.muted', { hasText: 'Click a code' }).waitFor();
    // at fit again (the zoom forgotten), and the pixel that showed code atFit shows the code the new layout puts there
    assert.equal(await codeAt(), data.order[data.order.length - 1 - cell]);
    assert.equal(p.requests('codeDetail').length, 1, 'the old code is not asked about again');
  } finally {
    await p.close();
  }
});

test('right after a build a code says why it shows no patches, and one click tokenizes the build corpus to show them', async () => {
  const data = realisticData(1000);
  let tokenized = false;
  const patch = await pngDataUri({ width: 2, height: 2, data: new Float32Array(12).fill(0.5) });
  const p = await openPanel('codebook', codebookProtocol, 'light', {
    ...host(data),
    codeDetail: ({ code }) => ({
      code, count: data.counts[code]!, share: 0.01, neighbours: [],
      ...(tokenized
        ? { patches: [{ src: patch, image: 'coffee.jpg', row: 1, col: 2 }] }
        : { patches: [], note: `No image tokenized with this codebook yet: it has ${data.counts[code]} uses in the build corpus, but a build keeps how often each code was used, not where.`, corpus: 'images' }),
    }),
    tokenizeCorpus: () => {
      tokenized = true;
      return null;
    },
  });
  try {
    const canvas = p.page.locator('#heatmap[data-drawn="true"]');
    await canvas.waitFor();
    const box = (await canvas.boundingBox())!;
    await p.page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    await p.page.locator('#patches-note').waitFor();
    assert.match(await p.page.locator('#patches-note').innerText(), /uses in the build corpus, but a build keeps how often/);
    await p.page.locator('#tokenize-corpus', { hasText: 'Tokenize images/' }).click();
    await p.page.locator('#detail .patches img[alt="patch of coffee.jpg"]').waitFor();
    assert.equal(p.requests('tokenizeCorpus').length, 1);
    assert.equal(p.requests('codeDetail').length, 2, 'the code is asked about again once the corpus is tokenized');
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
  const data = codebookData(counts, similarityOrder(f.cb.frozen), 'k256-dct.safetensors'); // a named codebook, as builds write them
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

test('K = 500,000 zoomed in: a click opens the detail of the code under the cursor, hover names another (and screenshotted)', async () => {
  const data = realisticData(500_000);
  const p = await openPanel('codebook', codebookProtocol, 'dark', host(data), { width: 1200, height: 760 });
  try {
    await p.page.locator('#heatmap[data-drawn="true"]').waitFor({ timeout: 30_000 });
    const box = (await p.page.locator('#heatmap').boundingBox())!;
    const frames = () => p.page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    // whole pixels, arriving from one pixel away (a move to where the pointer is fires nothing)
    const codeAt = async (x: number, y: number): Promise<number> => {
      await p.page.mouse.move(x - 1, y - 1);
      await p.page.mouse.move(x, y);
      await p.page.locator('#tooltip').waitFor({ state: 'visible' });
      return Number(/code (\d+)/.exec((await p.page.locator('#tooltip').textContent())!)![1]);
    };
    const [x, y] = [Math.round(box.x + box.width * 0.62), Math.round(box.y + box.height * 0.7)];
    await p.page.mouse.move(x, y);
    for (let i = 0; i < 4; i++) await p.page.mouse.wheel(0, -200);
    await frames();
    const clicked = await codeAt(x, y);
    await p.page.mouse.click(x, y);
    await p.page.locator('#detail .neighbours li').first().waitFor();
    assert.equal(await p.page.locator('#detail h2').textContent(), `Code ${clicked}`);
    assert.ok(clicked >= 0 && clicked < 500_000);
    const hovered = await codeAt(Math.round(box.x + box.width * 0.4), Math.round(box.y + box.height * 0.35));
    assert.notEqual(hovered, clicked);
    assert.ok((await p.page.locator('#tooltip').textContent())!.includes(`count ${Math.round(data.counts[hovered]!).toLocaleString('en-US')}`));
    await p.screenshot('codebook-500k-dark');
    assert.equal(p.warnings.length, 0, p.warnings.join('\n'));
  } finally {
    await p.close();
  }
});

/** Picks the heatmap's colouring as the select does: its value, then a change event. */
async function colourBy(page: Page, value: 'usage' | 'drift'): Promise<void> {
  await page.locator('#colouring').evaluate((e, v) => {
    (e as unknown as { value: string }).value = v;
    e.dispatchEvent(new Event('change'));
  }, value);
}

/** The real codebook after a training run (fixture trainedFixture), as the host shows it: usage
 *  from the build, drift from the engine. */
async function trainedHost(): Promise<{ data: CodebookView; answer: CodebookHost; distances: number[] }> {
  const { data, answer } = await realHost();
  const trained = await trainedFixture();
  const { distances, note } = await trainingDrift(trained);
  const withDrift: CodebookView = { ...data, summary: { ...data.summary, atlas: trained.meta.atlas }, drift: { distances: Array.from(distances!), note } };
  return { data: withDrift, answer: { ...answer, init: () => withDrift, selectDataset: () => withDrift }, distances: Array.from(distances!) };
}

test('training drift: the toggle colours every code by how far its trainable row moved, on the same layout and ramp', async () => {
  const { data, answer, distances } = await trainedHost();
  const p = await openPanel('codebook', codebookProtocol, 'dark', answer, { width: 1200, height: 760 });
  try {
    const canvas = p.page.locator('#heatmap[data-drawn="true"]');
    await canvas.waitFor();
    assert.equal(await canvas.getAttribute('data-colour'), 'usage', 'usage first');
    assert.equal(await p.page.locator('#colour-by').isVisible(), true);
    await colourBy(p.page, 'drift');
    await p.page.locator('#heatmap[data-colour="drift"]').waitFor();
    const box = (await canvas.boundingBox())!;
    const max = Math.max(...distances);
    const counts = data.counts;
    // the most moved code, the least moved (the least used) and the one nearest half way
    const most = distances.indexOf(max);
    const least = distances.indexOf(Math.min(...distances));
    const middling = distances.reduce((best, x, code) => (Math.abs(x - max / 2) < Math.abs(distances[best]! - max / 2) ? code : best), 0);
    assert.ok(distances[least]! < 0.2 * max, 'training moved some codes little');
    for (const code of [most, least, middling]) {
      const [x, y] = cellCentre(box, data, code);
      assert.deepEqual(await canvasPixel(p.page, '#heatmap', Math.round(x), Math.round(y)), [...driftColor(distances[code]!, max), 255], `drift colour of code ${code}`);
    }
    assert.deepEqual(driftColor(max, max), rampColor(1));
    assert.deepEqual(driftColor(0, max), rampColor(0));
    assert.equal(await p.page.locator('#ramp-max').textContent(), max.toPrecision(3));
    assert.equal(await p.page.locator('#dead-item').isHidden(), true, 'no dead codes in the drift view');
    const summary = (await p.page.locator('#summary').textContent())!;
    assert.match(summary, new RegExp(`moved by training${distances.filter((x) => x > 0).length} of 256 codes`));
    assert.match(summary, /atlastrained/);
    const [x, y] = cellCentre(box, data, most);
    await p.page.mouse.move(box.x + x, box.y + y);
    await p.page.locator('#tooltip').waitFor({ state: 'visible' });
    assert.match((await p.page.locator('#tooltip').textContent())!, new RegExp(`code ${most}(?!\\d).*drift ${max.toPrecision(3)}`));
    await p.screenshot('codebook-drift-dark');
    // and back to usage: the counts' colours again
    await colourBy(p.page, 'usage');
    await p.page.locator('#heatmap[data-colour="usage"]').waitFor();
    const [ux, uy] = cellCentre(box, data, middling);
    const background = themeRgb('dark', 'editor-background');
    const usage = countColor(counts[middling]!, Math.max(...counts), deadCodeColor(background));
    assert.notDeepEqual(usage, driftColor(distances[middling]!, max), 'the two views differ at this code');
    assert.deepEqual(await canvasPixel(p.page, '#heatmap', Math.round(ux), Math.round(uy)), [...usage, 255]);
    assert.equal(p.warnings.filter((w) => !/willReadFrequently/.test(w)).length, 0, p.warnings.join('\n'));
  } finally {
    await p.close();
  }
});

test('training drift between spaces that differ is said, not drawn; a codebook without drift has no toggle', async () => {
  const counts = Array.from({ length: 64 }, (_, i) => i);
  const note = 'The trainable rows have 1152 values and the frozen rows 768: they live in different spaces, so there is no drift to measure.';
  const data: CodebookView = { ...codebookData(counts, counts.map((_, i) => i)), drift: { distances: null, note } };
  const p = await openPanel('codebook', codebookProtocol, 'light', host(data));
  try {
    await p.page.locator('#heatmap[data-drawn="true"]').waitFor();
    await colourBy(p.page, 'drift');
    await p.page.locator('#drift-note').waitFor({ state: 'visible' });
    assert.equal(await p.page.locator('#drift-note').textContent(), note);
    assert.equal(await p.page.locator('#heatmap').isHidden(), true, 'no heatmap drawn for drift across spaces');
    assert.equal(await p.page.locator('#ramp-item').isHidden(), true, 'nor a scale');
    await p.screenshot('codebook-drift-spaces-light');
  } finally {
    await p.close();
  }
  const plain = await openPanel('codebook', codebookProtocol, 'light', host(codebookData(counts, counts.map((_, i) => i))));
  try {
    await plain.page.locator('#heatmap[data-drawn="true"]').waitFor();
    assert.equal(await plain.page.locator('#colour-by').isHidden(), true);
  } finally {
    await plain.close();
  }
});

test('the summary says how many vectors trained the codebook, and warns on screen when they are few per code', async () => {
  const counts = Array.from({ length: 64 }, (_, i) => i + 1);
  const base = codebookData(counts, counts.map((_, i) => i));
  const few = { ...base, summary: { ...base.summary, trainingVectors: 100, trainingWarning: fewVectorsWarning(64, 100)! } };
  const p = await openPanel('codebook', codebookProtocol, 'dark', host(few));
  try {
    await p.page.locator('#heatmap[data-drawn="true"]').waitFor();
    assert.match((await p.page.locator('#summary').textContent())!, /trained on100 vectors \(1\.5 per code\)/);
    assert.match((await p.page.locator('#training-warning').textContent())!, /^K = 64 codes from 100 training vectors, 1\.5 per code \(fewer than 4\)/);
  } finally {
    await p.close();
  }
  // enough vectors: the count, no warning
  const enough = { ...base, summary: { ...base.summary, trainingVectors: 25_600 } };
  const q = await openPanel('codebook', codebookProtocol, 'dark', host(enough));
  try {
    await q.page.locator('#heatmap[data-drawn="true"]').waitFor();
    assert.match((await q.page.locator('#summary').textContent())!, /trained on25,600 vectors \(400 per code\)/);
    assert.equal(await q.page.locator('#training-warning').count(), 0);
  } finally {
    await q.close();
  }
});

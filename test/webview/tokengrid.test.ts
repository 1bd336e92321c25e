// The token-grid panel's bundle in headless Chromium over real data: a codebook the engine built
// from the fixture photos, a real image tokenized with it, reconstructions from the atlas decoder.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { openPanel, closeBrowser, canvasPixel, photoPixels, themeRgb, THEME_NAMES, type TestHost } from './harness.js';
import { realFixture, disposeFixture, type Fixture } from './fixture-codebook.js';
import { reconstructionBounds } from '../../extension/panels/images.js';
import { codeColor } from '../../webview/common/colors.js';
import { tokenGridProtocol, type TokenGridView } from '../../common/protocol/tokengrid.js';

after(async () => {
  await closeBrowser();
  await disposeFixture();
});

function view(f: Fixture): TokenGridView {
  return {
    imageLabel: path.basename(f.grid.image), image: f.photoUri, grid: f.grid.grid, ids: f.grid.ids, distances: f.grid.distances,
    reconstruction: null, codebook: f.cb.fingerprint, restore: { codebook: '/work/codebook.safetensors', image: f.grid.image },
    bounds: reconstructionBounds(f.cb, f.encoder, f.grid.grid),
  };
}

function host(f: Fixture): TestHost<typeof tokenGridProtocol> {
  return {
    init: async () => ({ ...view(f), reconstruction: await f.decode(f.grid.ids) }),
    decode: ({ ids }) => f.decode(ids),
    openInGeneration: () => null,
  };
}

test('grid of a real tokenized image: dimensions, colour per code, hover shows id and distance', async () => {
  const f = await realFixture();
  const p = await openPanel('tokengrid', tokenGridProtocol, 'dark', host(f));
  try {
    const canvas = p.page.locator('#token-grid[data-drawn="true"]');
    await canvas.waitFor();
    const [gh, gw] = f.grid.grid;
    assert.equal(await canvas.getAttribute('data-grid-h'), String(gh));
    assert.equal(await canvas.getAttribute('data-grid-w'), String(gw));
    assert.deepEqual([gh, gw], [14, 21], 'the DCT encoder keeps the 256 x 170 photo\'s shape: 336 x 224, 14 x 21 tokens');
    assert.match((await p.page.locator('#reconstruction').getAttribute('src'))!, /^data:image\/png;base64,/);
    // the PSNR the host measured, and what bounds it
    const psnr = (await f.decode(f.grid.ids)).psnr!;
    assert.equal(await p.page.locator('#reconstruction-caption').textContent(), `Reconstruction · atlas decoder · PSNR ${psnr.toFixed(1)} dB`);
    assert.match((await p.page.locator('#quality-note').textContent())!, /bounded by K = 256 codes \(each 16 × 16 patch becomes one of 256\), by the encoder \(dct:224 sees the photo at 336 × 224\) and by the atlas decoder/);

    // full opacity: each cell is exactly its code's colour
    await p.page.locator('#opacity').fill('1');
    const box = (await canvas.boundingBox())!;
    const cw = box.width / gw;
    const ch = box.height / gh;
    for (const cell of [0, 15, 97, 195, 293]) {
      const x = Math.floor((cell % gw) * cw + cw / 2);
      const y = Math.floor(Math.floor(cell / gw) * ch + ch / 2);
      const id = f.grid.ids[cell]!;
      assert.deepEqual(await canvasPixel(p.page, '#token-grid', x, y), [...codeColor(id), 255], `cell ${cell} (code ${id})`);
      await p.page.mouse.move(box.x + x, box.y + y);
      const tip = (await p.page.locator('#tooltip').textContent())!;
      assert.match(tip, new RegExp(`^code ${id}cell row ${Math.floor(cell / gw)}, col ${cell % gw}`));
      assert.match(tip, new RegExp(`distance² ${f.grid.distances![cell]!.toPrecision(4)}`));
    }
  } finally {
    await p.close();
  }
});

test('the photo keeps its aspect ratio: a 256 x 170 photo and its reconstruction show at 256:170 (the 14 x 21 grid\'s 3:2 as the encoder cropped it), the grid over it', async () => {
  const f = await realFixture();
  for (const width of [1100, 620]) {
    const p = await openPanel('tokengrid', tokenGridProtocol, 'light', host(f), { width, height: 700 });
    try {
      const canvas = p.page.locator('#token-grid[data-drawn="true"]');
      await canvas.waitFor();
      await p.page.locator('#reconstruction[src^="data:"]').waitFor();
      const grid = (await canvas.boundingBox())!;
      const recon = (await p.page.locator('#reconstruction').boundingBox())!;
      for (const [name, box] of [['token grid', grid], ['reconstruction', recon]] as const) {
        assert.ok(Math.abs(box.width / box.height - 256 / 170) < 0.02, `${name} at ${width} px is ${box.width} x ${box.height}, not 256:170`);
      }
      // the photo fills the canvas: its top-left and bottom-right pixels are the photo's, not the background
      // (overlay off, so what is read is the photo itself)
      await p.page.locator('#opacity').fill('0');
      const corners = [await canvasPixel(p.page, '#token-grid', 2, 2), await canvasPixel(p.page, '#token-grid', Math.floor(grid.width) - 3, Math.floor(grid.height) - 3)];
      const photo = await photoPixels(p.page, f.photoUri, [[2 / grid.width, 2 / grid.height], [1 - 3 / grid.width, 1 - 3 / grid.height]]);
      corners.forEach((c, i) => assert.ok(c.slice(0, 3).every((v, j) => Math.abs(v - photo[i]![j]!) < 24), `corner ${i}: canvas ${c} vs photo ${photo[i]}`));
    } finally {
      await p.close();
    }
  }
});

test('paint a cell with another code and decode again through the host', async () => {
  const f = await realFixture();
  const p = await openPanel('tokengrid', tokenGridProtocol, 'light', host(f));
  try {
    const canvas = p.page.locator('#token-grid[data-drawn="true"]');
    await canvas.waitFor();
    const before = await p.page.locator('#reconstruction').getAttribute('src');
    const box = (await canvas.boundingBox())!;
    const [gh, gw] = f.grid.grid;
    const cell = 5 * gw + 6;
    const newCode = (f.grid.ids[cell]! + 1) % f.cb.frozen.rows;
    await p.page.locator('#paint').click();
    await p.page.locator('#paint-code').click();
    await p.page.keyboard.type(String(newCode));
    await p.page.mouse.click(box.x + (6.5 * box.width) / gw, box.y + (5.5 * box.height) / gh);
    assert.equal(await p.page.locator('#edits').textContent(), '1 cell edited');
    await p.page.locator('#decode').click();
    await p.page.waitForFunction((b) => document.querySelector('#reconstruction')!.getAttribute('src') !== b, before);
    const expected = [...f.grid.ids];
    expected[cell] = newCode;
    assert.deepEqual(p.requests('decode'), [{ ids: expected }]);
  } finally {
    await p.close();
  }
});

test('edits kept while the tab was hidden come back with their own reconstruction, not the unedited one', async () => {
  const f = await realFixture();
  const p = await openPanel('tokengrid', tokenGridProtocol, 'dark', host(f));
  try {
    const canvas = p.page.locator('#token-grid[data-drawn="true"]');
    await canvas.waitFor();
    const box = (await canvas.boundingBox())!;
    const [gh, gw] = f.grid.grid;
    const edited = [...f.grid.ids];
    for (const [row, col] of [[2, 3], [7, 10]] as const) {
      const cell = row * gw + col;
      edited[cell] = (f.grid.ids[cell]! + 7) % f.cb.frozen.rows;
      await p.page.locator('#paint').click();
      await p.page.locator('#paint-code').click();
      await p.page.keyboard.press('Control+A');
      await p.page.keyboard.type(String(edited[cell]));
      await p.page.mouse.click(box.x + ((col + 0.5) * box.width) / gw, box.y + ((row + 0.5) * box.height) / gh);
      await p.page.locator('#paint').click();
    }
    assert.equal(await p.page.locator('#edits').textContent(), '2 cells edited');
    await p.reload();
    await p.page.locator('#token-grid[data-drawn="true"]').waitFor();
    assert.equal(await p.page.locator('#edits').textContent(), '2 cells edited');
    // the edited grid was decoded on the way back, and its PSNR is the one shown
    assert.deepEqual(p.requests('decode').at(-1), { ids: edited });
    const psnr = (await f.decode(edited)).psnr!;
    assert.notEqual(psnr.toFixed(1), (await f.decode(f.grid.ids)).psnr!.toFixed(1), 'the two edits change the PSNR shown');
    assert.equal(await p.page.locator('#reconstruction-caption').textContent(), `Reconstruction · atlas decoder · PSNR ${psnr.toFixed(1)} dB`);
  } finally {
    await p.close();
  }
});

test('edits made with another codebook (a rebuilt one) are dropped when the tab comes back', async () => {
  const f = await realFixture();
  let fingerprint = f.cb.fingerprint;
  const p = await openPanel('tokengrid', tokenGridProtocol, 'light', { ...host(f), init: async () => ({ ...view(f), codebook: fingerprint, reconstruction: await f.decode(f.grid.ids) }) });
  try {
    const canvas = p.page.locator('#token-grid[data-drawn="true"]');
    await canvas.waitFor();
    const box = (await canvas.boundingBox())!;
    await p.page.locator('#paint').click();
    await p.page.locator('#paint-code').click();
    await p.page.keyboard.type(String((f.grid.ids[0]! + 1) % f.cb.frozen.rows));
    await p.page.mouse.click(box.x + 2, box.y + 2);
    assert.equal(await p.page.locator('#edits').textContent(), '1 cell edited');
    fingerprint = 'another-codebook';
    await p.reload();
    await p.page.locator('#token-grid[data-drawn="true"]').waitFor();
    assert.equal(await p.page.locator('#edits').textContent(), '');
    assert.deepEqual(p.requests('decode'), []);
  } finally {
    await p.close();
  }
});

test('clicking a cell highlights every cell holding that code', async () => {
  const f = await realFixture();
  const p = await openPanel('tokengrid', tokenGridProtocol, 'dark', host(f));
  try {
    const canvas = p.page.locator('#token-grid[data-drawn="true"]');
    await canvas.waitFor();
    await p.page.locator('#opacity').fill('1');
    const [gh, gw] = f.grid.grid;
    // the most frequent code of the image, so several cells share it
    const freq = new Map<number, number>();
    f.grid.ids.forEach((id) => freq.set(id, (freq.get(id) ?? 0) + 1));
    const [code] = [...freq.entries()].sort((a, b) => b[1] - a[1])[0]!;
    const cell = f.grid.ids.indexOf(code);
    const other = f.grid.ids.findIndex((id) => id !== code);
    const box = (await canvas.boundingBox())!;
    const cw = box.width / gw;
    const ch = box.height / gh;
    const centre = (i: number): [number, number] => [Math.floor((i % gw) * cw + cw / 2), Math.floor(Math.floor(i / gw) * ch + ch / 2)];
    await p.page.mouse.click(box.x + centre(cell)[0], box.y + centre(cell)[1]);
    // the highlighted code stays at full colour, every other code is dimmed over the image
    for (const i of f.grid.ids.map((id, j) => (id === code ? j : -1)).filter((j) => j >= 0)) {
      assert.deepEqual(await canvasPixel(p.page, '#token-grid', ...centre(i)), [...codeColor(code), 255]);
    }
    assert.notDeepEqual(await canvasPixel(p.page, '#token-grid', ...centre(other)), [...codeColor(f.grid.ids[other]!), 255]);
    assert.equal(await p.page.locator('#paint-code').evaluate((e) => (e as unknown as { value: string }).value), String(code));
  } finally {
    await p.close();
  }
});

for (const theme of THEME_NAMES) {
  test(`image, grid and reconstruction drawn in the ${theme} theme, hover tooltip shown (and screenshotted)`, async () => {
    const f = await realFixture();
    const p = await openPanel('tokengrid', tokenGridProtocol, theme, host(f), { width: 1100, height: 680 });
    try {
      const canvas = p.page.locator('#token-grid[data-drawn="true"]');
      await canvas.waitFor();
      await p.page.locator('#reconstruction[src^="data:"]').waitFor();
      await p.page.waitForFunction(() => (document.querySelector('#reconstruction') as HTMLImageElement).complete);
      // the reconstruction decoded to the grid's pixel size (14 x 16 px per side)
      const size = await p.page.locator('#reconstruction').evaluate((i) => [(i as HTMLImageElement).naturalWidth, (i as HTMLImageElement).naturalHeight]);
      assert.deepEqual(size, [f.grid.grid[1] * f.encoder.patch, f.grid.grid[0] * f.encoder.patch]);
      const box = (await canvas.boundingBox())!;
      const [gh, gw] = f.grid.grid;
      const [col, row] = [Math.floor(0.42 * gw), Math.floor(0.36 * gh)];
      await p.page.mouse.move(box.x + (col + 0.5) * (box.width / gw), box.y + (row + 0.5) * (box.height / gh));
      const tip = p.page.locator('#tooltip');
      await tip.waitFor({ state: 'visible' });
      assert.match((await tip.textContent())!, new RegExp(`^code ${f.grid.ids[row * gw + col]}cell row ${row}, col ${col}`));
      assert.equal(await p.page.evaluate(() => getComputedStyle(document.body).color), `rgb(${themeRgb(theme, 'foreground').join(', ')})`);
      await p.screenshot(`tokengrid-${theme}`);
      assert.equal(p.warnings.length, 0, p.warnings.join('\n'));
    } finally {
      await p.close();
    }
  });
}

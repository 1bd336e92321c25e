// The token-grid panel's bundle in headless Chromium over real data: a codebook the engine built
// from the fixture photos, a real image tokenized with it, reconstructions from the atlas decoder.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { openPanel, closeBrowser, canvasPixel, THEME_NAMES, type TestHost } from './harness.js';
import { realFixture, disposeFixture, type Fixture } from './fixture-codebook.js';
import { codeColor } from '../../webview/common/colors.js';
import { tokenGridProtocol, type TokenGridView } from '../../common/protocol/tokengrid.js';

after(async () => {
  await closeBrowser();
  await disposeFixture();
});

function host(f: Fixture): TestHost<typeof tokenGridProtocol> {
  const data: TokenGridView = {
    imageLabel: path.basename(f.grid.image), image: f.imageUri, grid: f.grid.grid, ids: f.grid.ids, distances: f.grid.distances,
    reconstruction: '', k: f.cb.frozen.rows, codebook: f.cb.fingerprint, restore: { codebook: '/work/codebook.safetensors', image: f.grid.image },
  };
  return {
    init: async () => ({ ...data, reconstruction: await f.decode(f.grid.ids) }),
    decode: async ({ ids }) => ({ reconstruction: await f.decode(ids) }),
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
    assert.equal(gh * gw, 196, 'the DCT encoder at 224 px gives 14 x 14 tokens');
    assert.match((await p.page.locator('#reconstruction').getAttribute('src'))!, /^data:image\/png;base64,/);

    // full opacity: each cell is exactly its code's colour
    await p.page.locator('#opacity').fill('1');
    const box = (await canvas.boundingBox())!;
    const cw = box.width / gw;
    const ch = box.height / gh;
    for (const cell of [0, 15, 97, 195]) {
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
  test(`screenshot, ${theme} theme`, async () => {
    const f = await realFixture();
    const p = await openPanel('tokengrid', tokenGridProtocol, theme, host(f), { width: 1100, height: 680 });
    try {
      const canvas = p.page.locator('#token-grid[data-drawn="true"]');
      await canvas.waitFor();
      await p.page.locator('#reconstruction[src^="data:"]').waitFor();
      await p.page.waitForFunction(() => (document.querySelector('#reconstruction') as HTMLImageElement).complete);
      const box = (await canvas.boundingBox())!;
      await p.page.mouse.move(box.x + box.width * 0.42, box.y + box.height * 0.36);
      await p.screenshot(`tokengrid-${theme}`);
      assert.equal(p.warnings.length, 0, p.warnings.join('\n'));
    } finally {
      await p.close();
    }
  });
}

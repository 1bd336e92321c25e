// The token set editor's bundle in headless Chromium over a real token data set: the fixture
// photos tokenized with the engine's codebook, written as a .npy data set and read back, served
// by the same functions the extension's editor uses (extension/panels/tokenSet.ts).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { openPanel, closeBrowser, canvasPixel, THEME_NAMES, type TestHost } from './harness.js';
import { realFixture, disposeFixture, fixtureImages } from './fixture-codebook.js';
import { readTokenGrids, writeTokenDataset, writeTokenJson, type TokenGrid } from '../../extension/engine/index.js';
import { tokenSetGrid, tokenSetView } from '../../extension/panels/token-set.js';
import { tokenSetProtocol } from '../../common/protocol/tokens.js';
import { codeColor } from '../../webview/common/colors.js';

const scratch = mkdtempSync(path.join(tmpdir(), 'unicode2-tokens-'));
after(async () => {
  await closeBrowser();
  await disposeFixture();
  rmSync(scratch, { recursive: true, force: true });
});

/** The editor's host for a tokens file, as token-set-editor.ts wires it. */
async function editorHost(file: string, k: number | null): Promise<{ grids: TokenGrid[]; host: TestHost<typeof tokenSetProtocol> }> {
  const grids = await readTokenGrids(file);
  return {
    grids,
    host: {
      init: () => tokenSetView(file, grids, k === null ? null : { file: '/work/.unicode2/codebook.safetensors', k }),
      grid: ({ index }) => tokenSetGrid(file, grids, index, []),
    },
  };
}

async function dataset(): Promise<string> {
  const f = await realFixture();
  const file = path.join(scratch, 'images.tokens.npy');
  await writeTokenDataset(file, f.grids);
  return file;
}

test('a .npy data set: every image listed, the selected grid over its photo at the photo\'s aspect, the set\'s usage', async () => {
  const f = await realFixture();
  const { grids, host } = await editorHost(await dataset(), f.cb.frozen.rows);
  const p = await openPanel('tokens', tokenSetProtocol, 'dark', host, { width: 1200, height: 760 });
  try {
    await p.page.locator('#set-grid[data-drawn="true"]').waitFor();
    assert.deepEqual(await p.page.locator('.image-item').allTextContents(), grids.map((g) => path.basename(g.image)));
    assert.equal(await p.page.locator('#set-grid').getAttribute('data-index'), '0');

    // chelsea.png is 256 x 170: its grid is shown at that aspect, the first image (square) at 1:1
    const chelsea = grids.findIndex((g) => g.image.endsWith('chelsea.png'));
    const aspect = async (): Promise<number> => {
      const box = (await p.page.locator('#set-grid').boundingBox())!;
      return box.width / box.height;
    };
    assert.ok(Math.abs((await aspect()) - 1) < 0.02, `astronaut (256 x 256) shows at ${await aspect()}`);
    await p.page.locator(`.image-item[data-index="${chelsea}"]`).click();
    await p.page.locator(`#set-grid[data-index="${chelsea}"]`).waitFor();
    assert.ok(Math.abs((await aspect()) - 256 / 170) < 0.02, `chelsea shows at ${await aspect()}`);
    assert.deepEqual(p.requests('grid'), [{ index: 0 }, { index: chelsea }]);
    // hover names the code of the cell under the pointer
    const box = (await p.page.locator('#set-grid').boundingBox())!;
    const [gh, gw] = grids[chelsea]!.grid;
    await p.page.mouse.move(box.x + (3.5 * box.width) / gw, box.y + (2.5 * box.height) / gh);
    assert.match((await p.page.locator('#tooltip').textContent())!, new RegExp(`^code ${grids[chelsea]!.ids[2 * gw + 3]}cell row 2, col 3$`));

    // usage over the whole set, counted here independently
    const counts = new Map<number, number>();
    for (const g of grids) for (const id of g.ids) counts.set(id, (counts.get(id) ?? 0) + 1);
    const ranked = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    const usage = await p.page.locator('#usage dl').textContent();
    assert.match(usage!, new RegExp(`tokens${grids.reduce((n, g) => n + g.ids.length, 0).toLocaleString('en-US')}`));
    assert.match(usage!, new RegExp(`codes used${counts.size} of 256 \\(${((counts.size / 256) * 100).toFixed(1)}%\\)`));
    assert.match(usage!, new RegExp(`dead codes${256 - counts.size}`));
    const top = await p.page.locator('#top-codes .code-link').evaluateAll((els) => els.map((e) => Number((e as HTMLElement).dataset.code)));
    assert.deepEqual(top, ranked.slice(0, 12).map(([code]) => code));
    assert.equal(await p.page.locator('.image-item[aria-current]').getAttribute('data-index'), String(chelsea));
  } finally {
    await p.close();
  }
});

test('clicking a top code outlines its cells and dims the others; arrow keys walk the list', async () => {
  const f = await realFixture();
  const { grids, host } = await editorHost(await dataset(), f.cb.frozen.rows);
  const p = await openPanel('tokens', tokenSetProtocol, 'light', host, { width: 1200, height: 760 });
  try {
    await p.page.locator('#set-grid[data-drawn="true"]').waitFor();
    const g = grids[0]!;
    const [gh, gw] = g.grid;
    const box = (await p.page.locator('#set-grid').boundingBox())!;
    const centre = (i: number): [number, number] => [Math.floor(((i % gw) + 0.5) * (box.width / gw)), Math.floor((Math.floor(i / gw) + 0.5) * (box.height / gh))];
    // the most used code of the set that this image holds, and a cell of another code
    const code = Number(await p.page.locator('#top-codes .code-link').first().getAttribute('data-code'));
    const cell = g.ids.indexOf(code);
    const other = g.ids.findIndex((id) => id !== code);
    assert.ok(cell >= 0, 'the first image holds the most used code');
    const otherBefore = await canvasPixel(p.page, '#set-grid', ...centre(other));
    await p.page.locator('#top-codes .code-link').first().click();
    assert.equal(await p.page.locator('#top-codes .code-link').first().getAttribute('aria-pressed'), 'true');
    // the highlighted cell is painted at least 60% its code's colour; the other is dimmed, so it moved away from its colour
    const distance = (a: number[], b: readonly number[]): number => Math.hypot(a[0]! - b[0]!, a[1]! - b[1]!, a[2]! - b[2]!);
    const lit = await canvasPixel(p.page, '#set-grid', ...centre(cell));
    assert.ok(distance(lit, codeColor(code)) < 0.45 * 255, `highlighted cell ${lit} is near ${codeColor(code)}`);
    const otherAfter = await canvasPixel(p.page, '#set-grid', ...centre(other));
    assert.ok(distance(otherAfter, codeColor(g.ids[other]!)) > distance(otherBefore, codeColor(g.ids[other]!)), 'the other cell is dimmed');

    await p.page.locator('#images').focus();
    await p.page.keyboard.press('ArrowDown');
    await p.page.locator('#set-grid[data-index="1"]').waitFor();
    await p.page.keyboard.press('ArrowUp');
    await p.page.locator('#set-grid[data-index="0"]').waitFor();
  } finally {
    await p.close();
  }
});

test('a tokens .json whose photo is gone: the grid alone with square cells, and why; K unknown is said so', async () => {
  const f = await realFixture();
  const file = path.join(scratch, 'moved.tokens.json');
  const gone = { ...f.grid, image: path.join(scratch, 'moved-away', 'chelsea.png') };
  await writeTokenJson(file, [gone, { ...f.grids[1]!, image: path.relative(scratch, f.grids[1]!.image) }]);
  const { host } = await editorHost(file, null);
  const p = await openPanel('tokens', tokenSetProtocol, 'dark', host, { width: 1200, height: 760 });
  try {
    await p.page.locator('#set-grid[data-drawn="true"]').waitFor();
    assert.match((await p.page.locator('#grid-caption .warning').textContent())!, /^Grid alone: .*moved-away\/chelsea\.png is not there any more$/);
    const box = (await p.page.locator('#set-grid').boundingBox())!;
    const [gh, gw] = gone.grid;
    assert.ok(Math.abs(box.width / gw / (box.height / gh) - 1) < 0.02, `${gh} x ${gw} square cells without a photo`);
    assert.match((await p.page.locator('#usage').textContent())!, /K is unknown/);
    // the second grid names its photo relative to the tokens file: found there
    await p.page.locator('.image-item[data-index="1"]').click();
    await p.page.locator('#set-grid[data-index="1"]').waitFor();
    assert.equal(await p.page.locator('#grid-caption .warning').count(), 0);
    assert.ok(path.relative(scratch, fixtureImages).startsWith('..'), 'the relative path really climbs out of the tokens folder');
  } finally {
    await p.close();
  }
});

test('in an editor split in two (720 px): the whole title, the usage below a picture that keeps most of the width', async () => {
  const f = await realFixture();
  const { host } = await editorHost(await dataset(), f.cb.frozen.rows);
  const p = await openPanel('tokens', tokenSetProtocol, 'light', host, { width: 720, height: 900 });
  try {
    await p.page.locator('#set-grid[data-drawn="true"]').waitFor();
    const title = await p.page.locator('#title').evaluate((e) => e.scrollWidth > e.clientWidth + 1);
    assert.equal(title, false, 'the title is cut');
    const grid = (await p.page.locator('#set-grid').boundingBox())!;
    const usage = (await p.page.locator('#usage').boundingBox())!;
    assert.ok(grid.width > 400, `the picture is ${grid.width} px wide`);
    assert.ok(usage.y >= grid.y + grid.height, 'the usage sits below the picture');
  } finally {
    await p.close();
  }
});

for (const theme of THEME_NAMES) {
  test(`screenshot, ${theme} theme`, async () => {
    const f = await realFixture();
    const { grids, host } = await editorHost(await dataset(), f.cb.frozen.rows);
    const p = await openPanel('tokens', tokenSetProtocol, theme, host, { width: 1200, height: 680 });
    try {
      await p.page.locator('#set-grid[data-drawn="true"]').waitFor();
      const chelsea = grids.findIndex((g) => g.image.endsWith('chelsea.png'));
      await p.page.locator(`.image-item[data-index="${chelsea}"]`).click();
      await p.page.locator(`#set-grid[data-index="${chelsea}"]`).waitFor();
      // outline a much-used code this photo holds
      const codes = await p.page.locator('#top-codes .code-link').evaluateAll((els) => els.map((e) => Number((e as HTMLElement).dataset.code)));
      await p.page.locator(`#top-codes .code-link[data-code="${codes.find((c) => grids[chelsea]!.ids.includes(c))}"]`).click();
      await p.screenshot(`tokens-${theme}`);
      assert.equal(p.warnings.length, 0, p.warnings.join('\n'));
    } finally {
      await p.close();
    }
  });
}

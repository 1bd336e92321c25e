// The notebook renderer's ES module in Chromium, given real token JSON as `unicode2 tokenize`
// writes it, with the photo embedded the way the README's Python snippet does (the file's bytes,
// base64, in `preview`), or without it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { openRenderer, closeBrowser, canvasPixel, photoPixels, THEME_NAMES } from './harness.js';
import { realFixture, disposeFixture } from './fixture-codebook.js';
import { writeTokenJson } from '../../extension/engine/index.js';
import { codeColor } from '../../webview/common/colors.js';

const scratch = mkdtempSync(path.join(tmpdir(), 'unicode2-renderer-'));
after(async () => {
  await closeBrowser();
  await disposeFixture();
  rmSync(scratch, { recursive: true, force: true });
});

/** chelsea.png's tokens as the CLI writes them, parsed as the notebook's JSON output would be. */
async function tokenJson(): Promise<Record<string, unknown> & { grid: [number, number]; ids: number[] }> {
  const f = await realFixture();
  const file = path.join(scratch, 'chelsea.tokens.json');
  await writeTokenJson(file, [f.grid]);
  return JSON.parse(readFileSync(file, 'utf8'));
}

const previewOf = (file: string): string => `data:image/png;base64,${readFileSync(file).toString('base64')}`;

test('token JSON with its photo: the grid over the photo at the photo\'s aspect, hover names the code', async () => {
  const f = await realFixture();
  const doc = { ...(await tokenJson()), preview: previewOf(f.grid.image) };
  const r = await openRenderer('dark');
  try {
    await r.render('out-1', doc);
    const canvas = r.page.locator('#output-out-1 canvas[data-drawn="true"]');
    await canvas.waitFor();
    const box = (await canvas.boundingBox())!;
    assert.ok(Math.abs(box.width / box.height - 256 / 170) < 0.02, `drawn at ${box.width} x ${box.height}`);
    // each cell is its code's colour at 45% over the photo's pixel there
    const [gh, gw] = doc.grid;
    for (const cell of [0, 31, 100, gh * gw - 1]) {
      const fx = ((cell % gw) + 0.5) / gw;
      const fy = (Math.floor(cell / gw) + 0.5) / gh;
      const [under] = await photoPixels(r.page, doc.preview, [[fx, fy]]);
      const code = codeColor(doc.ids[cell]!);
      const want = [0, 1, 2].map((c) => 0.45 * code[c]! + 0.55 * under![c]!);
      const got = await canvasPixel(r.page, '#output-out-1 canvas', Math.floor(fx * box.width), Math.floor(fy * box.height));
      assert.ok(want.every((w, c) => Math.abs(w - got[c]!) < 12), `cell ${cell}: drew ${got}, expected about ${want.map(Math.round)}`);
    }
    await r.page.mouse.move(box.x + (4.5 * box.width) / gw, box.y + (6.5 * box.height) / gh);
    assert.equal(await r.page.locator('#output-out-1 figure > div').textContent(), `code ${doc.ids[6 * gw + 4]} · cell row 6, col 4`);
    // (Chromium's hint about this test's own repeated getImageData calls is not the renderer's)
    assert.deepEqual(r.warnings.filter((w) => !/willReadFrequently/.test(w)), []);
  } finally {
    await r.close();
  }
});

test('without a photo the grid is drawn alone with square cells; {results} shows every grid; bad JSON gets one line', async () => {
  const f = await realFixture();
  const one = await tokenJson();
  const r = await openRenderer('light');
  try {
    await r.render('alone', one);
    const canvas = r.page.locator('#output-alone canvas[data-drawn="true"]');
    await canvas.waitFor();
    const box = (await canvas.boundingBox())!;
    const [gh, gw] = one.grid;
    assert.deepEqual([gh, gw], [14, 21]); // chelsea keeps its shape
    assert.ok(Math.abs(box.width / gw / (box.height / gh) - 1) < 0.02, 'square cells');
    assert.deepEqual(await canvasPixel(r.page, '#output-alone canvas', Math.floor((2.5 * box.width) / gw), Math.floor((0.5 * box.height) / gh)), [...codeColor(one.ids[2]!), 255]);
    assert.match((await r.page.locator('#output-alone figure > div').textContent())!, /^chelsea\.png · 14 × 21 tokens · \d+ distinct codes · codebook [0-9a-f]{16} · grid alone \(no preview image\)$/);

    await r.render('several', { results: f.grids.slice(0, 3).map((g) => ({ ...g, preview: previewOf(g.image) })) });
    await r.page.locator('#output-several figure:nth-of-type(3) canvas[data-drawn="true"]').waitFor();
    assert.equal(await r.page.locator('#output-several canvas').count(), 3);

    await r.render('bad', { ...one, ids: one.ids.slice(1) });
    assert.match((await r.page.locator('#output-bad').textContent())!, /^UniCode² tokens could not be shown: tokens: Invalid length: grid \[14,21\] needs rows x cols ids$/);
    await r.render('junk', { grid: [2, 2], ids: [0, 1, 2, 'x'] });
    assert.match((await r.page.locator('#output-junk').textContent())!, /tokens could not be shown: tokens(\.ids)?: /);
    assert.deepEqual(r.warnings, []);
  } finally {
    await r.close();
  }
});

for (const theme of THEME_NAMES) {
  test(`screenshot, ${theme} theme`, async () => {
    const f = await realFixture();
    const r = await openRenderer(theme, { width: 760, height: 420 });
    try {
      await r.render('shot', { results: [f.grid, f.grids[0]!].map((g) => ({ ...g, preview: previewOf(g.image) })) });
      await r.page.locator('#output-shot figure:nth-of-type(2) canvas[data-drawn="true"]').waitFor();
      await r.screenshot(`renderer-${theme}`);
      assert.deepEqual(r.warnings, []);
    } finally {
      await r.close();
    }
  });
}

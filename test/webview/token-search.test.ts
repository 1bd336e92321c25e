// The token set editor's search by words, in headless Chromium: a token data set that keeps its
// images' pooled embeddings (red, green and blue photos through a tiny SigLIP-shaped model whose
// pooled output and text tower share the colour axes, test/helpers/text-model.ts), served by the
// same searcher the extension's editor uses (extension/panels/token-set-search.ts) with the real
// text tower: the ranking is known by construction.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { openPanel, closeBrowser, type TestHost } from './harness.js';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import { openTextEncoder, readTokenGrids, writeTokenDataset, type TokenGrid } from '../../extension/engine/index.js';
import { tokenSetGrid, tokenSetView } from '../../extension/panels/token-set.js';
import { TokenSetSearcher } from '../../extension/panels/token-set-search.js';
import { tokenSetProtocol } from '../../common/protocol/tokens.js';
import { BLUE, D, GREEN, RED, siglipFolder, solid } from '../helpers/text-model.js';

const scratch = mkdtempSync(path.join(tmpdir(), 'unicode2-token-search-'));
after(async () => {
  await closeBrowser();
  rmSync(scratch, { recursive: true, force: true });
});

/** Three solid photos with the pooled embeddings the model gives them (4 x the normalized colour
 *  on each channel's DC axis) and grids of their own codes. */
async function colourSet(model: string, pooled: boolean): Promise<string> {
  const dir = path.join(scratch, pooled ? 'pooled' : 'plain');
  mkdirSync(dir, { recursive: true });
  const colours: [string, [number, number, number], number][] = [['red', [255, 0, 0], RED], ['green', [0, 255, 0], GREEN], ['blue', [0, 0, 255], BLUE]];
  const grids: TokenGrid[] = [];
  const embeddings = new Float32Array(colours.length * D);
  for (const [i, [name, rgb, axis]] of colours.entries()) {
    const image = await solid(path.join(dir, `${name}.png`), rgb);
    // code 7 in every image; each colour's own code i on the rest of its 4 x 4 grid
    grids.push({ image, grid: [4, 4], ids: Array.from({ length: 16 }, (_, c) => (c === 0 ? 7 : i)), codebook: 'fp', encoder: model, device: 'cpu' });
    for (const a of [RED, GREEN, BLUE]) embeddings[i * D + a] = a === axis ? 4 : -4;
  }
  const file = path.join(dir, 'colours.tokens.npy');
  await writeTokenDataset(file, grids, pooled ? { pooled: { embeddings: { rows: 3, cols: D, data: embeddings }, output: 'pooler_output', precision: 'fp32' } } : {});
  return file;
}

async function editorHost(file: string, searcher: TokenSetSearcher): Promise<TestHost<typeof tokenSetProtocol>> {
  const grids = await readTokenGrids(file);
  return {
    init: async () => ({ ...tokenSetView(file, grids, null), ...(await searcher.view()) }),
    grid: ({ index }) => tokenSetGrid(file, grids, index, []),
    searchText: ({ query }) => searcher.search(query, grids, (index) => tokenSetGrid(file, grids, index, [])),
  };
}

test('search by words: the images ranked by the model\'s image-text cosine, each with its grid, the codes they share; a click selects', async () => {
  const model = await siglipFolder(path.join(scratch, 'model'));
  const backend = await createCpuBackend();
  const file = await colourSet(model, true);
  const searcher = new TokenSetSearcher(file, (encoder, precision) => openTextEncoder(encoder, backend, { precision }));
  const p = await openPanel('tokens', tokenSetProtocol, 'dark', await editorHost(file, searcher), { width: 1200, height: 800 });
  try {
    await p.page.locator('#set-grid[data-drawn="true"]').waitFor();
    assert.equal(await p.page.locator('#text-search').isVisible(), true);
    assert.match((await p.page.locator('#search-note').textContent())!, /pooler_output \(d = 48\).*does not measure them/);
    await p.page.locator('#search-query').fill('a blue kite');
    await p.page.locator('#search-go').click();
    await p.page.locator('.search-hit').first().waitFor();
    const hits = await p.page.locator('.search-hit').evaluateAll((els) => els.map((e) => [Number((e as HTMLElement).dataset.index), Number((e as HTMLElement).dataset.score)]));
    // blue first; red and green alike below it (cosine of (-1,-1,1)+kite with (1,-1,-1): -1/(2*sqrt3))
    assert.deepEqual(hits.map(([i]) => i), [2, 0, 1]);
    assert.ok(hits[0]![1]! > 0.8 && Math.abs(hits[1]![1]! - hits[2]![1]!) < 1e-4, JSON.stringify(hits));
    assert.match((await p.page.locator('.search-hit').first().textContent())!, /^1\. blue\.png cos 0\.866$/);
    assert.deepEqual(p.requests('searchText'), [{ query: 'a blue kite' }]);
    // every image holds code 7 once; each its own colour code on 15 cells
    const shared = await p.page.locator('#shared-codes li').allTextContents();
    assert.equal(shared[0], 'code 7 in 3 of 3 images · 3 tokens');
    assert.equal(shared.length, 4);
    await p.screenshot('tokens-search-dark');
    await p.page.locator('.search-hit').first().click();
    await p.page.locator('#set-grid[data-index="2"]').waitFor();
    assert.equal(await p.page.locator('.image-item[aria-current]').getAttribute('data-index'), '2');
  } finally {
    await p.close();
    await searcher.dispose();
    await backend.dispose();
  }
});

test('a set without pooled embeddings shows no search box', async () => {
  const file = await colourSet(path.join(scratch, 'model'), false);
  const searcher = new TokenSetSearcher(file, () => Promise.reject(new Error('not opened')));
  const p = await openPanel('tokens', tokenSetProtocol, 'light', await editorHost(file, searcher));
  try {
    await p.page.locator('#set-grid[data-drawn="true"]').waitFor();
    assert.equal(await p.page.locator('#text-search').isVisible(), false);
  } finally {
    await p.close();
  }
});

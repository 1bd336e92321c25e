// The generation panel's bundle in headless Chromium: sources from the host, Generate posts the
// chosen source and output size, the real atlas-decoded image lands in #results, Save asks the host.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { openPanel, closeBrowser, THEME_NAMES, type TestHost } from './harness.js';
import { generationProtocol } from '../../common/protocol/generation.js';
import { realFixture, disposeFixture, type Fixture } from './fixture-codebook.js';
import { decodeTokens } from '../../extension/engine/index.js';
import { pngDataUri } from '../../extension/panels/images.js';
import { upscale } from '../../extension/panels/images.js';

after(async () => {
  await closeBrowser();
  await disposeFixture();
});

function host(f: Fixture): TestHost<typeof generationProtocol> {
  const label = path.basename(f.grid.image);
  const sources = [
    { id: 'edited', label: `Edited grid · ${label}`, grid: f.grid.grid },
    { id: 'tokens:1#0', label, grid: f.grid.grid },
  ];
  return {
    init: () => ({ sources, codebook: 'codebook.safetensors', results: [] }),
    generate: async (params) => {
      const img = upscale(await decodeTokens(f.cb, Int32Array.from(f.grid.ids), f.grid.grid, f.backend), params.upscale);
      const source = sources.find((s) => s.id === params.source)!;
      return { id: 'result-1', label: source.label, image: await pngDataUri(img), width: img.width, height: img.height };
    },
    savePng: () => '/work/chelsea-generated.png',
  };
}

for (const theme of THEME_NAMES) {
  test(`generate from a token source at 2x and save (${theme})`, async () => {
    const f = await realFixture();
    const p = await openPanel('generation', generationProtocol, theme, host(f), { width: 1000, height: 760 });
    try {
      await p.page.locator('vscode-option').first().waitFor({ state: 'attached' });
      assert.equal(await p.page.locator('#source vscode-option').count(), 2);
      await p.page.locator('#generate').click();
      const img = p.page.locator('#results figure img');
      await img.waitFor();
      assert.deepEqual(p.requests('generate'), [{ source: 'edited', upscale: 2 }]);
      const [gh, gw] = f.grid.grid;
      const patch = f.encoder.patch;
      assert.equal(await img.getAttribute('width'), String(gw * patch * 2));
      assert.equal(await img.getAttribute('height'), String(gh * patch * 2));
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

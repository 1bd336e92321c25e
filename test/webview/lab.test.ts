// The Lab view's bundle in headless Chromium: cells render with their kind and status hooks,
// inputs, metrics and outputs; buttons send the right requests; host pushes update the list.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { openPanel, closeBrowser, themeRgb, until, THEME_NAMES } from './harness.js';
import { realFixture, disposeFixture } from './fixture-codebook.js';
import { thumbnailUri } from '../../extension/panels/images.js';
import { labProtocol, type LabCell } from '../../common/protocol/lab.js';
import * as path from 'node:path';

after(async () => {
  await closeBrowser();
  await disposeFixture();
});

async function cells(): Promise<LabCell[]> {
  const f = await realFixture();
  const thumb = (await thumbnailUri(f.grid.image)).uri;
  const t0 = Date.parse('2026-01-15T10:00:00Z');
  const at = (min: number): string => new Date(t0 + min * 60_000).toISOString();
  // paths as a workspace shows them (these screenshots become the walkthrough's: no test machine's paths)
  const ws = '/home/ana/research';
  const codebook = `${ws}/.unicode2/codebooks/k256-dct.safetensors`;
  return [
    {
      id: 'c4', kind: 'tokenize', status: 'running', title: 'Tokenize folder images', startedAt: at(9),
      inputs: { folder: `${ws}/photos`, codebook }, params: {},
      progress: { done: 7, total: 12, message: 'image 7 of 12' },
    },
    {
      id: 'c3', kind: 'tokenize', status: 'done', title: `Tokenize ${path.basename(f.grid.image)}`, startedAt: at(6), finishedAt: at(6),
      inputs: { image: `${ws}/photos/${path.basename(f.grid.image)}`, codebook }, params: {}, metrics: { grid: `${f.grid.grid[0]}×${f.grid.grid[1]}`, 'distinct codes': new Set(f.grid.ids).size },
      thumbnails: [thumb], tokenPreview: { grid: f.grid.grid, ids: f.grid.ids }, files: [`${ws}/.unicode2/tokens/chelsea.k256-dct.tokens.json`],
    },
    {
      id: 'c2', kind: 'build', status: 'cancelled', title: 'Build codebook k16384-dct (K = 16384) from photos', startedAt: at(3), finishedAt: at(4),
      inputs: { folder: `${ws}/photos`, output: `${ws}/.unicode2/codebooks/k16384-dct.safetensors` }, params: { k: 16384, lambda: 0.1, iterations: 20, seed: 0, encoder: 'dct' },
      error: 'UniCode²: build cancelled — previous codebook kept',
    },
    {
      // what Build Codebook records: the settings, and figures that repeat two of them (K; iterations, here stopped early)
      id: 'c1', kind: 'build', status: 'done', title: 'Build codebook k256-dct (K = 256) from photos', startedAt: at(0), finishedAt: at(1),
      inputs: { folder: `${ws}/photos`, output: codebook }, params: { k: 256, lambda: 0.1, iterations: 20, tolerance: 0.0001, seed: 0, encoder: 'dct' },
      metrics: { K: 256, d: 768, iterations: 12, utilization: '100.0%', perplexity: 231, dead: 0, seconds: '1.4', device: 'cpu (onnxruntime)' },
      thumbnails: [thumb, thumb], files: [codebook],
    },
    {
      // a folder run deep in a workspace: its two outputs differ only in the file name's end
      id: 'c5', kind: 'tokenize', status: 'done', title: 'Tokenize folder holiday-photos-2025-summer', startedAt: at(10), finishedAt: at(11),
      inputs: { folder: '/home/researcher/projects/unicode2-experiments/data/holiday-photos-2025-summer', codebook: '/home/researcher/projects/unicode2-experiments/.unicode2/codebooks/k256-dct.safetensors' },
      params: {}, metrics: { images: 12, skipped: 0, tokens: 2352, utilization: '61.2%', perplexity: 118 },
      thumbnails: [thumb], tokenPreview: { grid: f.grid.grid, ids: f.grid.ids },
      files: [
        '/home/researcher/projects/unicode2-experiments/.unicode2/tokens/holiday-photos-2025-summer.tokens.json',
        '/home/researcher/projects/unicode2-experiments/.unicode2/tokens/holiday-photos-2025-summer.tokens.npy',
      ],
    },
    {
      id: 'c0', kind: 'decode', status: 'failed', title: 'Decode grid.tokens.json', startedAt: at(0),
      inputs: { tokens: `${ws}/grid.tokens.json`, codebook }, params: { decoder: 'atlas' }, error: 'token id 70000 at position 3 is outside the codebook (ids run from 0 to 255)',
    },
  ];
}

test('at the sidebar\'s default width (300 px): whole titles, file names never cut, each setting once, thumbnails at their aspect', async () => {
  const list = await cells();
  const p = await openPanel('lab', labProtocol, 'dark', { init: () => list }, { width: 300, height: 1400 });
  try {
    await p.page.locator('.lab-cell').first().waitFor();
    await p.page.waitForFunction(() => [...document.images].every((i) => i.complete));
    const layout = await p.page.locator('.lab-cell').evaluateAll((cells) =>
      // (no named helpers in here: the page would need the test bundler's __name)
      cells.map((c) => {
        const right = c.getBoundingClientRect().right;
        const title = c.querySelector('.title')!;
        return {
          id: (c as HTMLElement).dataset.id!,
          title: title.textContent!,
          titleCut: title.scrollWidth > title.clientWidth + 1,
          // a file name is cut when its box overflows, or when it sticks out of the cell
          namesCut: [...c.querySelectorAll('.path .base')]
            .filter((b) => b.scrollWidth > b.clientWidth + 1 || b.getBoundingClientRect().right > right + 0.5)
            .map((b) => b.textContent),
          visibleFiles: [...c.querySelectorAll('.file .path')].map((f) => f.querySelector('.base')!.textContent),
          labels: [...c.querySelectorAll('dt')].map((d) => d.textContent!.toLowerCase()),
          thumbs: [...c.querySelectorAll('img.thumb')].map((i) => {
            const r = i.getBoundingClientRect();
            return { shown: r.width / r.height, natural: (i as HTMLImageElement).naturalWidth / (i as HTMLImageElement).naturalHeight };
          }),
        };
      }),
    );
    for (const cell of layout) {
      assert.equal(cell.titleCut, false, `title of ${cell.id} is cut: ${cell.title}`);
      assert.deepEqual(cell.namesCut, [], `file names cut in ${cell.id}: ${cell.namesCut.join(", ")}`);
      assert.equal(new Set(cell.labels).size, cell.labels.length, `a setting shown twice in ${cell.id}: ${cell.labels}`);
      for (const t of cell.thumbs) assert.ok(Math.abs(t.shown - t.natural) < 0.03, `thumbnail of ${cell.id} shown at ${t.shown}, photo is ${t.natural}`);
    }
    const folderRun = layout.find((c) => c.id === 'c5')!;
    assert.deepEqual(folderRun.visibleFiles, ['holiday-photos-2025-summer.tokens.json', 'holiday-photos-2025-summer.tokens.npy']);
    assert.ok(layout.find((c) => c.id === 'c3')!.thumbs.length === 1, 'chelsea.png (256 x 170) has its thumbnail');
    // the full path is one hover away
    assert.equal(await p.page.locator('.lab-cell[data-id="c5"] .file .path').first().getAttribute('title'), '/home/researcher/projects/unicode2-experiments/.unicode2/tokens/holiday-photos-2025-summer.tokens.json');
    // the build stopped early: its iteration count says what was set
    const build = p.page.locator('.lab-cell[data-id="c1"]');
    assert.equal(await build.locator('dl.metrics dt:text-is("iterations") + dd').textContent(), '12 (set 20)');
    assert.equal(await build.locator('dl.metrics dt:text-is("K") + dd').textContent(), '256');
    assert.deepEqual(await build.locator('dl.params dt').allTextContents(), ['lambda', 'tolerance', 'seed', 'encoder']);
    await p.screenshot('lab-300px-dark');
  } finally {
    await p.close();
  }
});

test('cells carry kind and status hooks; actions post requests naming the cell', async () => {
  const list = await cells();
  const ok = () => null;
  const p = await openPanel('lab', labProtocol, 'dark', { init: () => list, run: ok, rerun: ok, open: ok, cancel: ok, remove: ok }, { width: 360, height: 900 });
  try {
    await p.page.locator('.lab-cell').first().waitFor();
    const hooks = await p.page.locator('.lab-cell').evaluateAll((els) => els.map((e) => `${(e as HTMLElement).dataset.kind}/${(e as HTMLElement).dataset.status}`));
    assert.deepEqual(hooks, list.map((c) => `${c.kind}/${c.status}`));
    // a running cell offers Cancel only; a finished one re-run, open and remove
    assert.deepEqual(await p.page.locator('.lab-cell[data-id="c4"] [data-action]').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.action)), ['cancel']);
    await p.page.locator('.lab-cell[data-id="c1"] [data-action="rerun"]').click();
    await p.page.locator('.lab-cell[data-id="c3"] [data-action="open"]').click();
    await p.page.locator('.lab-cell[data-id="c4"] [data-action="cancel"]').click();
    await p.page.locator('[data-run="demo"]').click();
    await until(() => p.posted.filter((m) => m.kind === 'request').length === 5, 'five requests');
    const requests = p.posted.flatMap((m) => (m.kind === 'request' ? [{ type: m.type, ...(m.params as object) }] : []));
    assert.deepEqual(requests.slice(1), [
      { type: 'rerun', cell: 'c1' }, { type: 'open', cell: 'c3' }, { type: 'cancel', cell: 'c4' }, { type: 'run', kind: 'demo' },
    ]);
    assert.match((await p.page.locator('.lab-cell[data-id="c0"] .error').textContent())!, /outside the codebook/);
    assert.equal(await p.page.locator('.lab-cell[data-id="c3"] canvas.token-preview').getAttribute('width'), '21'); // chelsea's 14 x 21 grid

    // progress ticks of the running cell (the host sends the whole list each time) redraw its
    // bar only: every button stays the same element, so a click cannot straddle a rebuild
    await p.page.evaluate(() => ((window as unknown as { before: Element[] }).before = [...document.querySelectorAll('[data-action]')]));
    for (let done = 8; done <= 11; done++) {
      const tick = list.map((c) => (c.id === 'c4' ? { ...c, progress: { done, total: 12, message: `image ${done} of 12` } } : c));
      await p.post({ kind: 'notify', type: 'cells', params: { cells: tick } });
    }
    await p.page.locator('.lab-cell[data-id="c4"] .progress', { hasText: 'image 11 of 12' }).waitFor();
    assert.equal(await p.page.locator('[data-action]').count(), 1 + 3 * 5, 'Cancel and three buttons on each of five finished cells');
    assert.ok(await p.page.evaluate(() => {
      const before = (window as unknown as { before: Element[] }).before;
      const now = [...document.querySelectorAll('[data-action]')];
      return now.length === before.length && now.every((b, i) => b === before[i]);
    }), 'the cells\' buttons are the elements they were before the ticks');
    assert.deepEqual(await p.page.locator('.lab-cell').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.id)), list.map((c) => c.id));

    // the host pushes a new list: the running cell finished
    const next = list.map((c) => (c.id === 'c4' ? { ...c, status: 'done' as const, progress: undefined } : c));
    await p.post({ kind: 'notify', type: 'cells', params: { cells: next } });
    await p.page.locator('.lab-cell[data-id="c4"][data-status="done"]').waitFor();
  } finally {
    await p.close();
  }
});

for (const theme of THEME_NAMES) {
  test(`every cell drawn in the ${theme} theme's colours, thumbnails decoded (and screenshotted)`, async () => {
    const list = await cells();
    const p = await openPanel('lab', labProtocol, theme, { init: () => list }, { width: 360, height: 900 });
    try {
      await p.page.locator('.lab-cell').first().waitFor();
      await p.page.waitForFunction(() => [...document.images].every((i) => i.complete));
      assert.deepEqual(await p.page.locator('.lab-cell .title').allTextContents(), list.map((c) => c.title));
      // every thumbnail of the cells decoded to real pixels, none broken
      const widths = await p.page.locator('.lab-cell img.thumb').evaluateAll((imgs) => imgs.map((i) => (i as HTMLImageElement).naturalWidth));
      assert.equal(widths.length, list.reduce((n, c) => n + (c.thumbnails?.length ?? 0), 0));
      assert.ok(widths.every((w) => w > 0), `thumbnail widths ${widths.join(', ')}`);
      const rgb = (variable: string) => `rgb(${themeRgb(theme, variable).join(', ')})`;
      const colours = await p.page.evaluate(() => {
        const body = getComputedStyle(document.body);
        return [body.backgroundColor, body.color, getComputedStyle(document.querySelector('.lab-cell')!).borderTopColor];
      });
      assert.deepEqual(colours.slice(0, 2), [rgb('sideBar-background'), rgb('foreground')]);
      if (theme === 'high-contrast') assert.equal(colours[2], rgb('contrastBorder'));
      await p.screenshot(`lab-${theme}`);
      assert.equal(p.warnings.length, 0, p.warnings.join('\n'));
    } finally {
      await p.close();
    }
  });
}

test('a build with few vectors per code shows its warning in the cell', async () => {
  const [, , , build] = await cells();
  const warning = 'K = 1,024 codes from 1,666 training vectors, 1.6 per code (fewer than 4): each code is the mean of a handful of vectors';
  const ok = () => null;
  const p = await openPanel('lab', labProtocol, 'dark', { init: () => [{ ...build!, warning }], run: ok, rerun: ok, open: ok, cancel: ok, remove: ok }, { width: 360, height: 900 });
  try {
    const shown = p.page.locator('.lab-cell[data-id="c1"] .warning');
    await shown.waitFor();
    assert.equal((await shown.textContent())!.trim(), warning);
    assert.equal(await p.page.locator('.lab-cell[data-id="c1"] .error').count(), 0);
  } finally {
    await p.close();
  }
});

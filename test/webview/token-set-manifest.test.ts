// The token set editor over a sharded tokenize output's manifest.json, in headless Chromium: two
// webdataset shards (Python's tarfile) of the fixture photos tokenized by the engine's sharded job
// with the fixture codebook, a third listed shard not there (so the manifest is not complete);
// served by the same functions the extension's editor uses (extension/panels/token-set.ts).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { openPanel, closeBrowser } from './harness.js';
import { realFixture, disposeFixture, fixtureImages } from './fixture-codebook.js';
import { imageSize, listShards, readTokenGrids, tokenizeShards } from '../../extension/engine/index.js';
import { readTokenSet, tokenSetGrid, tokenSetView } from '../../extension/panels/token-set.js';
import { tokenSetProtocol } from '../../common/protocol/tokens.js';
import { sampleEntries, writeTar } from '../helpers/shards.js';

const scratch = mkdtempSync(path.join(tmpdir(), 'unicode2-manifest-'));
after(async () => {
  await closeBrowser();
  await disposeFixture();
  rmSync(scratch, { recursive: true, force: true });
});

const SHARD_PHOTOS = [['astronaut.jpg', 'brick.png'], ['chelsea.png', 'coffee.jpg']];

/** Tokenizes shards 00000 and 00001 (00002 is listed but not there) into `out/`; the manifest. */
async function shardedOutput(): Promise<string> {
  const f = await realFixture();
  for (const [s, names] of SHARD_PHOTOS.entries()) {
    writeTar(path.join(scratch, `0000${s}.tar`), names.flatMap((name, i) => sampleEntries(`s${s}/${i}`, { [path.extname(name).slice(1)]: readFileSync(path.join(fixtureImages, name)) })));
  }
  const out = path.join(scratch, 'out');
  const summary = await tokenizeShards(f.cb, f.encoder, f.backend, { shards: listShards([path.join(scratch, '{00000..00002}.tar')]), out });
  assert.deepEqual(summary.failed.map((x) => path.basename(x.shard)), ['00002.tar']);
  // a file named like a key beside the manifest: keys are never looked up as paths
  await fs.mkdir(path.join(out, 's1'), { recursive: true });
  await fs.copyFile(path.join(fixtureImages, 'astronaut.jpg'), path.join(out, 's1', '0'));
  return path.join(out, 'manifest.json');
}

test('a manifest opens as one set: every done shard\'s images in manifest order, the missing shard named, each photo read from its shard', async () => {
  const f = await realFixture();
  const file = await shardedOutput();
  const set = await readTokenSet(file);
  assert.deepEqual(set.shards!.map((s) => [s.name, s.first, s.count, s.missing]), [['00000', 0, 2, false], ['00001', 2, 2, false], ['00002', 4, 0, true]]);
  // the same grids as the shards' data sets, one after the other
  const own = [...(await readTokenGrids(path.join(scratch, 'out/00000.tokens.npy'))), ...(await readTokenGrids(path.join(scratch, 'out/00001.tokens.npy')))];
  assert.deepEqual(set.grids, own);
  const host = {
    init: () => tokenSetView(file, set.grids, { file: '/work/.unicode2/codebook.safetensors', k: f.cb.frozen.rows }, set.shards),
    grid: ({ index }: { index: number }) => tokenSetGrid(file, set.grids, index, [], set.shards),
  };
  const p = await openPanel('tokens', tokenSetProtocol, 'dark', host, { width: 1200, height: 760 });
  try {
    await p.page.locator('#set-grid[data-drawn="true"]').waitFor();
    assert.deepEqual(await p.page.locator('.image-item').allTextContents(), ['s0/0', 's0/1', 's1/0', 's1/1']);
    assert.equal(await p.page.locator('.image-item[data-index="2"]').getAttribute('title'), 'shard 00001: s1/0');
    assert.match((await p.page.locator('#set-summary').textContent())!, /^4 images · 2 of 3 shards · /);
    assert.equal(await p.page.locator('#shards-missing').isVisible(), true);
    assert.equal(await p.page.locator('#shards-missing').textContent(), 'Not tokenized yet: 1 of 3 shards (00002); their images are not in this set.');
    assert.match((await p.page.locator('#usage dl').textContent())!, new RegExp(`tokens${set.grids.reduce((n, g) => n + g.ids.length, 0).toLocaleString('en-US')}`));

    // s1/0 is chelsea.png (256 x 170), read from shard 00001: shown at its aspect, not the
    // square astronaut lying at out/s1/0
    await p.page.locator('.image-item[data-index="2"]').click();
    await p.page.locator('#set-grid[data-index="2"]').waitFor();
    assert.equal(await p.page.locator('#grid-caption .warning').count(), 0);
    const box = (await p.page.locator('#set-grid').boundingBox())!;
    const { width, height } = await imageSize(path.join(fixtureImages, 'chelsea.png'));
    assert.ok(Math.abs(box.width / box.height - width / height) < 0.02, `chelsea shows at ${box.width / box.height}`);
    await p.screenshot('tokens-manifest-dark');
    assert.equal(p.warnings.length, 0, p.warnings.join('\n'));
  } finally {
    await p.close();
  }
});

test('a manifest whose shard changed or went: the grid alone, saying why; a manifest with no shard done is refused naming them', async () => {
  const file = await shardedOutput();
  const set = await readTokenSet(file);
  await fs.utimes(path.join(scratch, '00000.tar'), new Date(), new Date(Date.now() + 5000));
  assert.match((await tokenSetGrid(file, set.grids, 0, [], set.shards)).missing!, /00000\.tar has changed since it was tokenized$/);
  await fs.rm(path.join(scratch, '00001.tar'));
  const gone = await tokenSetGrid(file, set.grids, 3, [], set.shards);
  assert.equal(gone.image, null);
  assert.match(gone.missing!, /00001\.tar is not there any more$/);

  const none = path.join(scratch, 'none');
  await fs.mkdir(none);
  const f = await realFixture();
  await tokenizeShards(f.cb, f.encoder, f.backend, { shards: listShards([path.join(scratch, '{00001,00002}.tar')]), out: none });
  const empty = await readTokenSet(path.join(none, 'manifest.json'));
  assert.throws(() => tokenSetView(path.join(none, 'manifest.json'), empty.grids, null, empty.shards), /none of its 2 shards is tokenized yet \(missing: 00001, 00002\)/);
  // an embed job's manifest is not a token set
  await fs.writeFile(path.join(none, 'manifest.json'), JSON.stringify({ ...JSON.parse(await fs.readFile(path.join(none, 'manifest.json'), 'utf8')), job: 'embed' }));
  await assert.rejects(readTokenSet(path.join(none, 'manifest.json')), /the outputs of a sharded embed job, not token data sets/);
});

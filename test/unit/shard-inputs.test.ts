// Data-set shards as the images of `build --images`, `refine --images` and `stats --images`: over
// webdataset .tar shards (Python's tarfile) and a parquet shard (hyparquet-writer) holding the
// fixture photos, each command gives what it gives for the same photos as a folder whose name
// order is the shards' key order — the codebook's tensors, the refined atlas, the counts. A
// sample without an image is reported as skipped; a broken shard fails the command naming it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readCodebook } from '../../extension/engine/codebook/codebook.js';
import { readManifestTokenSet } from '../../extension/engine/codebook/token-files.js';
import { shardSampleImage } from '../../extension/engine/embed/shards.js';
import { cliRunner } from '../helpers/cli.js';
import { sampleEntries, writeImageParquet, writeTar, type TarEntry } from '../helpers/shards.js';

const ROOT = path.join(__dirname, '../..');
const IMAGES = path.join(ROOT, 'test/fixtures/images');
const photo = (name: string) => new Uint8Array(readFileSync(path.join(IMAGES, name)));
const PHOTOS = ['astronaut.jpg', 'brick.png', 'chelsea.png', 'coffee.jpg', 'flower.jpg', 'rocket.jpg', 'china.jpg'];
const keyOf = (i: number) => String(i).padStart(6, '0');

let dir: string;
let codebook: string;
const { cli, cliJson, assertUserError } = cliRunner(() => dir);

/** Two webdataset shards (samples 0-3, 4-6: the seven photos, with a caption each) and the same
 *  photos as a folder named by key; `shards/` also gets a sample with no image member. */
before(async () => {
  execFileSync(process.execPath, ['scripts/build.mjs', '--quiet'], { cwd: ROOT, stdio: 'inherit' });
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-shard-inputs-'));
  await Promise.all(['wds', 'flat'].map((d) => fs.mkdir(path.join(dir, d))));
  const entries = (from: number, to: number): TarEntry[] =>
    PHOTOS.slice(from, to).flatMap((name, j) => sampleEntries(keyOf(from + j), { [path.extname(name).slice(1)]: photo(name), txt: `photo ${name}` }));
  writeTar(path.join(dir, 'wds/00000.tar'), entries(0, 4));
  writeTar(path.join(dir, 'wds/00001.tar'), [...entries(4, 7), { name: 'caption-only.txt', data: 'no image here' }]);
  for (const [i, name] of PHOTOS.entries()) await fs.writeFile(path.join(dir, 'flat', `${keyOf(i)}${path.extname(name)}`), photo(name));
  codebook = path.join(dir, 'cb.safetensors');
  const r = await cli(['build', '--images', 'flat', '--k', '16', '--iters', '3', '--seed', '2', '--out', codebook, '--quiet']);
  assert.equal(r.code, 0, r.stderr);
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const SHARDS = 'wds/{00000..00001}.tar';

async function tensors(file: string): Promise<{ frozen: number[]; trainable: number[]; counts: number[]; fingerprint: string; corpus: string | undefined }> {
  const cb = await readCodebook(file);
  return {
    frozen: Array.from((cb.frozen as { data: Float32Array }).data), // f32 codebooks
    trainable: Array.from(((await cb.trainable.load()) as { data: Float32Array }).data),
    counts: Array.from(cb.counts ?? [], Number),
    fingerprint: cb.fingerprint,
    corpus: cb.meta.corpusFingerprint,
  };
}

test('build --images SHARDS: the codebook of the same photos as a folder in key order (flat and two-level); the corpus folder goes once written', async () => {
  for (const method of ['flat', 'two-level']) {
    const args = ['--k', '8', '--iters', '3', '--seed', '5', '--method', method, ...(method === 'two-level' ? ['--coarse', '2', '--refine', '1'] : [])];
    const fromFolder = await cliJson(['build', '--images', 'flat', ...args, '--out', `folder-${method}.safetensors`]);
    const fromShards = await cliJson(['build', '--images', SHARDS, ...args, '--out', `shards-${method}.safetensors`]);
    assert.equal(fromShards.method, method);
    assert.deepEqual([fromShards.vectors, fromShards.inertia, fromShards.fingerprint], [fromFolder.vectors, fromFolder.inertia, fromFolder.fingerprint]);
    assert.deepEqual(await tensors(path.join(dir, `shards-${method}.safetensors`)), await tensors(path.join(dir, `folder-${method}.safetensors`)));
    // the sample without an image is named (by its shard and key) among the skipped
    assert.deepEqual(fromShards.skipped.map((s: { path: string }) => s.path), [`${path.join('wds', '00001.tar')}: caption-only`]);
  }
  assert.deepEqual((await fs.readdir(dir)).filter((n) => n.includes('.corpus-')), []);
});

test('build --images SHARDS: a broken shard fails the build naming it; the shards embedded are kept, and the next run after the repair builds', async () => {
  await fs.copyFile(path.join(dir, 'wds/00000.tar'), path.join(dir, 'wds/00002.tar'));
  const good = await fs.readFile(path.join(dir, 'wds/00002.tar'));
  await fs.writeFile(path.join(dir, 'wds/00002.tar'), good.subarray(0, 3000));
  const args = ['build', '--images', 'wds/{00000..00002}.tar', '--k', '8', '--iters', '2', '--out', 'broken.safetensors', '--json', '--quiet'];
  const r = await cli(args);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr.trim(), /^unicode2: shard wds\/00002\.tar failed: truncated tar archive.*the other shards' embeddings are kept/);
  await assert.rejects(fs.stat(path.join(dir, 'broken.safetensors')));
  const [corpus] = (await fs.readdir(dir)).filter((n) => n.startsWith('broken.safetensors.corpus-'));
  assert.ok(corpus, 'the corpus folder is kept');
  assert.deepEqual((await fs.readdir(path.join(dir, corpus))).filter((n) => n.endsWith('.npy')).sort(), ['00000.npy', '00001.npy']);
  await fs.writeFile(path.join(dir, 'wds/00002.tar'), good);
  const again = await cli(args);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(JSON.parse(again.stdout).skipped.length, 1);
  await fs.rm(path.join(dir, 'wds/00002.tar'));
});

test('refine --images SHARDS: the atlas refined over the same photos as a folder', async () => {
  const folder = await cliJson(['refine', '--codebook', codebook, '--images', 'flat', '--out', 'refined-folder.safetensors']);
  const shards = await cliJson(['refine', '--codebook', codebook, '--images', SHARDS, '--out', 'refined-shards.safetensors']);
  assert.equal(shards.atlas, 'refined');
  assert.equal(shards.fingerprint, folder.fingerprint);
  const [a, b] = await Promise.all(['refined-shards', 'refined-folder'].map((f) => tensors(path.join(dir, `${f}.safetensors`))));
  assert.deepEqual(a.trainable, b.trainable);
  assert.notDeepEqual(a.trainable, (await tensors(codebook)).trainable, 'the atlas changed');
});

test('stats --images SHARDS (tar, and parquet with an image column): the counts of the same photos as a folder; a skipped sample is named', async () => {
  const folder = await cliJson(['stats', '--codebook', codebook, '--images', 'flat']);
  const r = await cli(['stats', '--codebook', codebook, '--images', SHARDS, '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), folder);
  assert.match(r.stderr, /skipped caption-only: no image member/);

  await writeImageParquet(path.join(dir, 'photos.parquet'), PHOTOS.map((name, i) => ({ key: keyOf(i), bytes: photo(name) })), { column: 'jpg', rowGroupSize: 3 });
  assert.deepEqual(await cliJson(['stats', '--codebook', codebook, '--images', 'photos.parquet', '--image-column', 'jpg']), folder);
  await assertUserError(['stats', '--codebook', codebook, '--images', 'photos.parquet', '--image-column', 'png'], /photos\.parquet: no column 'png' \(columns: jpg, __key__\)/);
});

test('tokenize over parquet with an image column: the column is part of the job (not skipped without it) and the manifest gives it back to find each photo', async () => {
  const file = path.join(dir, 'column.parquet');
  await writeImageParquet(file, PHOTOS.slice(0, 3).map((name, i) => ({ key: keyOf(i), bytes: photo(name) })), { column: 'photo' });
  const args = ['tokenize', '--codebook', codebook, 'column.parquet', '--out', 'by-column/'];
  const first = await cliJson([...args, '--image-column', 'photo']) as { done: number };
  const again = await cliJson([...args, '--image-column', 'photo']) as { skipped: number };
  assert.deepEqual([first.done, again.skipped], [1, 1]);
  const set = await readManifestTokenSet(path.join(dir, 'by-column/manifest.json'));
  assert.equal(set.shards[0]!.imageColumn, 'photo');
  const shard = { path: file, name: 'column', kind: 'parquet' as const };
  await assert.rejects(shardSampleImage(shard, keyOf(2)), /no image column found/);
  const image = await shardSampleImage(shard, keyOf(2), 0, { imageColumn: set.shards[0]!.imageColumn! });
  assert.ok(image && image.bytes.length > 0, 'the photo is found through the recorded column');
  const without = await cli([...args, '--json']);
  assert.equal(without.code, 2, 'without the column the job is another one: redone (and the column is not found), not skipped');
  assert.equal((JSON.parse(without.stdout) as { skipped: number }).skipped, 0);
});

test('shards as --images: bad input is one line each, naming the shard', async () => {
  await fs.writeFile(path.join(dir, 'wds/broken.tar'), (await fs.readFile(path.join(dir, 'wds/00000.tar'))).subarray(0, 3000));
  await assertUserError(['stats', '--codebook', codebook, '--images', 'wds/broken.tar'], /wds\/broken\.tar.*truncated tar archive/);
  await assertUserError(['refine', '--codebook', codebook, '--images', 'wds/{00000,gone}.tar', '--out', 'x.safetensors'], /wds\/gone\.tar/);
  await assertUserError(['stats', '--codebook', codebook, '--images', 'flat', '--image-column', 'jpg'], /an image column applies to data-set shards \(\.tar, \.parquet\), not to flat; drop --image-column/);
  await assertUserError(['build', '--images', 'flat', '--image-column', 'jpg', '--k', '4', '--out', 'x.safetensors'], /an image column applies to images in data-set shards/);
  await assertUserError(['stats', '--codebook', codebook, '--tokens', 'x.tokens.json', '--image-column', 'jpg'], /an image column applies to images in data-set shards, not to tokens/);
});

// Data-set shards as inputs: webdataset .tar files written by Python's tarfile and Hugging Face
// style parquet files written by hyparquet-writer, with the real fixture photos as their images;
// the readers (members, samples, keys, text members, links, damage), brace lists, and the CLI's
// sharded tokenize: one token data set per shard plus the manifest, `--shard I/N` parts whose
// union is the single run byte for byte, re-runs that skip complete outputs, a broken shard that
// fails alone (exit 2), and stats reading the manifest as one data set; the sharded embed: its
// sets row for row the folder's, parts equal one run, a broken shard alone, build reading them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UserError } from '../../common/errors.js';
import { tarMembers } from '../../extension/engine/io/formats/tar.js';
import { openRegularFile } from '../../extension/engine/io/files.js';
import { expandBraces, listShards } from '../../extension/engine/io/shard-list.js';
import { shardsOfPart } from '../../extension/engine/io/shard-job.js';
import { parseShardPart } from '../../extension/cli/shards.js';
import { sampleKeyOf, shardImages } from '../../extension/engine/embed/shards.js';
import { readTokenGrids } from '../../extension/engine/codebook/token-files.js';
import { readEmbeddings, writeNpy } from '../../extension/engine/io/formats/npy.js';
import { cliRunner } from '../helpers/cli.js';
import { claimTarSize, sampleEntries, writeImageParquet, writeTar, type TarEntry } from '../helpers/shards.js';

const ROOT = path.join(__dirname, '../..');
const IMAGES = path.join(ROOT, 'test/fixtures/images');
const photo = (name: string) => new Uint8Array(readFileSync(path.join(IMAGES, name)));
const PHOTOS = ['astronaut.jpg', 'brick.png', 'chelsea.png', 'coffee.jpg', 'flower.jpg', 'rocket.jpg', 'china.jpg'];

let dir: string;
let codebook: string;
const { cli, cliJson, assertUserError } = cliRunner(() => dir);

before(async () => {
  execFileSync(process.execPath, ['scripts/build.mjs', '--quiet'], { cwd: ROOT, stdio: 'inherit' });
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-shards-'));
  codebook = path.join(dir, 'cb.safetensors');
  const r = await cli(['build', '--images', IMAGES, '--k', '32', '--iters', '3', '--out', codebook, '--quiet']);
  assert.equal(r.code, 0, r.stderr);
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function membersOf(file: string): Promise<{ name: string; kind: string; size: number }[]> {
  const { handle, size } = await openRegularFile(file, 'tar');
  try {
    const out = [];
    for await (const m of tarMembers(handle, size, file)) out.push({ name: m.name, kind: m.kind, size: m.size });
    return out;
  } finally {
    await handle.close();
  }
}

async function drain(file: string, kind: 'tar' | 'parquet', imageColumn?: string) {
  const source = shardImages({ path: file, name: 'x', kind }, imageColumn ? { imageColumn } : {});
  const images: { name: string; bytes: number }[] = [];
  for await (const image of source.images) images.push({ name: image.name, bytes: image.bytes.length });
  return { images, skipped: source.skipped, meta: source.meta };
}

/** A webdataset shard of `count` samples from `first` (keys 000000, 000001, ...), each a photo, a
 *  caption and a json record. */
function writeShard(file: string, first: number, count: number): void {
  const entries: TarEntry[] = [];
  for (let i = first; i < first + count; i++) {
    const name = PHOTOS[i % PHOTOS.length]!;
    entries.push(...sampleEntries(String(i).padStart(6, '0'), { [path.extname(name).slice(1)]: photo(name), txt: `photo ${name}`, json: JSON.stringify({ i }) }));
  }
  writeTar(file, entries);
}

test('tar members: names as Python writes them in pax, GNU and ustar form (long, non-ASCII, prefixed)', async () => {
  const long = `${'d'.repeat(60)}/${'e'.repeat(60)}/${'f'.repeat(90)}.jpg`;
  const entries: TarEntry[] = [
    { name: 'a.jpg', data: 'x' },
    { name: long, data: 'yy' },
    { name: 'ünï/cödé.txt', data: 'zzz' },
    { name: 'sub', type: 'dir' },
    { name: 'l.jpg', type: 'symlink', link: '/etc/passwd' },
    { name: 'h.jpg', type: 'hardlink', link: 'a.jpg' },
  ];
  for (const format of ['pax', 'gnu'] as const) {
    const file = path.join(dir, `names-${format}.tar`);
    writeTar(file, entries, format);
    assert.deepEqual(await membersOf(file), [
      { name: 'a.jpg', kind: 'file', size: 1 },
      { name: long, kind: 'file', size: 2 },
      { name: 'ünï/cödé.txt', kind: 'file', size: 3 },
      { name: 'sub/', kind: 'folder', size: 0 },
      { name: 'l.jpg', kind: 'link', size: 0 },
      { name: 'h.jpg', kind: 'link', size: 0 },
    ], format);
  }
  // ustar: a path over 100 bytes goes in the prefix field
  const prefixed = `${'p'.repeat(120)}/name.jpg`;
  const file = path.join(dir, 'names-ustar.tar');
  writeTar(file, [{ name: prefixed, data: 'q' }], 'ustar');
  assert.deepEqual(await membersOf(file), [{ name: prefixed, kind: 'file', size: 1 }]);
});

test('webdataset samples: grouped by key, the image member, text members carried, links and imageless samples skipped', async () => {
  const file = path.join(dir, 'samples.tar');
  writeTar(file, [
    ...sampleEntries('s/000', { jpg: photo('astronaut.jpg'), txt: 'an astronaut', json: '{"w": 1}', cls: '3' }),
    ...sampleEntries('s/001', { 'seg.png': photo('brick.png'), png: photo('brick.png') }),
    ...sampleEntries('s/002', { txt: 'no image here' }),
    { name: 's/003.jpg', type: 'symlink', link: '../../etc/passwd' },
    ...sampleEntries('../escape', { webp: 'not really a webp' }),
    ...sampleEntries('/abs/olute', { jpeg: photo('coffee.jpg') }),
    { name: 'README', data: 'no extension: not a sample member' },
  ]);
  const { images, skipped, meta } = await drain(file, 'tar');
  assert.deepEqual(images, [
    { name: 's/000', bytes: photo('astronaut.jpg').length },
    { name: 's/001', bytes: photo('brick.png').length },
    { name: '../escape', bytes: 17 },
    { name: '/abs/olute', bytes: photo('coffee.jpg').length },
  ]);
  assert.deepEqual(skipped, [
    { path: 's/002', reason: 'no image member' },
    { path: 's/003', reason: 'its image member is a link (links in shards are not followed)' },
  ]);
  assert.deepEqual(meta.get('s/000'), { txt: 'an astronaut', json: { w: 1 }, cls: '3' });
  assert.deepEqual(meta.get('s/002'), { txt: 'no image here' });
  assert.deepEqual(sampleKeyOf('a.b/c.d.jpg'), { key: 'a.b/c', ext: 'd.jpg' });
  assert.equal(sampleKeyOf('.hidden'), null);
});

test('damaged tars: truncated, a header claiming 8 GiB, not a tar at all: one UserError each', async () => {
  const file = path.join(dir, 'ok.tar');
  writeTar(file, sampleEntries('k', { jpg: photo('astronaut.jpg') }), 'gnu');
  const bytes = new Uint8Array(await fs.readFile(file));
  const cases: [string, Uint8Array, RegExp][] = [
    ['truncated.tar', bytes.subarray(0, 5000), /truncated tar archive \(a member at byte 0 claims \d+ bytes/],
    ['no-end.tar', bytes.subarray(0, 512 + Math.ceil(photo('astronaut.jpg').length / 512) * 512), /without the end-of-archive block/],
    ['noise.tar', new Uint8Array(4096).fill(7), /not a tar archive or a damaged one/],
  ];
  const huge = Uint8Array.from(bytes);
  claimTarSize(huge, 0, 8 * 2 ** 30);
  cases.push(['huge.tar', huge, /a member at byte 0 claims 8589934592 bytes/]);
  for (const [name, data, pattern] of cases) {
    const f = path.join(dir, name);
    await fs.writeFile(f, data);
    await assert.rejects(drain(f, 'tar'), (err: unknown) => err instanceof UserError && pattern.test(err.message) && err.message.startsWith(f), name);
  }
});

test('parquet shards: Hugging Face struct{bytes, path} with __key__, a named binary column, a damaged footer', async () => {
  const hf = path.join(dir, 'hf.parquet');
  await writeImageParquet(hf, [
    { key: 'k0', bytes: photo('astronaut.jpg') },
    { key: 'k1', bytes: photo('brick.png') },
    { key: 'k2', bytes: null },
    { key: 'k3', bytes: photo('coffee.jpg') },
  ]);
  const read = await drain(hf, 'parquet');
  assert.deepEqual(read.images, [
    { name: 'k0', bytes: photo('astronaut.jpg').length },
    { name: 'k1', bytes: photo('brick.png').length },
    { name: 'k3', bytes: photo('coffee.jpg').length },
  ]);
  assert.deepEqual(read.skipped, [{ path: 'k2', reason: 'no image bytes in its row' }]);
  const plain = path.join(dir, 'plain.parquet');
  await writeImageParquet(plain, [{ key: 'a', bytes: photo('flower.jpg') }], { column: 'pixels' });
  await assert.rejects(drain(plain, 'parquet'), /no image column found \(columns: pixels, __key__\); name it with --image-column/);
  assert.deepEqual((await drain(plain, 'parquet', 'pixels')).images, [{ name: 'a', bytes: photo('flower.jpg').length }]);
  await assert.rejects(drain(plain, 'parquet', '__key__'), /column '__key__' holds no image bytes/);
  const bad = path.join(dir, 'bad.parquet');
  const bytes = await fs.readFile(hf);
  await fs.writeFile(bad, bytes.subarray(bytes.length - 200));
  await assert.rejects(drain(bad, 'parquet'), (err: unknown) => err instanceof UserError && /not a parquet file or a damaged one/.test(err.message));
});

test('shard lists: brace ranges keep their zero padding, lists and several braces combine in order', () => {
  assert.deepEqual(expandBraces('s/{00000..00002}.tar'), ['s/00000.tar', 's/00001.tar', 's/00002.tar']);
  assert.deepEqual(expandBraces('e/{8..11}.npy'), ['e/8.npy', 'e/9.npy', 'e/10.npy', 'e/11.npy']);
  assert.deepEqual(expandBraces('{a,b}/{0..1}.tar'), ['a/0.tar', 'a/1.tar', 'b/0.tar', 'b/1.tar']);
  assert.deepEqual(expandBraces('plain{x}.tar'), ['plain{x}.tar']);
  assert.throws(() => expandBraces('{0..9999999}.tar'), /names 10000000 shards; the limit is 1000000/);
  assert.throws(() => listShards(['a/00.tar', 'b/00.tar']), /both shards named '00'/);
  assert.throws(() => listShards(['{0..1}.zip']), /0\.zip: not a data-set shard/);
  assert.deepEqual(shardsOfPart([0, 1, 2, 3, 4], parseShardPart('2/2')), [1, 3]);
  assert.deepEqual(shardsOfPart([0, 1, 2, 3, 4], parseShardPart('1/3')), [0, 3]);
  for (const bad of ['0/2', '3/2', '1', 'a/b']) assert.throws(() => parseShardPart(bad), /--shard must be I\/N with 1 <= I <= N/);
});

test('embeddings from a brace list of .npy shards: the files it names, in its order', async () => {
  const folder = path.join(dir, 'emb');
  await fs.mkdir(folder);
  for (let i = 8; i <= 10; i++) await writeNpy(path.join(folder, `${i}.npy`), { shape: [i - 7, 2], dtype: 'float32', data: new Float32Array(2 * (i - 7)).fill(i) });
  const m = await readEmbeddings(path.join(folder, '{8..10}.npy'));
  assert.deepEqual([m.rows, m.cols], [6, 2]);
  assert.deepEqual(Array.from(m.data), [8, 8, 9, 9, 9, 9, 10, 10, 10, 10, 10, 10]);
  await assert.rejects(readEmbeddings(path.join(folder, '{8..11}.npy')), /11\.npy: cannot read a \.npy file: no such file/);
});

async function filesOf(folder: string): Promise<Map<string, Buffer>> {
  const names = (await fs.readdir(folder)).filter((n) => n.endsWith('.npy') || n.endsWith('.index.json')).sort();
  return new Map(await Promise.all(names.map(async (n) => [n, await fs.readFile(path.join(folder, n))] as const)));
}

test('tokenize over shards: one data set per shard, --shard parts equal the single run byte for byte, re-runs skip, a broken shard fails alone', async () => {
  const shards = path.join(dir, 'wds');
  await fs.mkdir(shards);
  for (let s = 0; s < 4; s++) writeShard(path.join(shards, `${String(s).padStart(5, '0')}.tar`), s * 3, 3);
  const pattern = path.join(shards, '{00000..00003}.tar');
  const whole = await cliJson(['tokenize', '--codebook', codebook, pattern, '--out', 'whole/']);
  assert.deepEqual(Object.keys(whole), ['shards', 'images', 'done', 'skipped', 'failed', 'seconds', 'slurm']);
  assert.deepEqual({ ...whole, seconds: 0 }, { shards: 4, images: 12, done: 4, skipped: 0, failed: [], seconds: 0, slurm: null });
  const index = JSON.parse(await fs.readFile(path.join(dir, 'whole/00001.tokens.npy.index.json'), 'utf8'));
  assert.deepEqual(index.images, ['000003', '000004', '000005']);
  assert.deepEqual(index.shard, { path: path.join(shards, '00001.tar'), bytes: (await fs.stat(path.join(shards, '00001.tar'))).size, mtimeMs: (await fs.stat(path.join(shards, '00001.tar'))).mtimeMs });
  assert.deepEqual(index.meta[0], { txt: 'photo coffee.jpg', json: { i: 3 } });

  // two parts at once into one folder: the same files, byte for byte, and a whole manifest
  const parts = await Promise.all(['1/2', '2/2'].map((p) => cliJson(['tokenize', '--codebook', codebook, pattern, '--out', 'parts/', '--shard', p])));
  assert.deepEqual(parts.map((p) => [p.shards, p.done, p.images]), [[2, 2, 6], [2, 2, 6]]);
  assert.deepEqual(await filesOf(path.join(dir, 'parts')), await filesOf(path.join(dir, 'whole')));
  const manifest = JSON.parse(await fs.readFile(path.join(dir, 'parts/manifest.json'), 'utf8'));
  assert.equal(manifest.complete, true);
  assert.deepEqual(manifest.shards.map((s: { name: string; images: number }) => [s.name, s.images]), [['00000', 3], ['00001', 3], ['00002', 3], ['00003', 3]]);

  // a re-run does only what is missing: nothing, then the one shard whose file changed
  const again = await cliJson(['tokenize', '--codebook', codebook, pattern, '--out', 'whole/']);
  assert.deepEqual([again.done, again.skipped, again.images], [0, 4, 12]);
  const touched = path.join(shards, '00002.tar');
  await fs.utimes(touched, new Date(), new Date(Date.now() + 5000));
  const redo = await cliJson(['tokenize', '--codebook', codebook, pattern, '--out', 'whole/']);
  assert.deepEqual([redo.done, redo.skipped], [1, 3]);

  // stats reads the manifest as one data set: the same counts as the shards' data sets together
  const grids = await readTokenGrids(path.join(dir, 'whole'));
  assert.equal(grids.length, 12);
  const s = await cliJson(['stats', '--codebook', codebook, '--tokens', 'whole/']);
  assert.equal(s.tokens, grids.reduce((n, g) => n + g.ids.length, 0));

  // a broken shard: no output for it, the others done, named in the summary, exit 2
  await fs.writeFile(path.join(shards, '00004.tar'), (await fs.readFile(path.join(shards, '00000.tar'))).subarray(0, 3000));
  const r = await cli(['tokenize', '--codebook', codebook, path.join(shards, '{00000..00004}.tar'), path.join(shards, 'gone.tar'), '--out', 'whole/', '--json', '--quiet']);
  assert.equal(r.code, 2, r.stderr);
  const broken = JSON.parse(r.stdout);
  assert.deepEqual([broken.shards, broken.done, broken.skipped], [6, 0, 4]);
  assert.deepEqual(broken.failed.map((f: { shard: string }) => path.basename(f.shard)), ['00004.tar', 'gone.tar']);
  assert.match(broken.failed[0].error, /^truncated tar archive/);
  assert.match(broken.failed[1].error, /no such file/);
  await assert.rejects(fs.stat(path.join(dir, 'whole/00004.tokens.npy')));
  await assertUserError(['stats', '--codebook', codebook, '--tokens', 'whole/manifest.json'], /2 of 6 shards are not done yet/);
});

test('embed over shards: the rows of embed over the same images as a folder, --shard parts equal one run, a broken shard fails alone, build reads the folder', async () => {
  const shards = path.join(dir, 'emb-wds');
  const flat = path.join(dir, 'emb-flat');
  await Promise.all([fs.mkdir(shards), fs.mkdir(flat)]);
  writeShard(path.join(shards, '00000.tar'), 0, 4);
  writeShard(path.join(shards, '00001.tar'), 4, 3);
  // the same photos as a folder, named by key: the folder's name order is the shards' key order
  for (let i = 0; i < 7; i++) await fs.writeFile(path.join(flat, `${String(i).padStart(6, '0')}${path.extname(PHOTOS[i]!)}`), photo(PHOTOS[i]!));
  const pattern = path.join(shards, '{00000..00001}.tar');
  await cliJson(['embed', flat, '--out', 'flat.npy']);
  const whole = await cliJson(['embed', pattern, '--out', 'emb-whole/']);
  assert.deepEqual({ ...whole, seconds: 0 }, { shards: 2, images: 7, done: 2, skipped: 0, failed: [], seconds: 0, slurm: null });

  // row for row, in key order: the shards' sets one after the other are the folder's set
  const one = await readEmbeddings(path.join(dir, 'flat.npy'));
  const both = await readEmbeddings(path.join(dir, 'emb-whole'));
  assert.deepEqual([both.rows, both.cols], [one.rows, one.cols]);
  assert.ok(both.data.every((v, i) => v === one.data[i]), 'the same rows');
  const indexOf = async (f: string) => JSON.parse(await fs.readFile(path.join(dir, `${f}.index.json`), 'utf8'));
  const [flatIndex, i0, i1] = await Promise.all(['flat.npy', 'emb-whole/00000.npy', 'emb-whole/00001.npy'].map(indexOf));
  assert.deepEqual([...i0.images, ...i1.images], flatIndex.images.map((p: string) => path.basename(p, path.extname(p))));
  const gridsOf = (index: { images: string[]; grid?: number[]; grids?: number[][] }) => index.grids ?? index.images.map(() => index.grid);
  assert.deepEqual([...gridsOf(i0), ...gridsOf(i1)], gridsOf(flatIndex));
  assert.deepEqual(i1.encoder, flatIndex.encoder);
  assert.deepEqual(i1.meta[0], { txt: 'photo flower.jpg', json: { i: 4 } });

  // two parts at once into one folder: the same files, byte for byte
  const parts = await Promise.all(['1/2', '2/2'].map((p) => cliJson(['embed', pattern, '--out', 'emb-parts/', '--shard', p])));
  assert.deepEqual(parts.map((p) => [p.shards, p.done, p.images]), [[1, 1, 4], [1, 1, 3]]);
  assert.deepEqual(await filesOf(path.join(dir, 'emb-parts')), await filesOf(path.join(dir, 'emb-whole')));

  // build takes the folder (its manifest) or the brace list of its files: the same codebook
  const built = await Promise.all(['emb-whole/', 'emb-whole/{00000..00001}.npy'].map((e, i) => cliJson(['build', '--embeddings', e, '--k', '8', '--iters', '2', '--seed', '1', '--out', `emb-cb${i}.safetensors`])));
  const same = built.map((b) => [b.k, b.vectors, b.inertia, b.fingerprint]);
  assert.deepEqual(same[0], same[1]);
  assert.deepEqual(same[0]!.slice(0, 2), [8, one.rows]);

  // a broken shard: no output for it, the others skipped (complete), exit 2; the folder is then
  // not a whole embedding set
  await fs.writeFile(path.join(shards, '00002.tar'), (await fs.readFile(path.join(shards, '00000.tar'))).subarray(0, 3000));
  const r = await cli(['embed', path.join(shards, '{00000..00002}.tar'), '--out', 'emb-whole/', '--json', '--quiet']);
  assert.equal(r.code, 2, r.stderr);
  const broken = JSON.parse(r.stdout);
  assert.deepEqual([broken.shards, broken.done, broken.skipped, broken.images], [3, 0, 2, 7]);
  assert.deepEqual(broken.failed.map((f: { shard: string; error: string }) => [path.basename(f.shard), /^truncated tar archive/.test(f.error)]), [['00002.tar', true]]);
  await assert.rejects(fs.stat(path.join(dir, 'emb-whole/00002.npy')));
  await assertUserError(['build', '--embeddings', 'emb-whole/', '--k', '8', '--out', 'x.safetensors'], /1 of 3 shards are not done yet/);
});

test('tokenize over shards: bad requests are one line each', async () => {
  const shard = path.join(dir, 'one.tar');
  writeShard(shard, 0, 1);
  await assertUserError(['tokenize', '--codebook', codebook, shard, '--out', 'x.npy'], /over data-set shards, --out names a folder \(--out DIR\/, with the trailing slash\)/);
  await assertUserError(['tokenize', '--codebook', codebook, shard, path.join(IMAGES, 'astronaut.jpg'), '--out', 'o/'], /give either images \(files, folders\) or data-set shards/);
  await assertUserError(['tokenize', '--codebook', codebook, path.join(IMAGES, 'astronaut.jpg'), '--shard', '1/2'], /--shard and --image-column apply to data-set shards/);
  await assertUserError(['tokenize', '--codebook', codebook, shard, '--out', 'o/', '--shard', '0/2'], /--shard must be I\/N/);
});

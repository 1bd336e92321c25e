// Data-set shards under attack. Property tests: thousands of seeded mutations of a valid
// webdataset tar (Python's tarfile), of the footer of a valid parquet file (hyparquet-writer) and of
// its data pages and page headers either read consistently (every member and image within the
// file, keys as strings, no more samples than rows) or are refused with one UserError line.
// Hostile shards through the real CLI, in bounded memory and time: members named `../` and
// absolute, links, a header claiming 8 GiB, 20,000 empty members, parquet data pages on which
// hyparquet loops or grows an array without end.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../common/errors.js';
import { tarMembers } from '../../extension/engine/io/formats/tar.js';
import { openRegularFile } from '../../extension/engine/io/files.js';
import { shardImages } from '../../extension/engine/embed/shards.js';
import { Mutator } from '../helpers/mutate.js';
import { claimTarSize, parquetPages, sampleEntries, writeImageParquet, writeTar, type TarEntry } from '../helpers/shards.js';
import { IMAGES, ROOT, assertBounded, runCli, tempDir } from './harness.js';

const SEED = 20261207;
const photo = (name: string) => new Uint8Array(readFileSync(path.join(IMAGES, name)));
let dir: string;
let codebook: string;

before(async () => {
  execFileSync(process.execPath, ['scripts/build.mjs', '--quiet'], { cwd: ROOT, stdio: 'inherit' });
  dir = await tempDir('shards');
  codebook = path.join(dir, 'cb.safetensors');
  const r = await runCli(['build', '--images', IMAGES, '--k', '16', '--iters', '2', '--out', codebook, '--quiet']);
  assert.equal(r.code, 0, r.stderr);
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** Reads a shard whole through the readers; a throw must be a one-line UserError (then undefined). */
async function readOrRefused(file: string, kind: 'tar' | 'parquet', replay: string) {
  try {
    const source = shardImages({ path: file, name: 'x', kind });
    const images: { name: string; bytes: number }[] = [];
    for await (const image of source.images) images.push({ name: image.name, bytes: image.bytes.length });
    return { images, skipped: source.skipped };
  } catch (err) {
    assert.ok(err instanceof UserError, `${replay}: threw ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
    assert.ok(!err.message.includes('\n'), `${replay}: a multi-line message`);
    return undefined;
  }
}

test('tar: every mutated shard reads consistently or is a one-line UserError (1,500 cases)', async () => {
  const valid = path.join(dir, 'valid.tar');
  const entries: TarEntry[] = [
    ...sampleEntries('a/000', { jpg: photo('astronaut.jpg').subarray(0, 3000), txt: 'x', json: '{"a": 1}' }),
    { name: `${'long/'.repeat(30)}001.png`, data: photo('brick.png').subarray(0, 2000) },
    { name: 'a/002.jpg', type: 'symlink', link: '/etc/passwd' },
    ...sampleEntries('a/003', { cls: '7', webp: 'w' }),
  ];
  writeTar(valid, entries, 'pax');
  const gnu = path.join(dir, 'valid-gnu.tar');
  writeTar(gnu, entries, 'gnu');
  const originals = [new Uint8Array(await fs.readFile(valid)), new Uint8Array(await fs.readFile(gnu))];
  const m = new Mutator(SEED);
  const file = path.join(dir, 'mutated.tar');
  let read = 0;
  for (let i = 0; i < 1500; i++) {
    const bytes = m.bytes(m.pick(originals), 2048);
    await fs.writeFile(file, bytes);
    const replay = `tar seed ${SEED} case ${i}`;
    // the members: each within the file
    const { handle, size } = await openRegularFile(file, 'tar');
    try {
      for await (const member of tarMembers(handle, size, file)) {
        assert.ok(member.offset + member.size <= size && member.size >= 0, `${replay}: member ${JSON.stringify(member.name)} past the end`);
        assert.equal(typeof member.name, 'string', replay);
      }
    } catch (err) {
      assert.ok(err instanceof UserError && !err.message.includes('\n'), `${replay}: ${(err as Error).message}`);
    } finally {
      await handle.close();
    }
    const result = await readOrRefused(file, 'tar', replay);
    if (!result) continue;
    read++;
    assert.ok(result.images.reduce((n, im) => n + im.bytes, 0) <= bytes.length, `${replay}: more image bytes than the file holds`);
    for (const s of result.skipped) assert.ok(typeof s.path === 'string' && s.reason.length > 0, replay);
  }
  assert.ok(read > 100, `only ${read} of 1500 mutations read at all: the mutations are too destructive to test reading`);
});

// The footer: the file metadata (schema, row groups, column chunk offsets and sizes), which the
// reader bounds before the library allocates.
test('parquet: every shard with a mutated footer reads consistently or is a one-line UserError (400 cases)', async () => {
  const valid = path.join(dir, 'valid.parquet');
  await writeImageParquet(valid, [
    { key: 'k0', bytes: photo('astronaut.jpg').subarray(0, 1500) },
    { key: 'k1', bytes: null },
    { key: 'k2', bytes: photo('brick.png').subarray(0, 1500) },
  ]);
  const original = new Uint8Array(await fs.readFile(valid));
  const footerStart = original.length - 8 - new DataView(original.buffer).getUint32(original.length - 8, true);
  const pages = original.subarray(0, footerStart);
  const m = new Mutator(SEED + 1);
  const file = path.join(dir, 'mutated.parquet');
  let read = 0;
  for (let i = 0; i < 400; i++) {
    const footer = m.bytes(original.subarray(footerStart), 64);
    const bytes = new Uint8Array(pages.length + footer.length);
    bytes.set(pages);
    bytes.set(footer, pages.length);
    await fs.writeFile(file, bytes);
    const replay = `parquet seed ${SEED + 1} case ${i}`;
    const result = await readOrRefused(file, 'parquet', replay);
    if (!result) continue;
    read++;
    assert.ok(result.images.every((im) => im.bytes <= 1500), `${replay}: an image larger than any the file holds`);
  }
  assert.ok(read > 10, `only ${read} of 400 mutations read at all`);
});

/** `original` with bytes [start, end) replaced by `middle`. */
function splice(original: Uint8Array, start: number, end: number, middle: Uint8Array): Uint8Array {
  const out = new Uint8Array(start + middle.length + original.length - end);
  out.set(original.subarray(0, start));
  out.set(middle, start);
  out.set(original.subarray(end), start + middle.length);
  return out;
}

// The pages: one page (its header, levels and values) mutated at a time, the footer intact. Before
// the page headers were checked and hyparquet ran in a process of its own, mutations of this kind
// spun for ever in 2 cases of 200 (a dropped header field became a NaN offset, which reads byte 0
// again and again).
test('parquet: every shard with a mutated data page or page header reads consistently or is a one-line UserError (300 cases)', async () => {
  const valid = path.join(dir, 'pages.parquet');
  const rows = Array.from({ length: 12 }, (_, i) => ({ key: `k${i % 5}`, bytes: i % 4 === 1 ? null : photo(i % 2 ? 'astronaut.jpg' : 'brick.png').subarray(0, 300 + i) }));
  await writeImageParquet(valid, rows, { rowGroupSize: 4 });
  const original = new Uint8Array(await fs.readFile(valid));
  const pages = await parquetPages(original);
  const m = new Mutator(SEED + 2);
  const file = path.join(dir, 'mutated-pages.parquet');
  let read = 0;
  for (let i = 0; i < 300; i++) {
    const page = m.pick(pages);
    // hot: the page header and the levels after it, the counts and lengths hyparquet sizes by
    const bytes = splice(original, page.start, page.end, m.bytes(original.subarray(page.start, page.end), page.data - page.start + 4));
    await fs.writeFile(file, bytes);
    const replay = `parquet pages seed ${SEED + 2} case ${i}`;
    const result = await readOrRefused(file, 'parquet', replay);
    if (!result) continue;
    read++;
    assert.ok(result.images.length + result.skipped.length <= rows.length, `${replay}: more samples than the file has rows`);
    assert.ok(result.images.every((im) => im.bytes <= bytes.length * 64), `${replay}: an image larger than its page could expand to`);
  }
  assert.ok(read > 10, `only ${read} of 300 mutations read at all`);
});

test('damaged parquet data pages fail their shard alone, in bounded memory and time; the other shard is done', async () => {
  const work = path.join(dir, 'pages');
  await fs.mkdir(work);
  writeTar(path.join(work, 'good.tar'), sampleEntries('k', { jpg: photo('astronaut.jpg') }));
  // one row group of 40 rows, __key__ dictionary-encoded, pages uncompressed: each damage below is
  // at a known place in __key__'s data page (its levels: a run header, then the indexes' bit width)
  const valid = path.join(work, 'valid.parquet');
  await writeImageParquet(valid, Array.from({ length: 40 }, (_, i) => ({ key: `k${i}`, bytes: null })), { codec: 'UNCOMPRESSED', dictionaryKeys: true, rowGroupSize: 40 });
  const original = new Uint8Array(await fs.readFile(valid));
  const page = (await parquetPages(original)).find((p) => p.column === '__key__' && p.header.type === 'DATA_PAGE_V2')!;
  const levels = page.header.data_page_header_v2!.definition_levels_byte_length;
  const damage = (at: number, bytes: number[]) => splice(original, at, at + bytes.length, Uint8Array.from(bytes));
  const cases = [
    // the header's last field (the repetition levels' byte length) dropped: hyparquet 1.33 spun
    { name: 'header', bytes: damage(page.data - 4, [0]), error: /__key__'?: the page at byte \d+ is a data page without its counts/ },
    // a level run of 2^28 values: hyparquet grew one array until V8 aborted the process (22 s, 1.9
    // GB); now its process reaches its heap limit, or on a slow machine the watchdog, first
    { name: 'levels', bytes: damage(page.data, [0x80, 0x80, 0x80, 0x80, 0x02, 0x01]), error: /row group 0 (could not be decoded in \d+ MB of memory|did not decode in \d+ s)/ },
    // index bit width 0, then a bit-packed run of -8 values: hyparquet looped without reading or allocating
    { name: 'bitwidth', bytes: damage(page.data + levels, [0, 0xff, 0xff, 0xff, 0xff, 0x0f]), error: /row group 0 did not decode in \d+ s/ },
  ];
  assert.deepEqual(Array.from(original.subarray(page.data - 4, page.data)), [0x15, 0, 0, 0], 'the v2 page header ends with the repetition levels length 0, then two stops');
  for (const c of cases) {
    await fs.writeFile(path.join(work, `${c.name}.parquet`), c.bytes);
    const r = await runCli(['tokenize', '--codebook', codebook, 'good.tar', `${c.name}.parquet`, '--out', `out-${c.name}/`, '--json', '--quiet'], { cwd: work });
    assertBounded(r, `parquet ${c.name}`);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr, '', `parquet ${c.name}`);
    const summary = JSON.parse(r.stdout);
    assert.deepEqual([summary.done, summary.images, summary.failed.length, summary.failed[0].shard], [1, 1, 1, `${c.name}.parquet`], r.stdout);
    assert.match(summary.failed[0].error, c.error);
    await assert.rejects(fs.stat(path.join(work, `out-${c.name}/${c.name}.tokens.npy`)), 'nothing written for the damaged shard');
  }
});

/** Every file under `folder`, recursively, relative to it. */
async function treeOf(folder: string): Promise<string[]> {
  const entries = await fs.readdir(folder, { recursive: true });
  return entries.map(String).sort();
}

test('hostile members: ../ and absolute names, links — keys are data, nothing is written or read outside', async () => {
  const work = path.join(dir, 'hostile');
  await fs.mkdir(work);
  const outside = path.join(dir, 'outside-target');
  const shard = path.join(work, 'evil.tar');
  writeTar(shard, [
    ...sampleEntries('../../outside-target', { jpg: photo('astronaut.jpg') }),
    ...sampleEntries(`${work}/abs`, { png: photo('brick.png') }),
    { name: 'lnk.jpg', type: 'symlink', link: path.join(IMAGES, 'coffee.jpg') },
    { name: 'hard.jpg', type: 'hardlink', link: '../../outside-target.jpg' },
  ]);
  const r = await runCli(['tokenize', '--codebook', codebook, shard, '--out', 'out/', '--json', '--quiet'], { cwd: work });
  assertBounded(r, 'hostile names');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual({ ...JSON.parse(r.stdout), seconds: 0 }, { shards: 1, images: 2, done: 1, skipped: 0, failed: [], seconds: 0, slurm: null });
  const index = JSON.parse(await fs.readFile(path.join(work, 'out/evil.tokens.npy.index.json'), 'utf8'));
  assert.deepEqual(index.images, ['../../outside-target', `${work}/abs`]);
  assert.deepEqual(index.skipped.map((s: { key: string }) => s.key), ['lnk', 'hard']);
  await assert.rejects(fs.stat(outside), 'nothing written by a member name');
  assert.deepEqual(await treeOf(work), ['evil.tar', 'out', 'out/evil.done.json', 'out/evil.tokens.npy', 'out/evil.tokens.npy.index.json', 'out/manifest.json']);
});

test('a header claiming 8 GiB fails its shard alone, before anything is allocated; the other shard is done', async () => {
  const work = path.join(dir, 'huge');
  await fs.mkdir(work);
  const good = path.join(work, 'good.tar');
  writeTar(good, sampleEntries('k', { jpg: photo('astronaut.jpg') }), 'gnu');
  const tar = new Uint8Array(await fs.readFile(good));
  claimTarSize(tar, 0, 8 * 2 ** 30);
  await fs.writeFile(path.join(work, 'huge.tar'), tar);
  const r = await runCli(['tokenize', '--codebook', codebook, 'good.tar', 'huge.tar', '--out', 'out/', '--json', '--quiet'], { cwd: work });
  assertBounded(r, '8 GiB header');
  assert.equal(r.code, 2, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.deepEqual([summary.done, summary.images], [1, 1]);
  assert.deepEqual(summary.failed, [{ shard: 'huge.tar', error: `truncated tar archive (a member at byte 0 claims ${8 * 2 ** 30} bytes; ${tar.length - 512} are left)` }]);
  assert.ok(r.peakRssMb! < 400, `peak RSS ${r.peakRssMb} MB`);
});

test('20,000 empty members: each sample skipped with why, in bounded memory and time', async () => {
  const work = path.join(dir, 'many');
  await fs.mkdir(work);
  const entries: TarEntry[] = Array.from({ length: 20_000 }, (_, i) => ({ name: `${String(i).padStart(5, '0')}.${i % 2 ? 'jpg' : 'txt'}`, data: '' }));
  writeTar(path.join(work, 'many.tar'), [...entries, ...sampleEntries('last', { jpg: photo('coffee.jpg') })], 'ustar');
  const r = await runCli(['tokenize', '--codebook', codebook, 'many.tar', '--out', 'out/', '--json', '--quiet'], { cwd: work });
  assertBounded(r, '20,000 empty members');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual([JSON.parse(r.stdout).images, JSON.parse(r.stdout).done], [1, 1]);
  const index = JSON.parse(await fs.readFile(path.join(work, 'out/many.tokens.npy.index.json'), 'utf8'));
  assert.deepEqual(index.images, ['last']);
  assert.equal(index.skipped.length, 20_000);
  assert.deepEqual(index.skipped[0], { key: '00000', reason: 'no image member' });
  assert.match(index.skipped[1].reason, /^00001: cannot read image/);
});

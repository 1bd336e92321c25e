// Kills and cancels through the real CLI. A write is SIGKILLed at each of its stages (the test
// hook UNICODE2_TEST_KILL_AT=<stage>:<file name> makes the process kill itself there), and a
// build is SIGKILLed and Ctrl-C'd in each of its phases (embedding, k-means, writing): the
// previous output must stay byte-identical (sha256) until a new one is complete, and the next run
// must succeed and leave no temp file, lock or corpus folder behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { encodeNpy } from '../../extension/engine/io/formats/npy.js';
import { seededRandom } from '../../extension/engine/core/sampling.js';
import { assertBounded, assertRefused, IMAGES, ROOT, runCli, tempDir, type Run } from './harness.js';

let dir: string;
let codebook: string;

before(async () => {
  execFileSync(process.execPath, ['scripts/build.mjs', '--quiet'], { cwd: ROOT, stdio: 'inherit' });
  dir = await tempDir('kill');
  codebook = path.join(dir, 'cb.safetensors');
  await ok(['build', '--images', IMAGES, '--k', '32', '--iters', '3', '--out', codebook]);
});
after(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

const sha = async (file: string) => createHash('sha256').update(await fs.readFile(file)).digest('hex');

async function ok(args: string[]): Promise<Run> {
  const r = await runCli([...args, '--quiet']);
  assertBounded(r, args.join(' '));
  assert.equal(r.code, 0, `${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
  return r;
}

/** Runs the CLI with the kill hook at `at`, and checks it died by SIGKILL. */
async function killedAt(at: string, args: string[]): Promise<void> {
  const r = await runCli([...args, '--quiet'], { env: { UNICODE2_TEST_KILL_AT: at } });
  assert.equal(r.signal, 'SIGKILL', `${at}: expected the hook to kill the run, got exit ${r.code}\n${r.stderr}`);
}

const tempsOf = async (folder: string, name: string) => (await fs.readdir(folder)).filter((n) => n.startsWith(`.${name}.`) && n.endsWith('.tmp'));

async function queries(name: string, rows: number, seed: number): Promise<string> {
  const random = seededRandom(seed);
  const file = path.join(dir, name);
  await fs.writeFile(file, encodeNpy({ shape: [rows, 768], dtype: 'float32', data: Float32Array.from({ length: rows * 768 }, () => random()) }));
  return file;
}

test('SIGKILL at every stage of a write: the old file until the rename, the whole new one after; the next write sweeps the temp files', async () => {
  const sub = path.join(dir, 'stages');
  await fs.mkdir(sub);
  const out = path.join(sub, 'ids.npy');
  const search = (q: string, target = out) => ['search', '--codebook', codebook, '--queries', q, '--out', target];
  const q = await queries('q.npy', 500, 1);
  const reference = path.join(dir, 'ids-reference.npy');
  await ok(search(q, reference));
  const previous = path.join(dir, 'ids-previous.npy');
  await ok(search(await queries('other.npy', 50, 2), previous));
  const [oldSha, newSha] = [await sha(previous), await sha(reference)];
  const size = (await fs.stat(reference)).size;

  for (const stage of ['temp-created', 'temp-partial', 'temp-written', 'renamed']) {
    await fs.copyFile(previous, out);
    await killedAt(`${stage}:ids.npy`, search(q));
    assert.equal(await sha(out), stage === 'renamed' ? newSha : oldSha, `killed at ${stage}`);
    const temps = await tempsOf(sub, 'ids.npy');
    if (stage === 'renamed') {
      assert.deepEqual(temps, [], `killed at ${stage}: no temp file`);
    } else {
      // The kill really landed inside the write: its temp file is there, as far as it got.
      assert.equal(temps.length, 1, `killed at ${stage}: ${temps.join(', ')}`);
      const written = (await fs.stat(path.join(sub, temps[0]!))).size;
      const expected = { 'temp-created': [0, 0], 'temp-partial': [1, size - 1], 'temp-written': [size, size] }[stage]!;
      assert.ok(written >= expected[0]! && written <= expected[1]!, `killed at ${stage}: temp holds ${written} of ${size} bytes`);
    }
    await ok(search(q));
    assert.equal(await sha(out), newSha, `after ${stage}: the next write completes`);
    assert.deepEqual(await tempsOf(sub, 'ids.npy'), [], `after ${stage}: the dead writer's temp file was swept`);
  }
});

test('a token data set killed between its two renames is refused as mismatched, never misread; before them both old files stay', async () => {
  const sub = path.join(dir, 'pair');
  await fs.mkdir(sub);
  const data = path.join(sub, 'data.npy');
  const tokenize = (images: string[]) => ['tokenize', '--codebook', codebook, ...images.map((i) => path.join(IMAGES, i)), '--out', data];
  await ok(tokenize(['astronaut.jpg', 'coffee.jpg']));
  const before = [await sha(data), await sha(`${data}.index.json`)];

  // Both temp files written, nothing renamed yet: the old pair is whole.
  await killedAt('temp-written:data.npy.index.json', tokenize(['chelsea.png', 'brick.png', 'grass.png']));
  assert.deepEqual([await sha(data), await sha(`${data}.index.json`)], before);
  await ok(['stats', '--codebook', codebook, '--tokens', data]);

  // The data renamed, the index not: the pair does not match, and says so.
  await killedAt('renamed:data.npy', tokenize(['chelsea.png', 'brick.png', 'grass.png']));
  assert.notEqual(await sha(data), before[0]);
  assert.equal(await sha(`${data}.index.json`), before[1]);
  const r = await runCli(['stats', '--codebook', codebook, '--tokens', data, '--quiet']);
  assertRefused(r, /data\.npy does not belong to its index .*data\.npy\.index\.json \(the data file has \d+ bytes, the index says \d+\)/, 'stats on a mismatched pair');

  await ok(tokenize(['chelsea.png', 'brick.png', 'grass.png']));
  const stats = JSON.parse((await ok(['stats', '--codebook', codebook, '--tokens', data, '--json'])).stdout);
  assert.equal(stats.tokens, 14 * 21 + 2 * 196); // chelsea keeps its 3:2 shape, brick and grass are square
  assert.deepEqual((await fs.readdir(sub)).sort(), ['data.npy', 'data.npy.index.json']);
});

/** A folder of 24 photos: long enough an embedding phase to land a signal in. */
async function manyPhotos(): Promise<string> {
  const folder = path.join(dir, 'many');
  await fs.mkdir(folder, { recursive: true });
  const photos = (await fs.readdir(IMAGES)).filter((n) => /\.(jpg|png)$/.test(n));
  for (let i = 0; i < 24; i++) await fs.copyFile(path.join(IMAGES, photos[i % photos.length]!), path.join(folder, `${i}-${photos[i % photos.length]}`));
  return folder;
}

/** Runs a build that is stopped with `signal` in `phase`: at its first progress line of that
 *  phase, or (phase 'write', SIGKILL only: a write is not cancellable, it is atomic) by the kill
 *  hook half-way through writing the codebook. */
function stoppedBuild(images: string, out: string, phase: 'embed' | 'kmeans' | 'write', signal: 'SIGKILL' | 'SIGINT'): Promise<Run> {
  const args = ['build', '--images', images, '--k', '64', '--iters', phase === 'write' ? '2' : '100000', '--tolerance', '0', '--out', out];
  if (phase === 'write') return runCli(args, { env: { UNICODE2_TEST_KILL_AT: 'temp-partial:cb.safetensors' } });
  let sent = false;
  return runCli(args, {
    onStderr: (stderr, child) => {
      if (!sent && new RegExp(`^${phase} `, 'm').test(stderr)) {
        sent = true;
        child.kill(signal);
      }
    },
  });
}

/** A folder `name` holding a previous codebook (its sha256 returned), and the 24 photos to
 *  build a new one from. */
async function previousCodebook(name: string): Promise<{ images: string; sub: string; out: string; previous: string }> {
  const images = await manyPhotos();
  const sub = path.join(dir, name);
  await fs.mkdir(sub);
  const out = path.join(sub, 'cb.safetensors');
  await ok(['build', '--images', path.join(IMAGES, 'formats'), '--k', '8', '--iters', '2', '--out', out]);
  return { images, sub, out, previous: await sha(out) };
}

test('a build killed (SIGKILL) in each phase leaves the previous codebook intact; the next build takes over its lock and leaves nothing behind', async () => {
  const { images, sub, out, previous } = await previousCodebook('build-kill');
  for (const phase of ['embed', 'kmeans', 'write'] as const) {
    const r = await stoppedBuild(images, out, phase, 'SIGKILL');
    assert.equal(r.signal, 'SIGKILL', `${phase}: exit ${r.code}\n${r.stderr}`);
    if (phase !== 'write') assert.match(r.stderr, new RegExp(`^${phase} `, 'm'));
    assert.equal(await sha(out), previous, `killed in ${phase}: the previous codebook is byte-identical`);
    assert.ok((await fs.readdir(sub)).includes('cb.safetensors.lock'), `killed in ${phase}: the dead build's lock is left`);
  }
  assert.equal((await tempsOf(sub, 'cb.safetensors')).length, 1, 'the write killed half-way left its temp file');
  await ok(['build', '--images', path.join(IMAGES, 'formats'), '--k', '4', '--iters', '2', '--out', out]);
  assert.notEqual(await sha(out), previous);
  assert.deepEqual(await fs.readdir(sub), ['cb.safetensors'], 'no temp file, lock or corpus folder after the next build');
});

test('a build cancelled (Ctrl-C) in each phase exits 130 and leaves the previous codebook and nothing else', async () => {
  const { images, sub, out, previous } = await previousCodebook('build-cancel');
  for (const phase of ['embed', 'kmeans'] as const) {
    const r = await stoppedBuild(images, out, phase, 'SIGINT');
    assertBounded(r, `cancelled in ${phase}`);
    assert.equal(r.code, 130, `${phase}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, /^unicode2: cancelled$/m);
    assert.equal(await sha(out), previous, `cancelled in ${phase}`);
    assert.deepEqual(await fs.readdir(sub), ['cb.safetensors'], `cancelled in ${phase}: no temp file, lock or corpus folder`);
  }
});

test('two builds to one output: the second is refused, naming the first one\'s pid, while the first runs', async () => {
  const sub = path.join(dir, 'two');
  await fs.mkdir(sub);
  const out = path.join(sub, 'cb.safetensors');
  let second: Run | undefined;
  let firstPid = 0;
  const first = await runCli(['build', '--images', IMAGES, '--k', '64', '--iters', '100000', '--tolerance', '0', '--out', out], {
    onStderr: (stderr, child) => {
      if (firstPid || !/^kmeans /m.test(stderr)) return;
      firstPid = child.pid!;
      void runCli(['build', '--images', IMAGES, '--k', '4', '--out', out, '--quiet']).then((r) => {
        second = r;
        child.kill('SIGINT');
      });
    },
  });
  assert.equal(first.code, 130, first.stderr);
  assertRefused(second!, new RegExp(`another build is writing ${out.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\(pid ${firstPid}\\); wait for it or choose another output$`), 'the second build');
  assert.deepEqual(await fs.readdir(sub), [], 'the cancelled first build leaves no file and no lock');
});

// Models named by Hugging Face id and not in the local cache are downloaded into it, in the layout
// Python's huggingface_hub writes, from a stand-in for the hub on the loopback (test/helpers/
// hub-server.ts: API, resolve redirects to another origin, ETags, Range): only the files needed,
// the token sent to the hub and not to the CDN, a wrong checksum refused with nothing placed, a cut
// connection and a cancelled run resumed, offline use, and one line for an id the hub lacks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ComputeBackend } from '../../native-gpu/backend.js';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import { openEncoder, type EncoderOptions } from '../../extension/engine/embed/encoders/index.js';
import { CancelledError, UserError } from '../../common/errors.js';
import { dctVisionTower, FAMILY_CONFIGS } from '../helpers/siglip-model.js';
import { startHubServer, type HubServer } from '../helpers/hub-server.js';

const photo = path.join(__dirname, '../fixtures/images/chelsea.png');
const isUserError = (message: RegExp) => (e: Error) => e instanceof UserError && message.test(e.message) && !e.message.includes('\n');
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const utf8 = (s: string) => new TextEncoder().encode(s);
const COMMIT = 'c'.repeat(40);
const TOKEN = 'hf_test_secret_token';

const siglip = FAMILY_CONFIGS.siglip(16, 224);
const model = dctVisionTower();
// external data beside the model: fetched with it, and part of the weights' identity
const data = new Uint8Array(300_000).map((_, i) => (i * 7) & 255);
const repoFiles = {
  'config.json': utf8(JSON.stringify(siglip.config)),
  'preprocessor_config.json': utf8(JSON.stringify(siglip.preprocessor)),
  'onnx/vision_model.onnx': model,
  'onnx/vision_model.onnx_data': data,
  // not needed for the vision tower at fp32: never fetched
  'onnx/vision_model_fp16.onnx': utf8('not this one'),
  'onnx/text_model.onnx': utf8('nor this'),
  'tokenizer.json': utf8('{}'),
  'README.md': utf8('# tiny'),
  // a name that only starts like external data: never fetched (it would land outside the snapshot)
  'onnx/vision_model.onnx_data/../../../../escape': utf8('outside'),
};

let backend: ComputeBackend;
let tmp: string;
let hub: HubServer;
const savedEnv = { ...process.env };
const ENV_KEYS = ['HF_HUB_CACHE', 'HF_HOME', 'HF_HUB_OFFLINE', 'HF_ENDPOINT', 'HF_TOKEN'];

const { 'onnx/vision_model_fp16.onnx': _fp16, ...fp32Only } = repoFiles;

test.before(async () => {
  backend = await createCpuBackend();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'hub-download-'));
  hub = await startHubServer({ 'org/tiny': { commit: COMMIT, files: repoFiles }, 'org/fp32-only': { commit: 'd'.repeat(40), files: fp32Only } });
});
test.after(async () => {
  await hub.close();
  await backend.dispose();
  await fs.rm(tmp, { recursive: true, force: true });
});
/** Each test: a fresh cache, the hub stand-in as HF_ENDPOINT, a token, no faults. */
test.beforeEach(async (t) => {
  process.env.HF_HUB_CACHE = path.join(tmp, t.name.replace(/\W+/g, '-').slice(0, 40));
  process.env.HF_ENDPOINT = hub.endpoint;
  process.env.HF_TOKEN = TOKEN;
  delete process.env.HF_HUB_OFFLINE;
  hub.seen.length = 0;
  for (const set of [hub.tamper, hub.cutOnce, hub.pauseOnce]) set.clear();
});
test.afterEach(() => {
  for (const key of ENV_KEYS) {
    if (savedEnv[key] === undefined) delete process.env[key];
    else process.env[key] = savedEnv[key];
  }
});

async function encodeWith(spec: string, options: EncoderOptions = {}) {
  const e = await openEncoder(spec, backend, options);
  try {
    return { data: (await e.encode([await e.load(photo)])).data, descriptor: e.descriptor };
  } finally {
    await e.dispose();
  }
}

const repoDir = () => path.join(process.env.HF_HUB_CACHE!, 'models--org--tiny');
const exists = (file: string) => fs.lstat(file).then(() => true, () => false);

test('an id not in the cache is downloaded into the cache layout Python uses: only the files needed, verified, the token kept from the CDN', async () => {
  const progress: number[] = [];
  const got = await encodeWith('org/tiny', { download: { onProgress: (e) => (assert.equal(e.phase, 'download'), progress.push(e.done)) } });
  assert.deepEqual(got.descriptor.model, {
    repo: 'org/tiny', revision: COMMIT, file: 'onnx/vision_model.onnx', precision: 'fp32', layer: null,
    sha256: { 'onnx/vision_model.onnx': sha256(model), 'onnx/vision_model.onnx_data': sha256(data) },
  });
  assert.equal(got.descriptor.id, `org/tiny@${COMMIT}`);
  // the same embeddings as the model from a folder
  const folder = path.join(tmp, 'as-folder');
  for (const f of ['config.json', 'preprocessor_config.json', 'onnx/vision_model.onnx']) {
    await fs.mkdir(path.dirname(path.join(folder, f)), { recursive: true });
    await fs.writeFile(path.join(folder, f), repoFiles[f as keyof typeof repoFiles]);
  }
  assert.deepEqual(got.data, (await encodeWith(folder)).data);

  // huggingface_hub's layout: refs/main -> commit; snapshot entries link to blobs named by ETag
  assert.equal(await fs.readFile(path.join(repoDir(), 'refs', 'main'), 'utf8'), COMMIT);
  const snapshot = path.join(repoDir(), 'snapshots', COMMIT);
  const entry = path.join(snapshot, 'onnx', 'vision_model.onnx');
  assert.equal(await fs.readlink(entry), path.join('..', '..', '..', 'blobs', sha256(model)));
  const gitSha1 = createHash('sha1').update(`blob ${repoFiles['config.json'].length}\0`).update(repoFiles['config.json']).digest('hex');
  assert.equal(await fs.readlink(path.join(snapshot, 'config.json')), path.join('..', '..', 'blobs', gitSha1));
  const placed = (await fs.readdir(snapshot, { recursive: true })).sort();
  assert.deepEqual(placed, ['config.json', 'onnx', 'onnx/vision_model.onnx', 'onnx/vision_model.onnx_data', 'preprocessor_config.json']);
  assert.deepEqual((await fs.readdir(path.join(repoDir(), 'blobs'))).filter((n) => !/^[0-9a-f]{40}$|^[0-9a-f]{64}$/.test(n)), [], 'no .incomplete left');

  // the token went to the hub on every request there, and never to the CDN host the LFS files redirect to
  const hubSeen = hub.seen.filter((s) => s.server === 'hub');
  const cdnSeen = hub.seen.filter((s) => s.server === 'cdn');
  assert.ok(hubSeen.length >= 5 && hubSeen.every((s) => s.authorization === `Bearer ${TOKEN}`));
  assert.deepEqual(cdnSeen.map((s) => [s.url, s.authorization]), [[`/blobs/${sha256(model)}`, undefined], [`/blobs/${sha256(data)}`, undefined]]);
  assert.ok(!hub.seen.some((s) => /fp16|text_model|tokenizer|README|escape/.test(s.url)), 'only the files needed');
  assert.equal(progress.at(-1), data.length, 'progress counts bytes');

  // a snapshot lacking a file (Python fetched only some): only that one is fetched
  await fs.rm(entry);
  hub.seen.length = 0;
  await encodeWith('org/tiny');
  assert.deepEqual(hub.seen.filter((s) => s.method === 'GET' && !s.url.startsWith('/api/')).map((s) => s.url), [], 'its blob was still there: linked, not fetched');
  assert.equal(await fs.readlink(entry), path.join('..', '..', '..', 'blobs', sha256(model)));

  // again: from the cache, not a single request; offline too
  hub.seen.length = 0;
  await encodeWith('org/tiny');
  process.env.HF_HUB_OFFLINE = '1';
  await encodeWith('org/tiny');
  assert.deepEqual(hub.seen, []);
});

test('a file whose bytes are not what its ETag names is refused, and nothing of it is placed', async () => {
  hub.tamper.add('onnx/vision_model.onnx');
  await assert.rejects(encodeWith('org/tiny'), isUserError(/encoder 'org\/tiny': the download of onnx\/vision_model\.onnx from 127\.0\.0\.1:\d+ has sha256 [0-9a-f]{12}…, not [0-9a-f]{12}… as the hub's ETag says: refused, nothing kept; try again/));
  const blobs = await fs.readdir(path.join(repoDir(), 'blobs'));
  assert.ok(!blobs.some((b) => b.startsWith(sha256(model))), blobs.join());
  assert.equal(await exists(path.join(repoDir(), 'snapshots', COMMIT, 'onnx', 'vision_model.onnx')), false);
  assert.equal(await exists(path.join(repoDir(), 'refs', 'main')), false, 'no ref to a snapshot without its model');
  // a plain file checked by its git blob sha1 is refused the same way
  hub.tamper.clear();
  hub.tamper.add('preprocessor_config.json');
  await assert.rejects(encodeWith('org/fp32-only'), isUserError(/preprocessor_config\.json .* has git blob sha1 [0-9a-f]{12}…, not/));
  // the server fixed: the download completes
  hub.tamper.clear();
  await encodeWith('org/tiny');
});

test('a connection cut mid-file is resumed from where it broke (Range), and a cancelled download the next time', async () => {
  hub.cutOnce.add('onnx/vision_model.onnx_data');
  await encodeWith('org/tiny');
  const gets = hub.seen.filter((s) => s.server === 'cdn' && s.url === `/blobs/${sha256(data)}`);
  assert.equal(gets.length, 2);
  assert.equal(gets[0]!.range, undefined);
  const from = Number(/^bytes=(\d+)-$/.exec(gets[1]!.range ?? '')?.[1]);
  assert.ok(from > 0 && from < data.length, `resumed from ${gets[1]!.range}`);

  // cancelled halfway: CancelledError, the part kept as .incomplete, resumed by the next run
  process.env.HF_HUB_CACHE = path.join(tmp, 'cancelled');
  hub.seen.length = 0;
  hub.pauseOnce.add('onnx/vision_model.onnx_data');
  const stop = new AbortController();
  const opening = encodeWith('org/tiny', { download: { signal: stop.signal, onProgress: (e) => e.message?.startsWith('onnx/vision_model.onnx_data') && e.done > 0 && stop.abort() } });
  await assert.rejects(opening, (e) => e instanceof CancelledError);
  hub.resume();
  const partial = path.join(repoDir(), 'blobs', `${sha256(data)}.incomplete`);
  const kept = (await fs.stat(partial)).size;
  assert.ok(kept > 0 && kept < data.length);
  assert.equal(await exists(path.join(repoDir(), 'refs', 'main')), false);
  hub.seen.length = 0;
  const again = await encodeWith('org/tiny');
  assert.equal(again.descriptor.model!.sha256['onnx/vision_model.onnx_data'], sha256(data));
  assert.deepEqual(hub.seen.filter((s) => s.server === 'cdn').map((s) => s.range), [`bytes=${kept}-`]);
  assert.equal(await exists(partial), false);
});

test('offline: no request; a model not in the cache is one line saying HF_HUB_OFFLINE is set', async () => {
  process.env.HF_HUB_OFFLINE = '1';
  await assert.rejects(encodeWith('org/tiny'), isUserError(/encoder 'org\/tiny': not a folder here, and not in the Hugging Face cache at .* \(HF_HUB_OFFLINE is set\); download it: name it by its id with HF_HUB_OFFLINE unset/));
  assert.deepEqual(hub.seen, []);
});

test('an id or revision the hub lacks, a precision the repo lacks, an unreachable hub: one line each, nothing cached', async () => {
  await assert.rejects(encodeWith('org/absent'), isUserError(/^encoder 'org\/absent': http:\/\/127\.0\.0\.1:\d+ has no such model; check the id \(org\/name\[@revision\]\)$/));
  await assert.rejects(encodeWith('org/tiny@v9'), isUserError(/^encoder 'org\/tiny@v9': http:\/\/127\.0\.0\.1:\d+ has no such revision; check the revision/));
  await assert.rejects(encodeWith('org/fp32-only', { precision: 'fp16' }), isUserError(/^org\/fp32-only: no fp16 model in the repo \(looked for model_fp16\.onnx, .*\); it has fp32; choose one of those with --precision$/));
  assert.equal(await exists(process.env.HF_HUB_CACHE!), false);
  // a closed port on the loopback: the hub cannot be reached
  const closed = await startHubServer({});
  const endpoint = closed.endpoint;
  await closed.close();
  process.env.HF_ENDPOINT = endpoint;
  await assert.rejects(encodeWith('org/tiny'), isUserError(/^encoder 'org\/tiny': cannot reach http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\); .*HF_HUB_OFFLINE=1/));
});

test('CLI: a model the hub lacks is one line, exit 2; a download shows its bytes on stderr, never the token', async () => {
  const { cliRunner } = await import('../helpers/cli.js');
  const run = cliRunner(() => tmp);
  await run.assertUserError(['embed', photo, '--out', 'x.npy', '--encoder', 'org/absent'], /^unicode2: encoder 'org\/absent': http:\/\/127\.0\.0\.1:\d+ has no such model; check the id/);
  const r = await run.cli(['embed', photo, '--out', 'cli.npy', '--encoder', 'org/tiny', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /download \d+\/300000 100%, onnx\/vision_model\.onnx_data, /);
  assert.ok(!r.stderr.includes(TOKEN) && !r.stdout.includes(TOKEN), 'the token is never printed');
  assert.deepEqual(JSON.parse(r.stdout).shape, [196, 768]);
});

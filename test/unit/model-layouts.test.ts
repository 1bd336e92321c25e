// The layouts real exports write (onnx-community / Transformers.js folders with precision variants,
// optimum's model.onnx + model.onnx_data, combined image+text models, f16 inputs and outputs,
// hidden_states outputs for --layer), models named by Hugging Face id from a local cache folder
// the test makes as huggingface_hub does, the model identity a descriptor records, and the one
// line each bad input gets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ComputeBackend } from '../../native-gpu/backend.js';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import { checkSameModel, ENCODER_KINDS, imageGrid, openCodebookEncoder, openEncoder, openEncoderFromDescriptor, validateEncoderDescriptor, type Encoder, type EncoderOptions } from '../../extension/engine/embed/encoders/index.js';
import { UserError } from '../../common/errors.js';
import { GraphBuilder } from '../../native-gpu/cpu/onnx-graph.js';
import { dctVisionTower, FAMILY_CONFIGS, writeExportFolder } from '../helpers/siglip-model.js';

const photo = path.join(__dirname, '../fixtures/images/chelsea.png');
const isUserError = (message: RegExp) => (e: Error) => e instanceof UserError && message.test(e.message) && !e.message.includes('\n');
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

let backend: ComputeBackend;
let tmp: string;
const savedEnv = { ...process.env };
test.before(async () => {
  backend = await createCpuBackend();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'layouts-'));
});
test.after(async () => {
  await backend.dispose();
  await fs.rm(tmp, { recursive: true, force: true });
});
test.afterEach(() => {
  for (const key of ['HF_HUB_CACHE', 'HF_HOME', 'HF_HUB_OFFLINE', 'HF_ENDPOINT']) {
    if (savedEnv[key] === undefined) delete process.env[key];
    else process.env[key] = savedEnv[key];
  }
});

async function encodeWith(spec: string, options: EncoderOptions = {}): Promise<{ data: Float32Array; encoder: Encoder['descriptor'] }> {
  const e = await openEncoder(spec, backend, options);
  try {
    return { data: (await e.encode([await e.load(photo)])).data, encoder: e.descriptor };
  } finally {
    await e.dispose();
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const siglip = FAMILY_CONFIGS.siglip(16, 224);

/** An onnx-community style repo: onnx/vision_model{,_fp16,_q4}.onnx and a combined onnx/model.onnx. */
async function communityFolder(dir: string): Promise<string> {
  await writeExportFolder(dir, { hiddenStates: 3 }, { modelPath: 'onnx/vision_model.onnx', ...siglip });
  await fs.writeFile(path.join(dir, 'onnx/vision_model_fp16.onnx'), dctVisionTower({ f16Io: true }));
  // the q4 file: another file of the same tower (its bytes differ: a batch of 1)
  await fs.writeFile(path.join(dir, 'onnx/vision_model_q4.onnx'), dctVisionTower({ batch: 1 }));
  return dir;
}

test('onnx-community folders: --precision picks the file, f16 inputs and outputs are converted, --layer picks a hidden state', async () => {
  const dir = await communityFolder(path.join(tmp, 'community'));
  const fp32 = await encodeWith(dir);
  assert.deepEqual(fp32.encoder.model, {
    file: 'onnx/vision_model.onnx', sha256: { 'onnx/vision_model.onnx': sha256(await fs.readFile(path.join(dir, 'onnx/vision_model.onnx'))) }, precision: 'fp32', layer: null,
  });
  const fp16 = await encodeWith(dir, { precision: 'fp16' });
  assert.equal(fp16.encoder.model!.file, 'onnx/vision_model_fp16.onnx');
  // f16 pixel values and tokens: within f16's rounding of the f32 model's
  const scale = fp32.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  assert.ok(maxAbsDiff(fp16.data, fp32.data) < scale * 2e-3, `f16 differs by ${maxAbsDiff(fp16.data, fp32.data)}`);
  assert.ok(maxAbsDiff(fp16.data, fp32.data) > 0, 'the f16 model ran in f16');
  assert.equal((await encodeWith(dir, { precision: 'q4' })).encoder.model!.file, 'onnx/vision_model_q4.onnx');
  await assert.rejects(openEncoder(dir, backend, { precision: 'q8' }), isUserError(/no q8 model \(looked for model_quantized\.onnx, .*onnx\/model_quantized\.onnx\); it has fp32, fp16, q4; choose one of those with --precision/));

  // hidden_states.i = (i + 1) x the tokens: layer -2 of 3 is hidden_states.1, twice the last_hidden_state
  const penultimate = await encodeWith(dir, { layer: -2 });
  assert.equal(penultimate.encoder.model!.layer, -2);
  assert.ok(maxAbsDiff(penultimate.data, fp32.data.map((v) => 2 * v)) < 1e-4);
  assert.ok(maxAbsDiff((await encodeWith(dir, { layer: 0 })).data, fp32.data) < 1e-4);
  await assert.rejects(openEncoder(dir, backend, { layer: 3 }), isUserError(/layer 3 is outside the export's 3 hidden states \(0 to 2, or -1 to -3 from the last\); give --layer in that range/));
  await assert.rejects(openEncoder(dir, backend, { precision: 'fp16', layer: -1 }), isUserError(/vision_model_fp16\.onnx: choosing a layer needs an export with hidden_states\.0 \.\.\. hidden_states\.N outputs; this one has 'last_hidden_state'/));
  await assert.rejects(openEncoder('dct', backend, { precision: 'fp16' }), isUserError(/the 'dct' encoder has none/));
});

test('a patch that leaves a margin (SigLIP-so400m-patch14-384: 384 px = 27 patches of 14 + 6 px): a 27 x 27 grid, from the config or, without one, from the tokens', async () => {
  const so400m = FAMILY_CONFIGS.siglip(14, 384);
  const configured = await writeExportFolder(path.join(tmp, 'so400m-geometry'), { size: 384, patch: 14 }, so400m);
  const bare = await writeExportFolder(path.join(tmp, 'so400m-bare'), { size: 384, patch: 14 }, { preprocessor: so400m.preprocessor });
  for (const dir of [configured, bare]) {
    const e = await openEncoder(dir, backend);
    try {
      assert.deepEqual([e.patch, e.inputSize, e.tokensPerImage.max, e.d], [14, [384, 384], 729, 588], dir);
      const image = await e.load(photo);
      assert.deepEqual(imageGrid(image, e.patch), [27, 27]);
      const out = await e.encode([image]);
      assert.deepEqual([out.rows, out.cols], [729, 588]);
    } finally {
      await e.dispose();
    }
  }
});

test('a combined image+text model is refused naming the vision tower to use', async () => {
  const g = new GraphBuilder('clip');
  g.input('input_ids', 'int64', ['B', 'S']);
  g.input('pixel_values', 'float32', ['B', 3, 224, 224]);
  g.node('ReduceMean', ['pixel_values'], ['image_embeds'], { axes: [2, 3], keepdims: 0 });
  g.output('image_embeds', 'float32', ['B', 3]);
  const dir = path.join(tmp, 'combined');
  await fs.mkdir(path.join(dir, 'onnx'), { recursive: true });
  await fs.writeFile(path.join(dir, 'onnx/model.onnx'), g.toModel());
  await assert.rejects(openEncoder(dir, backend), isUserError(/onnx\/model\.onnx: a combined image\+text model \(inputs 'input_ids' \[B,S\] int64, 'pixel_values' .*\) has no patch tokens of the image alone; use its vision tower, onnx\/vision_model\.onnx/));
});

test('optimum exports: model.onnx with its weights in model.onnx_data, both hashed', async () => {
  const dir = await writeExportFolder(path.join(tmp, 'optimum'), { externalData: 'model.onnx_data' }, siglip);
  const inline = await writeExportFolder(path.join(tmp, 'inline'), {}, siglip);
  const [external, plain] = [await encodeWith(dir), await encodeWith(inline)];
  assert.ok(maxAbsDiff(external.data, plain.data) < 1e-6);
  assert.deepEqual(Object.keys(external.encoder.model!.sha256), ['model.onnx', 'model.onnx_data']);
  assert.equal(external.encoder.model!.sha256['model.onnx_data'], sha256(await fs.readFile(path.join(dir, 'model.onnx_data'))));
});

test('a config that disagrees with the model, or names what is not implemented: one line each', async () => {
  const cases: [string, Parameters<typeof writeExportFolder>[1], Record<string, unknown>, Record<string, unknown>, RegExp][] = [
    ['patch', { patch: 16 }, { model_type: 'siglip_vision_model', patch_size: 14, image_size: 224 }, siglip.preprocessor, /config\.json \(siglip_vision_model, patch 14, 0 leading tokens\) means 256 tokens for a 224x224 input, but the model gives 196/],
    ['whole patches', { patch: 16 }, { model_type: 'siglip_vision_model', patch_size: 17, image_size: 224 }, siglip.preprocessor, /\(siglip_vision_model, patch 17, 0 leading tokens\) means 169 tokens for a 224x224 input, but the model gives 196/],
    ['size', { dynamicSize: true }, { model_type: 'siglip_vision_model', patch_size: 16, image_size: 384 }, siglip.preprocessor, /config\.json \(siglip_vision_model\) is made for 384x384 inputs but preprocessor_config\.json gives 224x224/],
    ['registers', { patch: 14, dynamicSize: true, extraTokens: 1 }, FAMILY_CONFIGS.dinov2(14, 224, 4).config, FAMILY_CONFIGS.dinov2(14, 224).preprocessor, /\(dinov2_with_registers, patch 14, 5 leading tokens\) means 261 tokens .* but the model gives 257/],
    ['family', {}, { model_type: 'convnext' }, siglip.preprocessor, /model_type "convnext" is not supported; supported: siglip, siglip_vision_model, clip, clip_vision_model, dinov2, dinov2_with_registers/],
    ['naflex', {}, { model_type: 'siglip2', vision_config: { model_type: 'siglip2_vision_model', patch_size: 16 } }, siglip.preprocessor, /"siglip2_vision_model" is not supported \(SigLIP2's variable-resolution NaFlex models/],
    ['processor', {}, siglip.config, { image_processor_type: 'ConvNextImageProcessor' }, /image processor "ConvNextImageProcessor" is not implemented \(supported: SiglipImageProcessor/],
  ];
  for (const [name, opts, config, preprocessor, message] of cases) {
    const dir = await writeExportFolder(path.join(tmp, `bad-${name}`), opts, { config, preprocessor });
    await assert.rejects(openEncoder(dir, backend), isUserError(message), name);
  }
});

const COMMIT_A = 'a'.repeat(40);
const COMMIT_B = 'b'.repeat(40);

/** Writes `files` as snapshot `commit` of `repo` the way huggingface_hub does: blobs named by
 *  sha256, snapshot entries linking to them. */
async function cacheSnapshot(root: string, repo: string, commit: string, files: Record<string, Uint8Array | string>): Promise<string> {
  const folder = path.join(root, `models--${repo.replace('/', '--')}`);
  await fs.mkdir(path.join(folder, 'blobs'), { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    const bytes = typeof content === 'string' ? new TextEncoder().encode(content) : content;
    const blob = path.join(folder, 'blobs', sha256(bytes));
    await fs.writeFile(blob, bytes);
    const entry = path.join(folder, 'snapshots', commit, name);
    await fs.mkdir(path.dirname(entry), { recursive: true });
    await fs.symlink(path.relative(path.dirname(entry), blob), entry);
  }
  return path.join(folder, 'snapshots', commit);
}

async function setRef(root: string, repo: string, ref: string, commit: string): Promise<void> {
  const file = path.join(root, `models--${repo.replace('/', '--')}`, 'refs', ref);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, commit);
}

const configs = { 'config.json': JSON.stringify(siglip.config), 'preprocessor_config.json': JSON.stringify(siglip.preprocessor) };

test('Hugging Face ids resolve from the local cache (HF_HUB_CACHE, else HF_HOME/hub): refs, tags, commits; the codebook records id, commit and sha256', async () => {
  const root = path.join(tmp, 'hf-home', 'hub');
  const modelA = dctVisionTower();
  const modelB = dctVisionTower({ batch: 1 });
  await cacheSnapshot(root, 'org/tiny-siglip', COMMIT_A, { ...configs, 'onnx/vision_model.onnx': modelA });
  const snapshotB = await cacheSnapshot(root, 'org/tiny-siglip', COMMIT_B, { ...configs, 'onnx/vision_model.onnx': modelB });
  await setRef(root, 'org/tiny-siglip', 'main', COMMIT_A);
  await setRef(root, 'org/tiny-siglip', 'v2', COMMIT_B);
  process.env.HF_HUB_CACHE = root;
  const main = await encodeWith('org/tiny-siglip');
  assert.equal(main.encoder.id, `org/tiny-siglip@${COMMIT_A}`);
  assert.deepEqual(main.encoder.model, { repo: 'org/tiny-siglip', revision: COMMIT_A, file: 'onnx/vision_model.onnx', sha256: { 'onnx/vision_model.onnx': sha256(modelA) }, precision: 'fp32', layer: null });
  assert.equal((await encodeWith('org/tiny-siglip@v2')).encoder.model!.revision, COMMIT_B);
  assert.equal((await encodeWith(`org/tiny-siglip@${COMMIT_B}`)).encoder.id, `org/tiny-siglip@${COMMIT_B}`);
  // a folder inside the cache, named by its path, is recorded as what it is
  const byPath = await encodeWith(snapshotB);
  assert.deepEqual([byPath.encoder.id, byPath.encoder.model!.repo, byPath.encoder.model!.revision], [snapshotB, 'org/tiny-siglip', COMMIT_B]);
  delete process.env.HF_HUB_CACHE;
  process.env.HF_HOME = path.dirname(root);
  assert.equal((await encodeWith('org/tiny-siglip')).encoder.model!.revision, COMMIT_A);
  // an id not in the cache can be downloaded, unless HF_HUB_OFFLINE
  assert.ok(ENCODER_KINDS.onnx.available('org/tiny-siglip') && ENCODER_KINDS.onnx.available('org/absent'));
  process.env.HF_HUB_OFFLINE = '1';
  assert.ok(ENCODER_KINDS.onnx.available('org/tiny-siglip') && !ENCODER_KINDS.onnx.available('org/absent'));
  delete process.env.HF_HUB_OFFLINE;

  // reopened from the descriptor: the same snapshot; another model is refused by name
  const again = await openEncoderFromDescriptor(validateEncoderDescriptor(main.encoder, 'cb'), backend);
  await again.dispose();
  const cb = { meta: { encoder: main.encoder } };
  await assert.rejects(openCodebookEncoder(cb, 'org/tiny-siglip@v2', backend).then((e) => (checkSameModel(cb.meta.encoder, e.descriptor), e.dispose())),
    isUserError(/the codebook was built with org\/tiny-siglip@aaaaaaaaaaaa, onnx\/vision_model\.onnx \(fp32\), sha256 [0-9a-f]{12}, but the encoder given is org\/tiny-siglip@bbbbbbbbbbbb, .*another model's embeddings/));
  // the same weights elsewhere (a copy of the folder) are the same model
  const copy = path.join(tmp, 'copy-of-a');
  await writeExportFolder(copy, {}, { modelPath: 'onnx/vision_model.onnx', ...siglip });
  const copied = await openCodebookEncoder(cb, copy, backend);
  checkSameModel(cb.meta.encoder, copied.descriptor);
  await copied.dispose();
});

test('offline: not in the cache, missing files, a tampered blob, a malformed id: one line each', async () => {
  const root = path.join(tmp, 'cache-bad');
  process.env.HF_HUB_CACHE = root;
  process.env.HF_HUB_OFFLINE = '1';
  await assert.rejects(openEncoder('org/absent', backend), isUserError(/encoder 'org\/absent': not a folder here, and not in the Hugging Face cache at .*cache-bad \(HF_HUB_OFFLINE is set\); download it: name it by its id with HF_HUB_OFFLINE unset, or with Python's huggingface_hub \(huggingface-cli download org\/absent\)/));
  await assert.rejects(openEncoder('org/absent@v1', backend), isUserError(/cache-bad \(HF_HUB_OFFLINE is set\); download .*--revision v1/));
  await assert.rejects(openEncoder('org/absent@abc1234', backend), isUserError(/a commit must be given in full \(40 hex digits\)/));
  await assert.rejects(openEncoder('not/an/id', backend), isUserError(/encoder 'not\/an\/id': no such model folder or \.onnx file, and not a Hugging Face id/));
  await assert.rejects(openEncoder('org/../x', backend), isUserError(/not a Hugging Face id/));

  const model = dctVisionTower();
  await cacheSnapshot(root, 'org/partial', COMMIT_A, { 'onnx/vision_model.onnx': model, 'config.json': configs['config.json'] });
  await setRef(root, 'org/partial', 'main', COMMIT_A);
  await assert.rejects(openEncoder('org/partial', backend), isUserError(/org\/partial \(snapshot aaaaaaaaaaaa in the Hugging Face cache\) has no preprocessor_config\.json; download it: .*huggingface-cli download org\/partial preprocessor_config\.json --revision a{40}/));
  await cacheSnapshot(root, 'org/nomodel', COMMIT_A, configs);
  await setRef(root, 'org/nomodel', 'main', COMMIT_A);
  await assert.rejects(openEncoder('org/nomodel', backend), isUserError(/org\/nomodel .* has no onnx\/vision_model\.onnx or onnx\/model\.onnx/));
  // a blob whose bytes are not its name's sha256: truncated or altered
  const snapshot = await cacheSnapshot(root, 'org/tampered', COMMIT_A, { ...configs, 'onnx/vision_model.onnx': model });
  await setRef(root, 'org/tampered', 'main', COMMIT_A);
  await fs.appendFile(await fs.realpath(path.join(snapshot, 'onnx/vision_model.onnx')), 'x');
  await assert.rejects(openEncoder('org/tampered', backend), isUserError(/the cached file's sha256 is [0-9a-f]{12}…, not [0-9a-f]{12}… as its blob is named: a truncated or altered download/));
});

test('descriptors: the model identity is checked when read; one written before it reads as before', () => {
  const base = { kind: 'onnx', id: '/models/vit', patch: 16, inputSize: [224, 224], d: 768, resize: 'stretch' };
  const model = { repo: 'org/name', revision: COMMIT_A, file: 'onnx/vision_model.onnx', sha256: { 'onnx/vision_model.onnx': 'c'.repeat(64) }, precision: 'fp32', layer: null };
  assert.deepEqual(validateEncoderDescriptor({ ...base, model }, 'cb').model, model);
  assert.equal(validateEncoderDescriptor(base, 'cb').model, undefined);
  for (const [bad, message] of [
    [{ ...model, revision: 'main' }, /must name a Hugging Face id 'org\/name' and its 40-hex commit together/],
    [{ ...model, sha256: { f: 'xyz' } }, /'model\.sha256' must map its files to sha256 hex digests/],
    [{ ...model, precision: 'fp8' }, /'model\.precision' must be one of fp32, fp16/],
    [{ ...model, layer: 1.5 }, /'model\.layer' must be a whole number or null/],
  ] as const) {
    assert.throws(() => validateEncoderDescriptor({ ...base, model: bad }, 'cb'), isUserError(message));
  }
  assert.throws(() => validateEncoderDescriptor({ kind: 'dct', id: 'dct:224', patch: 16, inputSize: [224, 224], d: 768, resize: 'keep-aspect', model }, 'cb'), isUserError(/only an 'onnx' encoder names a model/));
});

test('CLI: --encoder org/name from the cache, --layer and --precision in --help, another model refused at tokenize (exit 2, one line)', async () => {
  const { cliRunner } = await import('../helpers/cli.js');
  const run = cliRunner(() => tmp);
  const root = path.join(tmp, 'cli-cache');
  await cacheSnapshot(root, 'org/cli-siglip', COMMIT_A, { ...configs, 'onnx/vision_model.onnx': dctVisionTower() });
  await setRef(root, 'org/cli-siglip', 'main', COMMIT_A);
  process.env.HF_HUB_CACHE = root;
  const help = await run.cli(['embed', '--help']);
  assert.match(help.stdout, /--layer I .*\(default: the model's last_hidden_state, after its final layer norm\)/s);
  assert.match(help.stdout, /--precision .*fp16 \(\*_fp16\.onnx\).*\(default fp32\)/s);
  const built = await run.cliJson(['build', '--images', photo, '--encoder', 'org/cli-siglip', '--k', '4', '--iters', '2', '--out', 'cb.safetensors']);
  assert.equal(built.out ?? 'cb.safetensors', 'cb.safetensors');
  // the same model tokenizes (16 photos: decoded and preprocessed in the encode pool's workers);
  // a model with other weights (same d) is refused by name
  const folder = await run.cliJson(['tokenize', path.dirname(photo), '--codebook', 'cb.safetensors']);
  const grids = (folder.results ?? folder.grids ?? folder) as { grid: number[] }[];
  assert.ok(Array.isArray(grids) && grids.length === 16 && grids.every((g) => g.grid.join('x') === '14x14'), JSON.stringify(folder).slice(0, 200));
  const other = await writeExportFolder(path.join(tmp, 'cli-other'), { hiddenStates: 1 }, siglip);
  await run.assertUserError(['tokenize', photo, '--codebook', 'cb.safetensors', '--encoder', other], /the codebook was built with org\/cli-siglip@aaaaaaaaaaaa, onnx\/vision_model\.onnx \(fp32\), sha256 [0-9a-f]{12}, but the encoder given is .*cli-other, model\.onnx/);
  process.env.HF_HUB_OFFLINE = '1';
  await run.assertUserError(['embed', photo, '--out', 'x.npy', '--encoder', 'org/not-cached'], /not in the Hugging Face cache at .*cli-cache \(HF_HUB_OFFLINE is set\); download it/);
  delete process.env.HF_HUB_OFFLINE;
  await run.assertUserError(['embed', photo, '--out', 'x.npy', '--encoder', 'org/cli-siglip', '--layer', '-2'], /choosing a layer needs an export with hidden_states/);
});

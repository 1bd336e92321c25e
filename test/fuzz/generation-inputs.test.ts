// The generation side's inputs, hostile: the prior file (its tensors and metadata) and a diffusers
// folder's configurations (scheduler_config.json, vae_decoder/config.json, unet/config.json).
// Property tests over seeded mutations (test/helpers/mutate.ts): each input is either refused
// with a one-line UserError or read into something consistent with it (sizes within the limits,
// counts that make a probability distribution, a schedule of finite noise levels) that then
// scores, samples and steps to finite numbers. Then the real CLI on the inputs that got through
// before (issue 19), and on models whose outputs are NaN: exit 2, one line naming the field, the
// value and the range (or the model and the step), nothing written, in bounded memory and time.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../common/errors.js';
import { readSafetensors, writeSafetensors, type Tensor } from '../../extension/engine/io/formats/safetensors.js';
import { MAX_GRID_SIDE, MAX_LATENT_SIDE, MAX_PRIOR_K, MAX_TRAIN_TIMESTEPS } from '../../extension/engine/core/limits.js';
import { seededRandom } from '../../extension/engine/core/sampling.js';
import { fitPrior, readPrior, samplePriorGrid, scorePrior, writePrior, type GridTokens } from '../../extension/engine/generate/prior/index.js';
import { readDiffusionFolder } from '../../extension/engine/generate/diffusion/folder.js';
import { alphasCumprod, checkSchedule, createSampler, schedulerConfig } from '../../extension/engine/generate/diffusion/schedulers.js';
import { GraphBuilder } from '../../native-gpu/cpu/onnx-graph.js';
import { denoiserModel, sdSchedulerConfig, vaeDecoderModel, writeDiffusionFolder } from '../helpers/diffusion-model.js';
import { Mutator, type Json } from '../helpers/mutate.js';
import { assertBounded, assertRefused, IMAGES, largestPeak, parsedOrRefused, ROOT, runCli, tempDir } from './harness.js';

const SEED = 20261207;
let dir: string;

before(async () => {
  execFileSync(process.execPath, ['scripts/build.mjs', '--quiet'], { cwd: ROOT, stdio: 'inherit' });
  dir = await tempDir('generation');
});
after(async () => {
  console.log(`largest peak RSS of a run: ${largestPeak.mb.toFixed(0)} MB (${largestPeak.label})`);
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// the prior file

/** Small token grids of codes 0..k-1 with some structure (runs of equal codes), seeded. */
function trainingGrids(k: number, seed: number): GridTokens[] {
  const random = seededRandom(seed);
  return Array.from({ length: 3 }, () => {
    const [h, w] = [2 + Math.floor(random() * 4), 2 + Math.floor(random() * 4)];
    const ids = new Int32Array(h * w);
    for (let i = 0; i < ids.length; i++) ids[i] = i > 0 && random() < 0.5 ? ids[i - 1]! : Math.floor(random() * k);
    return { grid: [h, w] as [number, number], ids };
  });
}

/** Extreme values for an integer tensor element: counts and offsets that break naive arithmetic. */
const EXTREME_ELEMENTS = [-1, 0, 1, 2, 31, 32, 33, 2 ** 31 - 1, -(2 ** 31), 2 ** 53, -(2 ** 62), 2 ** 62];

/** One mutation of a prior file's tensors or metadata (or both). */
function mutatePrior(m: Mutator, tensors: Record<string, Tensor>, metadata: Record<string, string>): void {
  const names = Object.keys(tensors);
  if (m.chance(0.6) && names.length) {
    const t = tensors[m.pick(names)]!;
    const n = t.data.length;
    if (n && m.chance(0.8)) {
      const v = m.pick(EXTREME_ELEMENTS);
      const i = m.int(n);
      if (t.data instanceof BigInt64Array) t.data[i] = BigInt(v);
      else (t.data as Int32Array)[i] = v;
    } else if (n) {
      // one element fewer: a tensor whose length no longer matches the others
      t.shape = [n - 1];
      t.data = t.data.slice(0, n - 1) as Int32Array;
    }
  }
  if (m.chance(0.5)) {
    const key = m.pick(['k', 'order', 'grid', 'tokens', 'images', 'format', 'formatVersion']);
    const value = m.extremeJson();
    metadata[key] = typeof value === 'string' ? value : JSON.stringify(value);
  }
}

/** What a prior read from a mutated file must satisfy: within the limits, counts that make a
 *  distribution, and scores and samples of finite numbers. */
function checkPrior(p: Awaited<ReturnType<typeof readPrior>>, replay: string): void {
  assert.ok(Number.isSafeInteger(p.k) && p.k >= 1 && p.k <= MAX_PRIOR_K, `${replay}: k ${p.k}`);
  assert.equal(p.unigram.length, p.k, replay);
  assert.ok(p.unigram.every((c) => Number.isSafeInteger(c) && c >= 0), `${replay}: unigram counts`);
  assert.equal(p.tokens, p.unigram.reduce((s, c) => s + c, 0), replay);
  assert.ok(p.tokens >= 1, replay);
  const [h, w] = p.grid;
  assert.ok(Number.isInteger(h) && Number.isInteger(w) && h >= 1 && w >= 1 && h <= MAX_GRID_SIDE && w <= MAX_GRID_SIDE, `${replay}: grid ${p.grid}`);
  for (const level of p.levels) {
    for (let i = 0; i < level.keys.length; i++) assert.ok(level.start[i + 1]! > level.start[i]!, `${replay}: start`);
    assert.equal(level.start[level.keys.length], level.code.length, replay);
    assert.ok(level.count.every((c) => c >= 1), `${replay}: follower counts`);
  }
  const grid = samplePriorGrid(p, [3, 4], { seed: 1 });
  assert.ok(grid.every((id) => id >= 0 && id < p.k), `${replay}: sampled ids`);
  const score = scorePrior(p, [{ grid: [3, 4], ids: grid }]);
  assert.ok(Number.isFinite(score.perplexity) && score.perplexity >= 1 - 1e-9, `${replay}: perplexity ${score.perplexity}`);
}

test('prior files: every mutated tensor or metadata value is refused with one line, or reads as a prior that scores and samples finite numbers (600 files)', async () => {
  const m = new Mutator(SEED);
  const bases: string[] = [];
  for (const order of [1, 2, 3, 5]) {
    const file = path.join(dir, `base-${order}.safetensors`);
    await writePrior(file, fitPrior(trainingGrids(32, order), 32, order));
    bases.push(file);
  }
  let read = 0;
  for (let i = 0; i < 600; i++) {
    const replay = `prior seed ${SEED} case ${i}`;
    const { tensors, metadata } = await readSafetensors(m.pick(bases));
    mutatePrior(m, tensors, metadata);
    const file = path.join(dir, `case-${i}.safetensors`);
    await writeSafetensors(file, tensors, metadata);
    const prior = await parsedOrRefused(() => readPrior(file), replay);
    await fs.rm(file);
    if (!prior) continue;
    read++;
    checkPrior(prior, replay);
  }
  // Both outcomes must stay common, or the property tests nothing.
  assert.ok(read > 30 && read < 570, `${read} of 600 mutated prior files read`);
});

test("the prior's own numbers: counts no file could hold (built in memory) are an error when scored or sampled, never a perplexity or a token", () => {
  const p = fitPrior(trainingGrids(8, 1), 8, 1);
  const grid: GridTokens = { grid: [2, 2], ids: Int32Array.of(0, 1, 2, 3) };
  p.unigram[0] = -p.tokens - 5; // a negative probability for code 0
  assert.throws(() => scorePrior(p, [grid]), (e) => e instanceof UserError && /the prior gives code 0 at \(0, 0\) the probability -?[\d.e-]+, outside \(0, 1\]: its counts are inconsistent/.test(e.message));
  p.tokens = -p.distinct; // every probability divides by tokens + distinct = 0
  assert.throws(() => samplePriorGrid(p, [2, 2], { seed: 1 }), (e) => e instanceof UserError && /the prior's distribution for a cell sums to (NaN|Infinity): its counts are inconsistent/.test(e.message));
});

// ---------------------------------------------------------------------------------------------
// scheduler_config.json

const SCHEDULER_BASES: Record<string, unknown>[] = [
  sdSchedulerConfig(),
  sdSchedulerConfig({ beta_schedule: 'linear', beta_start: 0.0001, beta_end: 0.02, timestep_spacing: 'linspace', steps_offset: 0 }),
  sdSchedulerConfig({ beta_schedule: 'squaredcos_cap_v2', timestep_spacing: 'trailing', prediction_type: 'v_prediction' }),
  sdSchedulerConfig({ trained_betas: Array.from({ length: 50 }, (_, i) => 0.001 + i * 0.004), num_train_timesteps: 50 }),
];

test('scheduler configs: every mutated config is refused with one line, or gives a schedule of finite noise levels and steps within the model (1,500)', async () => {
  const m = new Mutator(SEED + 1);
  let accepted = 0;
  for (let i = 0; i < 1500; i++) {
    const replay = `scheduler seed ${SEED + 1} case ${i}`;
    let raw = m.pick(SCHEDULER_BASES) as Json;
    for (let n = 1 + m.int(2); n > 0; n--) raw = m.json(raw);
    if (m.chance(0.2)) raw = { ...(raw as object), [m.pick(['num_train_timesteps', 'beta_start', 'beta_end'])]: m.pick([10_000_000_000, 300_000_000, 5, 1, 0, -0.5, 1e-300, 0.999999]) };
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) continue;
    const config = raw as Record<string, unknown>;
    if (!(await parsedOrRefused(() => (checkSchedule(config, replay), true), replay))) continue;
    for (const kind of ['ddim', 'euler'] as const) {
      const c = await parsedOrRefused(() => schedulerConfig(kind, config, replay), replay);
      if (!c) continue;
      assert.ok(c.num_train_timesteps >= 1 && c.num_train_timesteps <= MAX_TRAIN_TIMESTEPS, `${replay}: T ${c.num_train_timesteps}`);
      const ac = alphasCumprod(c);
      assert.ok(ac.every((a) => a > 0 && a < 1), `${replay}: alphas_cumprod outside (0, 1)`);
      const steps = m.pick([1, 2, 10, 50, 1000]);
      const sampler = await parsedOrRefused(() => createSampler(kind, c, steps, { eta: 0.5 }), replay);
      if (!sampler) continue;
      accepted++;
      assert.ok(Number.isFinite(sampler.initNoiseSigma) && sampler.initNoiseSigma > 0, `${replay}: init_noise_sigma ${sampler.initNoiseSigma}`);
      assert.ok(sampler.timesteps.every((t) => t >= 0 && t <= c.num_train_timesteps - 1), `${replay}: timesteps`);
      const x = Float32Array.of(0.5, -1, 2);
      const { prev } = sampler.step(Float32Array.of(0.1, 0.2, -0.3), 0, x, () => 0.25);
      assert.ok(prev.every((v) => !Number.isNaN(v)), `${replay}: one ${kind} step gave NaN`);
    }
  }
  assert.ok(accepted > 100 && accepted < 2900, `${accepted} of 3000 mutated (config, sampler) pairs accepted`);
});

// ---------------------------------------------------------------------------------------------
// the folder's other configs: vae_decoder/config.json, unet/config.json

test('VAE and denoiser configs: every mutated config is refused with one line, or gives a scaling and a latent size within the limits (800 folders)', async () => {
  const m = new Mutator(SEED + 2);
  const folder = path.join(dir, 'configs');
  // readDiffusionFolder reads the configs before any model is opened: the models may be stubs.
  for (const rel of ['unet/model.onnx', 'vae_decoder/model.onnx']) {
    await fs.mkdir(path.dirname(path.join(folder, rel)), { recursive: true });
    await fs.writeFile(path.join(folder, rel), 'stub');
  }
  await fs.mkdir(path.join(folder, 'scheduler'), { recursive: true });
  await fs.writeFile(path.join(folder, 'scheduler/scheduler_config.json'), JSON.stringify(sdSchedulerConfig()));
  let read = 0;
  for (let i = 0; i < 800; i++) {
    const replay = `configs seed ${SEED + 2} case ${i}`;
    const vae: Json = { _class_name: 'AutoencoderKL', scaling_factor: m.pick([0.18215, 0.13025, 1.5305]), latent_channels: 4 };
    const unet: Json = { _class_name: 'UNet2DConditionModel', sample_size: m.pick([64, 96, 128]), in_channels: 4, cross_attention_dim: 768 };
    const write = async (rel: string, value: Json) => {
      const text = m.chance(0.25) ? m.text(JSON.stringify(value)) : JSON.stringify(m.chance(0.8) ? m.json(value) : value);
      await fs.writeFile(path.join(folder, rel), text);
    };
    await write('vae_decoder/config.json', vae);
    await write('unet/config.json', unet);
    const files = await parsedOrRefused(() => readDiffusionFolder(folder), replay);
    if (!files) continue;
    read++;
    assert.ok(files.scaling >= 1e-3 && files.scaling <= 1e3, `${replay}: scaling ${files.scaling}`);
    assert.ok(Number.isInteger(files.sampleSize) && files.sampleSize >= 1 && files.sampleSize <= MAX_LATENT_SIDE, `${replay}: sample_size ${files.sampleSize}`);
  }
  assert.ok(read > 50 && read < 780, `${read} of 800 mutated folders read`);
});

// ---------------------------------------------------------------------------------------------
// the real CLI: the inputs of issue 19, and models whose outputs are not finite

let codebook: string;
let tokens: string;
let prior: string;

/** Runs the CLI on bad input: refused with one line matching `pattern`, `out` never written. */
async function refused(args: string[], pattern: RegExp, out?: string): Promise<void> {
  assertRefused(await runCli([...args, '--quiet'], { asGiven: args[0] === 'prior' }), pattern, args.join(' '));
  if (out) await assert.rejects(fs.access(out), `${out} was written`);
}

/** A denoiser (sample, timestep, encoder_hidden_states -> out_sample) computing `body` from the
 *  sample alone: 'nan' (0 / 0) or 'huge' (3e38 everywhere: finite, but no update stays finite). */
function brokenDenoiser(body: 'nan' | 'huge'): Uint8Array {
  const g = new GraphBuilder('broken_denoiser');
  g.input('sample', 'float32', ['batch', 4, 'height', 'width']);
  g.input('timestep', 'int64', [1]);
  g.input('encoder_hidden_states', 'float32', ['batch', 'sequence', 768]);
  g.node('Sub', ['sample', 'sample'], ['zero']);
  if (body === 'nan') g.node('Div', ['zero', 'zero'], ['out_sample']);
  else {
    g.initializer('huge', { type: 'float32', dims: [], data: Float32Array.of(3e38) });
    g.node('Add', ['zero', 'huge'], ['out_sample']);
  }
  g.output('out_sample', 'float32', ['batch', 4, 'height', 'width']);
  return g.toModel();
}

/** A VAE decoder whose image is NaN: latent_sample [B,4,h,w] -> sample [B,3,h,w]. */
function nanVae(): Uint8Array {
  const g = new GraphBuilder('nan_vae');
  g.input('latent_sample', 'float32', ['batch', 4, 'height', 'width']);
  g.initializer('pick', { type: 'int64', dims: [3], data: BigInt64Array.of(0n, 1n, 2n) });
  g.node('Gather', ['latent_sample', 'pick'], ['three'], { axis: 1 });
  g.node('Sub', ['three', 'three'], ['zero']);
  g.node('Div', ['zero', 'zero'], ['sample']);
  g.output('sample', 'float32', ['batch', 3, 'height', 'width']);
  return g.toModel();
}

async function folderWith(name: string, parts: { denoiser?: Uint8Array; vae?: Uint8Array; scheduler?: Record<string, unknown>; unetConfig?: string; vaeConfig?: string }): Promise<string> {
  const target = await writeDiffusionFolder(path.join(dir, name), {
    denoiser: parts.denoiser ? { model: parts.denoiser } : denoiserModel({ context: 768, timestep: 'int64' }),
    vae: parts.vae ?? vaeDecoderModel().model,
    scheduler: parts.scheduler ?? sdSchedulerConfig(),
  });
  if (parts.unetConfig) await fs.writeFile(path.join(target, 'unet/config.json'), parts.unetConfig);
  if (parts.vaeConfig) await fs.writeFile(path.join(target, 'vae_decoder/config.json'), parts.vaeConfig);
  return target;
}

async function cliSetUp(): Promise<void> {
  if (codebook) return;
  codebook = path.join(dir, 'cb.safetensors');
  tokens = path.join(dir, 'toks.npy');
  prior = path.join(dir, 'prior.safetensors');
  for (const args of [
    ['build', '--images', IMAGES, '--k', '32', '--iters', '3', '--out', codebook],
    ['tokenize', '--codebook', codebook, IMAGES, '--out', tokens],
    ['prior', 'fit', '--tokens', tokens, '--codebook', codebook, '--out', prior],
  ]) {
    const r = await runCli([...args, '--quiet'], { asGiven: args[0] === 'prior' });
    assertBounded(r, args.join(' '));
    assert.equal(r.code, 0, r.stderr);
  }
}

/** The prior fitted above with one change to its tensors or metadata, written under `name`. */
async function alteredPrior(name: string, change: (tensors: Record<string, Tensor>, metadata: Record<string, string>) => void): Promise<string> {
  const { tensors, metadata } = await readSafetensors(prior);
  change(tensors, metadata);
  const target = path.join(dir, name);
  await writeSafetensors(target, tensors, metadata);
  return target;
}

test('issue 19: prior fit --k 2000000000 is refused from the flag, before the per-code tables are allocated (13.5 GB before)', async () => {
  await cliSetUp();
  const out = path.join(dir, 'p.safetensors');
  await refused(['prior', 'fit', '--tokens', tokens, '--k', '2000000000', '--out', out], /token prior: codebook size K = 2000000000 is outside 1\.\.4194304 \(89\.4 GiB for its per-code tables\)$/, out);
});

test('issue 19: a prior file with negative counts, offsets past its tensors or an impossible grid is refused, never scored or sampled', async () => {
  await cliSetUp();
  const negative = await alteredPrior('negative.safetensors', (t) => ((t.unigram!.data as BigInt64Array)[3] = -5n));
  await refused(['prior', 'eval', '--prior', negative, '--tokens', tokens], /negative\.safetensors: tensor 'unigram' holds -5 at row 3; expected counts from 0 to 9007199254740991$/);
  const zero = await alteredPrior('zero.safetensors', (t, m) => {
    (t.unigram!.data as BigInt64Array).fill(0n);
    delete m.tokens;
  });
  await refused(['prior', 'eval', '--prior', zero, '--tokens', tokens], /the unigram counts sum to 0; expected 1 to/);
  // before: a start offset of 2^62 looped over 2^62 followers
  const offset = await alteredPrior('offset.safetensors', (t) => ((t['context1.start']!.data as BigInt64Array)[1] = 2n ** 62n));
  await refused(['prior', 'eval', '--prior', offset, '--tokens', tokens], /offset\.safetensors: tensor 'context1\.start' holds 4611686018427388000 at row 1; expected offsets from 0 to 9007199254740991$/);
  const grid = await alteredPrior('grid.safetensors', (_, m) => (m.grid = '[100000, 100000]'));
  const out = path.join(dir, 'sampled.json');
  await refused(['prior', 'sample', '--prior', grid, '--out', out], /grid\.safetensors: metadata: grid \[100000, 100000\] exceeds the limit of 128 x 128 tokens$/, out);
  const k = await alteredPrior('k.safetensors', (_, m) => (m.k = '2000000000'));
  await refused(['prior', 'sample', '--prior', k, '--out', out], /k\.safetensors: metadata k must be a whole number from 1 to 4194304, found "2000000000"$/, out);
});

test('issue 19: scheduler, VAE and denoiser configs with impossible numbers are refused before any model loads', async () => {
  await cliSetUp();
  const out = path.join(dir, 'never.png');
  const generate = (folder: string) => ['generate', '--codebook', codebook, '--tokens', tokens, '--decoder', folder, '--steps', '4', '--out', out];
  await refused(generate(await folderWith('t1e10', { scheduler: sdSchedulerConfig({ num_train_timesteps: 10_000_000_000 }) })),
    /t1e10\/scheduler\/scheduler_config\.json: "num_train_timesteps" must be a whole number from 1 to 100000, found 10000000000$/, out);
  await refused(generate(await folderWith('t3e8', { scheduler: sdSchedulerConfig({ num_train_timesteps: 300_000_000 }) })), /"num_train_timesteps" must be a whole number from 1 to 100000, found 300000000$/, out);
  await refused(generate(await folderWith('beta5', { scheduler: sdSchedulerConfig({ beta_end: 5.0 }) })), /beta5\/scheduler\/scheduler_config\.json: "beta_end" must be a number in \(0, 1\), found 5$/, out);
  await refused(generate(await folderWith('beta0', { scheduler: sdSchedulerConfig({ beta_start: 0 }) })), /"beta_start" must be a number in \(0, 1\), found 0$/, out);
  await refused(generate(await folderWith('underflow', { scheduler: sdSchedulerConfig({ beta_schedule: 'linear', beta_start: 0.9, beta_end: 0.999, num_train_timesteps: 100_000 }) })),
    /alphas_cumprod is 0 at training step \d+ of 100000 \(betas too close to 1 for so many steps\); expected it inside \(0, 1\)$/, out);
  await refused(generate(await folderWith('sample-size', { unetConfig: '{"sample_size": 100000}' })), /unet\/config\.json: "sample_size" must be a whole number from 1 to 256, found 100000$/, out);
  await refused(generate(await folderWith('scaling-inf', { vaeConfig: '{"scaling_factor": 1e400}' })), /vae_decoder\/config\.json: "scaling_factor" must be a number from 0\.001 to 1000, found Infinity$/, out);
  // a model that fixes a latent side of 100000 (40 GB of f32 latents per channel row) fails at open
  const wide = denoiserModel({ context: 768, timestep: 'int64', size: 100_000 });
  await refused(generate(await folderWith('wide', { denoiser: wide.model })), /unet\/model\.onnx: the latent input 'sample' is \[batch,4,100000,100000\]; the limit is 256 x 256 latents$/, out);
});

test('issue 19: a NaN or an infinity from the denoiser, the scheduler update or the VAE is an error naming the model and the step, never an image', async () => {
  await cliSetUp();
  const out = path.join(dir, 'never.png');
  const generate = (folder: string, scheduler = 'ddim') => ['generate', '--codebook', codebook, '--tokens', tokens, '--decoder', folder, '--steps', '4', '--scheduler', scheduler, '--out', out];
  await refused(generate(await folderWith('nan-unet', { denoiser: brokenDenoiser('nan') })),
    /nan-unet\/unet\/model\.onnx: output 'out_sample' holds NaN \(value 0 of \d+\) at denoising step 1 of 4 \(timestep \d+\); a model must give finite numbers$/, out);
  await refused(generate(await folderWith('huge-unet', { denoiser: brokenDenoiser('huge') }), 'euler'),
    /huge-unet\/scheduler\/scheduler_config\.json: the euler update at denoising step 1 of 4 \(timestep \d+\) gave -Infinity \(latent value 0 of 16384\); expected finite numbers$/, out);
  await refused(generate(await folderWith('nan-vae', { vae: nanVae() })),
    /nan-vae\/vae_decoder\/model\.onnx: output 'sample' holds NaN \(value 0 of 12288\) at the final decode after 4 steps; a model must give finite numbers$/, out);
});

test('issue 19: a NaN in an ONNX encoder\'s embeddings is an error naming the model and the images, never a token', async () => {
  await cliSetUp();
  const g = new GraphBuilder('nan_tower');
  g.input('pixel_values', 'float32', ['batch', 3, 64, 64]);
  g.initializer('shape', { type: 'int64', dims: [3], data: BigInt64Array.of(0n, 16n, 768n) });
  g.node('Reshape', ['pixel_values', 'shape'], ['tokens']);
  g.node('Sub', ['tokens', 'tokens'], ['zero']);
  g.node('Div', ['zero', 'zero'], ['last_hidden_state']);
  g.output('last_hidden_state', 'float32', ['batch', 16, 768]);
  const model = path.join(dir, 'nan-tower.onnx');
  await fs.writeFile(model, g.toModel());
  const out = path.join(dir, 'never.npy');
  await refused(['embed', path.join(IMAGES, 'astronaut.jpg'), '--encoder', model, '--out', out],
    /nan-tower\.onnx: output 'last_hidden_state' holds NaN \(value 0 of 12288\) at the blank probe image; a model must give finite numbers$/, out);
});

// The diffusion decoder against NumPy: the schedules, timesteps and whole DDIM / Euler trajectories
// computed independently from diffusers' formulas (in Python below), and the ONNX side with tiny
// models built by the tests (test/helpers/diffusion-model.ts): guidance arithmetic, f16, external
// weights, projectors, previews, cancel, and every wrong-model error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { alphasCumprod, createSampler, schedulerConfig, timesteps, type SchedulerKind } from '../../extension/engine/generate/diffusion/schedulers.js';
import { openDiffusionDecoder, type DiffusionDecoder, type DiffusionRequest } from '../../extension/engine/generate/diffusion/decoder.js';
import { codebookFingerprint, inMemory, type Codebook } from '../../extension/engine/codebook/codebook.js';
import { seededNormals } from '../../extension/engine/core/sampling.js';
import { writeNpy } from '../../extension/engine/io/formats/npy.js';
import { CancelledError, UserError } from '../../common/errors.js';
import { pythonWithNumpy, runPythonJson } from '../helpers/python.js';
import { denoiserModel, projectorModel, sdSchedulerConfig, vaeDecoderModel, writeDiffusionFolder, VAE_SCALE, type DenoiserOptions } from '../helpers/diffusion-model.js';
import { dctVisionTower } from '../helpers/siglip-model.js';
import { GraphBuilder } from '../../native-gpu/cpu/onnx-graph.js';

const python = pythonWithNumpy();
let tmp: string;
let serial = 0;
before(async () => {
  assert.ok(python, 'these tests need python3 with NumPy (Debian: python3-numpy; scripts/setup-system.sh installs it)');
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-diffusion-'));
});
after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

/** diffusers' formulas, written out in NumPy: the reference the engine is held to. */
const REFERENCE = String.raw`
import json, math, sys
import numpy as np

def betas(c):
    T = c['num_train_timesteps']
    if c['beta_schedule'] == 'linear':
        return np.linspace(c['beta_start'], c['beta_end'], T, dtype=np.float64)
    if c['beta_schedule'] == 'scaled_linear':
        return np.linspace(c['beta_start'] ** 0.5, c['beta_end'] ** 0.5, T, dtype=np.float64) ** 2
    alpha_bar = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    return np.array([min(1 - alpha_bar((i + 1) / T) / alpha_bar(i / T), 0.999) for i in range(T)])

def timesteps(kind, c, n):
    T = c['num_train_timesteps']
    s = c['timestep_spacing']
    if s == 'linspace':
        ts = np.linspace(0, T - 1, n)[::-1]
        ts = ts.round() if kind == 'ddim' else ts.astype(np.float32)
    elif s == 'leading':
        ts = (np.arange(0, n) * (T // n)).round()[::-1] + c['steps_offset']
    else:
        ts = np.round(np.arange(T, 0, -T / n)) - 1
    return ts.astype(np.float64)

def model(w, x, t, ctx):
    C = len(w['wt'])
    W = np.array(w['w']).reshape(C, C)
    Wc = np.array(w['wc']).reshape(-1, C)
    wt = np.array(w['wt'])
    return (0.5 * np.tanh(np.einsum('oc,bchw->bohw', W, x))
            + (ctx.mean(axis=1) @ Wc)[:, :, None, None]
            + (t / 1000.0) * wt[None, :, None, None])

def run(p):
    c = p['config']
    kind = p['kind']
    ac = np.cumprod(1 - betas(c))
    ts = timesteps(kind, c, p['steps'])
    shape = p['shape']
    x = np.array(p['noise'], dtype=np.float64).reshape(shape)
    cond = np.array(p['cond']).reshape(1, p['tokens'], -1)
    uncond = np.zeros_like(cond)
    sigmas = None
    if kind == 'euler':
        train = ((1 - ac) / ac) ** 0.5
        sigmas = np.concatenate([np.interp(ts, np.arange(len(train)), train), [0.0]])
        init = sigmas.max() if c['timestep_spacing'] in ('linspace', 'trailing') else (sigmas.max() ** 2 + 1) ** 0.5
    else:
        init = 1.0
    x = x * init
    for i, t in enumerate(ts):
        inp = x if kind == 'ddim' else x / (sigmas[i] ** 2 + 1) ** 0.5
        tm = float(int(t)) if p['intTimestep'] else float(np.float32(t))
        if p['guidance'] > 1:
            u = model(p['weights'], inp, tm, uncond)
            k = model(p['weights'], inp, tm, cond)
            out = u + p['guidance'] * (k - u)
        else:
            out = model(p['weights'], inp, tm, cond)
        pt = c['prediction_type']
        if kind == 'ddim':
            t = int(t)
            prev = t - c['num_train_timesteps'] // p['steps']
            a = ac[t]
            a_prev = ac[prev] if prev >= 0 else (1.0 if c['set_alpha_to_one'] else ac[0])
            if pt == 'epsilon':
                x0 = (x - (1 - a) ** 0.5 * out) / a ** 0.5
                eps = out
            else:
                x0 = a ** 0.5 * x - (1 - a) ** 0.5 * out
                eps = a ** 0.5 * out + (1 - a) ** 0.5 * x
            x = a_prev ** 0.5 * x0 + (1 - a_prev) ** 0.5 * eps
        else:
            s = sigmas[i]
            x0 = x - s * out if pt == 'epsilon' else out * (-s / (s * s + 1) ** 0.5) + x / (s * s + 1)
            x = x + (x - x0) / s * (sigmas[i + 1] - s)
    return {'latents': x.ravel().tolist(), 'timesteps': ts.tolist(), 'init': float(init)}

p = json.loads(sys.argv[1])
if p['what'] == 'schedule':
    out = {}
    for name, c in p['configs'].items():
        ac = np.cumprod(1 - betas(c))
        out[name] = {'ac': [float(ac[i]) for i in p['at']],
                     'ts': {k: {str(n): timesteps(k, c, n).tolist() for n in p['steps']} for k in ('ddim', 'euler')}}
    print(json.dumps(out))
else:
    print(json.dumps(run(p)))
`;

function schedule(over: Record<string, unknown>): Record<string, unknown> {
  return {
    num_train_timesteps: 1000, beta_start: 0.0001, beta_end: 0.02, beta_schedule: 'linear', prediction_type: 'epsilon',
    timestep_spacing: 'leading', steps_offset: 0, set_alpha_to_one: true, clip_sample: false, ...over,
  };
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const scale = Math.max(1, Math.abs(expected[i]!));
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= tolerance * scale, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

test('alphas_cumprod and the timesteps of every spacing equal NumPy on the formulas', () => {
  const configs: Record<string, Record<string, unknown>> = {
    linear: schedule({}),
    scaled: schedule({ beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012, steps_offset: 1 }),
    cosine: schedule({ beta_schedule: 'squaredcos_cap_v2', num_train_timesteps: 500 }),
  };
  const at = [0, 1, 250, 499];
  const steps = [1, 7, 10, 25, 50];
  const ref = runPythonJson<Record<string, { ac: number[]; ts: Record<string, Record<string, number[]>> }>>(python!, REFERENCE, [
    JSON.stringify({ what: 'schedule', configs, at, steps }),
  ]);
  for (const [name, raw] of Object.entries(configs)) {
    for (const spacing of ['leading', 'linspace', 'trailing']) {
      for (const kind of ['ddim', 'euler'] as SchedulerKind[]) {
        const c = schedulerConfig(kind, { ...raw, timestep_spacing: spacing });
        if (spacing === 'leading') assertClose(at.map((i) => alphasCumprod(c)[i]!), ref[name]!.ac, 1e-12, `${name} alphas_cumprod`);
        const refTs = runPythonJson<Record<string, { ts: Record<string, Record<string, number[]>> }>>(python!, REFERENCE, [
          JSON.stringify({ what: 'schedule', configs: { [name]: { ...raw, timestep_spacing: spacing } }, at: [0], steps }),
        ])[name]!.ts[kind]!;
        for (const n of steps) assertClose(timesteps(kind, c, n), refTs[String(n)]!, 1e-9, `${name} ${kind} ${spacing} ${n} steps`);
      }
    }
  }
  assert.deepEqual(Array.from(timesteps('ddim', schedulerConfig('ddim', sdSchedulerConfig()), 10)), [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
});

test('scheduler configs: per-class defaults, unsupported options refused by name, impossible step counts refused', () => {
  // A PNDM config as SD ships it: DDIM takes what it knows; a config without clip_sample gets DDIM's default (true).
  assert.equal(schedulerConfig('ddim', sdSchedulerConfig()).clip_sample, false);
  assert.equal(schedulerConfig('ddim', {}).clip_sample, true);
  assert.equal(schedulerConfig('ddim', {}).timestep_spacing, 'leading');
  assert.equal(schedulerConfig('euler', {}).timestep_spacing, 'linspace');
  assert.throws(() => schedulerConfig('ddim', { thresholding: true }), (e) => e instanceof UserError && /"thresholding": true is not supported/.test(e.message));
  assert.throws(() => schedulerConfig('euler', { use_karras_sigmas: true }), /use_karras_sigmas/);
  assert.throws(() => schedulerConfig('ddim', { beta_schedule: 'sigmoid' }), /"beta_schedule" must be linear \| scaled_linear \| squaredcos_cap_v2, found "sigmoid"/);
  assert.throws(() => timesteps('ddim', schedulerConfig('ddim', { timestep_spacing: 'trailing' }), 61), (e) => e instanceof UserError && /timestep -1/.test(e.message));
  assert.throws(() => timesteps('ddim', schedulerConfig('ddim', {}), 1001), /steps must be a whole number from 1 to 1000/);
  // DDIM's clip_sample clamps the predicted x0 to the range
  const clipped = createSampler('ddim', schedulerConfig('ddim', { clip_sample: true, clip_sample_range: 0.5 }), 10);
  const { x0 } = clipped.step(Float32Array.of(-50, 50), 0, Float32Array.of(0, 0));
  assert.deepEqual(Array.from(x0), [0.5, -0.5]);
});

// ---------------------------------------------------------------------------------------------
// Whole runs through ONNX models

const CONTEXT = 8;
const TOKENS = 6;
const LATENT: [number, number, number, number] = [1, 4, 3, 5];

async function folder(opts: Partial<DenoiserOptions> & { scheduler?: Record<string, unknown>; vaeDtype?: 'float32' | 'float16'; projector?: Uint8Array; vaeConfig?: Record<string, unknown>; denoiserDir?: string } = {}): Promise<{ dir: string; weights: ReturnType<typeof denoiserModel>['weights'] }> {
  const dir = path.join(tmp, `model-${serial++}`);
  const den = denoiserModel({ context: CONTEXT, ...opts });
  await writeDiffusionFolder(dir, {
    denoiser: den,
    denoiserDir: opts.denoiserDir,
    vae: vaeDecoderModel({ dtype: opts.vaeDtype ?? opts.dtype }).model,
    scheduler: opts.scheduler ?? sdSchedulerConfig(),
    projector: opts.projector,
    vaeConfig: opts.vaeConfig,
  });
  return { dir, weights: den.weights };
}

function conditioning(seed = 5): { rows: number; cols: number; data: Float32Array } {
  return { rows: TOKENS, cols: CONTEXT, data: seededNormals(TOKENS * CONTEXT, seed) };
}

const NOISE = { shape: [...LATENT], data: seededNormals(LATENT.reduce((a, b) => a * b), 9) };

async function withDecoder<T>(dir: string, fn: (d: DiffusionDecoder) => Promise<T>): Promise<T> {
  const d = await openDiffusionDecoder(dir, { device: 'cpu' });
  try {
    return await fn(d);
  } finally {
    await d.dispose();
  }
}

function request(over: Partial<DiffusionRequest> = {}): DiffusionRequest {
  return { conditioning: conditioning(), scheduler: 'ddim', steps: 8, guidance: 3, seed: 0, initNoise: NOISE, ...over };
}

const trajectories: { name: string; kind: SchedulerKind; config: Record<string, unknown>; timestep: DenoiserOptions['timestep']; guidance: number }[] = [
  { name: 'DDIM, epsilon, SD 1.x config, int64 timestep', kind: 'ddim', config: sdSchedulerConfig(), timestep: 'int64', guidance: 3 },
  { name: 'DDIM, v_prediction, cosine betas, trailing, set_alpha_to_one', kind: 'ddim', config: schedule({ beta_schedule: 'squaredcos_cap_v2', prediction_type: 'v_prediction', timestep_spacing: 'trailing' }), timestep: 'float32', guidance: 1 },
  { name: 'Euler, epsilon, scaled_linear, linspace, float timestep', kind: 'euler', config: sdSchedulerConfig({ timestep_spacing: 'linspace' }), timestep: 'float32', guidance: 3 },
  { name: 'Euler, v_prediction, linear, leading (init sigma sqrt(max^2 + 1))', kind: 'euler', config: schedule({ prediction_type: 'v_prediction', steps_offset: 1 }), timestep: 'float32-1d', guidance: 2 },
];

for (const tr of trajectories) {
  test(`a whole trajectory equals NumPy: ${tr.name}`, async () => {
    const { dir, weights } = await folder({ timestep: tr.timestep, scheduler: tr.config });
    const steps = 8;
    const result = await withDecoder(dir, (d) => d.generate(request({ scheduler: tr.kind, steps, guidance: tr.guidance })));
    const ref = runPythonJson<{ latents: number[]; timesteps: number[] }>(python!, REFERENCE, [JSON.stringify({
      what: 'run', kind: tr.kind, config: schedulerConfig(tr.kind, tr.config), steps, shape: LATENT, noise: Array.from(NOISE.data),
      cond: Array.from(conditioning().data), tokens: TOKENS, guidance: tr.guidance, weights, intTimestep: tr.timestep === 'int64',
    })]);
    assertClose(result.timesteps, ref.timesteps, 1e-6, 'timesteps');
    assertClose(result.latents, ref.latents, 2e-4, 'latents');
    assert.deepEqual(result.latentShape, LATENT);
    assert.equal(result.image.width, LATENT[3] * VAE_SCALE);
    assert.equal(result.image.height, LATENT[2] * VAE_SCALE);
    assert.ok(result.image.data.every((v) => v >= 0 && v <= 1));
  });
}

test('guidance: one batch of two equals two runs (fixed batch 1); guidance 1 is the conditional prediction alone', async () => {
  const batched = await folder();
  const single = await folder({ batch: 1 });
  const a = await withDecoder(batched.dir, (d) => d.generate(request()));
  const b = await withDecoder(single.dir, (d) => d.generate(request()));
  assertClose(a.latents, b.latents, 1e-5, 'batch of 2 vs 2 runs');
  const unguided = await withDecoder(single.dir, (d) => d.generate(request({ guidance: 1 })));
  const ref = runPythonJson<{ latents: number[] }>(python!, REFERENCE, [JSON.stringify({
    what: 'run', kind: 'ddim', config: schedulerConfig('ddim', sdSchedulerConfig()), steps: 8, shape: LATENT, noise: Array.from(NOISE.data),
    cond: Array.from(conditioning().data), tokens: TOKENS, guidance: 1, weights: single.weights, intTimestep: false,
  })]);
  assertClose(unguided.latents, ref.latents, 2e-4, 'guidance 1');
  assert.ok(Math.abs(unguided.latents[0]! - a.latents[0]!) > 1e-3, 'guidance changes the result');
});

test('the unconditional embedding comes from the folder when it has one', async () => {
  const { dir } = await folder();
  const zeros = await withDecoder(dir, (d) => d.generate(request()));
  // [c] is repeated over the tokens: the same as a [L, c] of identical rows
  await writeNpy(path.join(dir, 'unconditional.npy'), { shape: [CONTEXT], dtype: 'float32', data: seededNormals(CONTEXT, 77) });
  const fromVector = await withDecoder(dir, (d) => d.generate(request()));
  const rows = new Float32Array(TOKENS * CONTEXT);
  for (let r = 0; r < TOKENS; r++) rows.set(seededNormals(CONTEXT, 77), r * CONTEXT);
  await writeNpy(path.join(dir, 'unconditional.npy'), { shape: [TOKENS, CONTEXT], dtype: 'float32', data: rows });
  const fromRows = await withDecoder(dir, (d) => d.generate(request()));
  assertClose(fromRows.latents, fromVector.latents, 1e-6, '[c] vs [L, c]');
  assert.ok(Math.abs(fromRows.latents[0]! - zeros.latents[0]!) > 1e-4);
  await writeNpy(path.join(dir, 'unconditional.npy'), { shape: [3, CONTEXT], dtype: 'float32', data: new Float32Array(3 * CONTEXT) });
  await assert.rejects(withDecoder(dir, (d) => d.generate(request())), /unconditional\.npy is \[3, 8\], expected \[6, 8\] or \[8\]/);
});

test('f16 models take and give f16 tensors and agree with the f32 model', async () => {
  const f32 = await folder();
  const f16 = await folder({ dtype: 'float16' });
  const a = await withDecoder(f32.dir, (d) => d.generate(request()));
  const b = await withDecoder(f16.dir, (d) => d.generate(request()));
  assertClose(b.latents, a.latents, 2e-2, 'f16 vs f32 latents');
  assert.equal(b.image.width, a.image.width);
  let worst = 0;
  for (let i = 0; i < a.image.data.length; i++) worst = Math.max(worst, Math.abs(a.image.data[i]! - b.image.data[i]!));
  assert.ok(worst < 0.05, `f16 image differs by ${worst}`);
});

test('weights in an external data file beside the model; a transformer/ folder; 2C-channel (learned sigma) output', async () => {
  const inline = await folder();
  const external = await folder({ externalFile: 'model.onnx_data' });
  assert.ok((await fs.readdir(path.join(external.dir, 'unet'))).includes('model.onnx_data'));
  const transformer = await folder({ denoiserDir: 'transformer', latentName: 'hidden_states', learnedSigma: true });
  const a = await withDecoder(inline.dir, (d) => d.generate(request()));
  const b = await withDecoder(external.dir, (d) => d.generate(request()));
  const c = await withDecoder(transformer.dir, (d) => d.generate(request()));
  assert.deepEqual(b.latents, a.latents);
  assert.deepEqual(c.latents, a.latents);
});

test('the VAE decodes latents / scaling_factor into clip(sample / 2 + 0.5, 0, 1), scaling from vae_decoder/config.json', async () => {
  const sd = await folder();
  const other = await folder({ vaeConfig: { scaling_factor: 0.5 } });
  const a = await withDecoder(sd.dir, (d) => d.generate(request({ steps: 2 })));
  const b = await withDecoder(other.dir, (d) => d.generate(request({ steps: 2 })));
  const image = runPythonJson<number[]>(python!, String.raw`
import json, sys
import numpy as np
p = json.loads(sys.argv[1])
x = np.array(p['latents']).reshape(p['shape']) / p['scaling']
W = np.array(p['wv']).reshape(-1, p['shape'][1])
deep = np.einsum('oc,bchw->bohw', W, x)
b, c, h, w = deep.shape
s = 8
img = deep.reshape(b, s, s, c // 64, h, w).transpose(0, 3, 4, 1, 5, 2).reshape(b, c // 64, h * s, w * s)
print(json.dumps(np.clip(img / 2 + 0.5, 0, 1).ravel().tolist()))
`, [JSON.stringify({ latents: Array.from(b.latents), shape: LATENT, scaling: 0.5, wv: vaeDecoderModel().weights })]);
  assertClose(b.image.data, image, 1e-5, 'image');
  assert.deepEqual(a.latents, b.latents);
  assert.notDeepEqual(a.image.data, b.image.data);
});

test('seeded noise: the same seed gives the same image, another seed another; DDIM eta > 0 draws more noise from the same seed', async () => {
  const { dir } = await folder({ size: 4 });
  await withDecoder(dir, async (d) => {
    const run = (seed: number, eta = 0) => d.generate(request({ initNoise: undefined, seed, eta, steps: 4 }));
    const a = await run(1);
    assert.deepEqual(a.latentShape, [1, 4, 4, 4]);
    assert.deepEqual((await run(1)).image.data, a.image.data);
    assert.notDeepEqual((await run(2)).latents, a.latents);
    const stochastic = await run(1, 1);
    assert.deepEqual((await run(1, 1)).latents, stochastic.latents);
    assert.notDeepEqual(stochastic.latents, a.latents);
  });
});

test('previews every few steps decode the predicted x0; Cancel stops between steps', async () => {
  const { dir } = await folder();
  await withDecoder(dir, async (d) => {
    const seen: { step: number; preview: boolean }[] = [];
    const result = await d.generate(request({ steps: 6, previewEvery: 2 }), {
      onStep: (e) => {
        seen.push({ step: e.step, preview: e.preview !== undefined });
        if (e.preview) assert.equal(e.preview.width, LATENT[3] * VAE_SCALE);
      },
    });
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6].map((step) => ({ step, preview: step === 2 || step === 4 })));
    assert.equal(result.image.width, LATENT[3] * VAE_SCALE);

    const controller = new AbortController();
    let steps = 0;
    await assert.rejects(
      d.generate(request({ steps: 20 }), { signal: controller.signal, onStep: (e) => (steps = e.step) === 3 && controller.abort() }),
      CancelledError,
    );
    assert.equal(steps, 3);
  });
});

function testCodebook(trainable: number, projector?: { rows: number; cols: number; data: Float32Array }): Codebook {
  const k = 5;
  const frozen = { rows: k, cols: 4, data: seededNormals(k * 4, 1) };
  return {
    frozen,
    trainable: inMemory({ rows: k, cols: trainable, data: seededNormals(k * trainable, 2) }),
    counts: null,
    projector,
    meta: { formatVersion: 1, encoder: { kind: 'dct', id: 'dct:32', patch: 16, inputSize: [32, 32], d: 4, resize: 'keep-aspect' }, k, d: 4, lambda: 0, iterations: 0, seed: 0, corpusFingerprint: 'test', atlas: 'none', createdAt: '' },
    fingerprint: codebookFingerprint(frozen),
  };
}

test("conditioning: the tokens' trainable rows, through the codebook's projector or the folder's ONNX projector", async () => {
  const ids = Int32Array.of(4, 0, 0, 2, 1, 3);
  const plain = await folder();
  const rows = await withDecoder(plain.dir, (d) => d.conditionOn(testCodebook(CONTEXT), ids));
  const table = seededNormals(5 * CONTEXT, 2); // testCodebook's trainable rows
  assert.deepEqual(Array.from(rows.data.subarray(0, CONTEXT)), Array.from(table.subarray(4 * CONTEXT, 5 * CONTEXT)));

  const d = 3;
  const p = projectorModel(d, CONTEXT);
  const projector = { rows: d, cols: CONTEXT, data: Float32Array.from(p.weights) };
  const viaTensor = await withDecoder(plain.dir, (dec) => dec.conditionOn(testCodebook(d, projector), ids));
  const withOnnx = await folder({ projector: p.model });
  const viaOnnx = await withDecoder(withOnnx.dir, (dec) => dec.conditionOn(testCodebook(d), ids));
  assert.equal(viaTensor.cols, CONTEXT);
  assertClose(viaOnnx.data, viaTensor.data, 1e-5, 'ONNX projector vs tensor');
  const t = seededNormals(5 * d, 2);
  let expected = 0;
  for (let j = 0; j < d; j++) expected += t[4 * d + j]! * p.weights[j * CONTEXT]!;
  assert.ok(Math.abs(viaTensor.data[0]! - expected) < 1e-5);

  await assert.rejects(withDecoder(withOnnx.dir, (dec) => dec.conditionOn(testCodebook(d, projector), ids)), /both the codebook and .*projector\/model\.onnx hold a projector/);
  await assert.rejects(withDecoder(plain.dir, (dec) => dec.conditionOn(testCodebook(d), ids)), (e) => e instanceof UserError && /trainable rows \(no projector\) gives 3 values per token but .* width 8/.test(e.message));
  await assert.rejects(withDecoder(plain.dir, (dec) => dec.conditionOn(testCodebook(CONTEXT), Int32Array.of(9))), /token id 9 at position 0 is outside the codebook \(ids run from 0 to 4\)/);
});

test('a model that does not fit fails at open with one line naming what was found and what was expected', async () => {
  const expectError = async (dir: string, pattern: RegExp) => {
    await assert.rejects(openDiffusionDecoder(dir, { device: 'cpu' }), (e) => {
      assert.ok(e instanceof UserError, String(e));
      assert.ok(!e.message.includes('\n'), e.message);
      assert.match(e.message, pattern);
      return true;
    });
  };
  await expectError(path.join(tmp, 'absent'), /no such folder/);
  const empty = path.join(tmp, 'empty');
  await fs.mkdir(empty);
  await expectError(empty, /not a diffusers ONNX export: unet\/model\.onnx or transformer\/model\.onnx, vae_decoder\/model\.onnx, scheduler\/scheduler_config\.json missing/);

  const siglip = path.join(tmp, `model-${serial++}`);
  await writeDiffusionFolder(siglip, { denoiser: { model: dctVisionTower({ size: 32 }) }, vae: vaeDecoderModel().model, scheduler: sdSchedulerConfig() });
  await expectError(siglip, /expected inputs 'sample' \[B,C,h,w\] float, 'timestep'.*; found 'pixel_values' \[batch,3,32,32\]/);

  await expectError((await folder({ extraInput: 'text_embeds' })).dir, /also needs 'text_embeds' \[batch,1280\], which token conditioning does not provide/);

  const wrongVae = path.join(tmp, `model-${serial++}`);
  await writeDiffusionFolder(wrongVae, { denoiser: denoiserModel({ context: CONTEXT }), vae: vaeDecoderModel({ channels: 3 }).model, scheduler: sdSchedulerConfig() });
  await expectError(wrongVae, /vae_decoder\/model\.onnx: expected input 'latent_sample' \[B,4,h,w\] float .* found 'latent_sample' \[batch,3,height,width\]/);

  const g = new GraphBuilder('not_a_vae');
  g.input('latent_sample', 'float32', ['batch', 4, 'h', 'w']);
  g.node('ReduceMean', ['latent_sample'], ['sample'], { axes: [1], keepdims: 0 });
  g.output('sample', 'float32', ['batch', 'h', 'w']);
  const flatVae = path.join(tmp, `model-${serial++}`);
  await writeDiffusionFolder(flatVae, { denoiser: denoiserModel({ context: CONTEXT }), vae: g.toModel(), scheduler: sdSchedulerConfig() });
  await expectError(flatVae, /expected output 'sample' \[B,3,H,W\] float, found 'sample' \[batch,h,w\]/);

  const garbage = await folder();
  await fs.writeFile(path.join(garbage.dir, 'unet/model.onnx'), 'not a model');
  await expectError(garbage.dir, /unet\/model\.onnx: cannot load ONNX model/);

  const badConfig = await folder();
  await fs.writeFile(path.join(badConfig.dir, 'scheduler/scheduler_config.json'), '{"beta_schedule": ');
  await expectError(badConfig.dir, /scheduler_config\.json: a model configuration is not valid JSON/);

  // A configuration file is read whole only under the engine's size bound.
  const hugeConfig = await folder();
  await fs.writeFile(path.join(hugeConfig.dir, 'scheduler/scheduler_config.json'), `{"pad": "${'x'.repeat(2 ** 21)}"}`);
  await expectError(hugeConfig.dir, /scheduler_config\.json: a model configuration is \d+ bytes; the limit is/);

  // Fixed conditioning sizes and initial noise are checked against the run's inputs.
  const fixedTokens = await folder({ tokens: 77 });
  await assert.rejects(withDecoder(fixedTokens.dir, (d) => d.generate(request())), /the token grid has 6 tokens but .* takes encoder_hidden_states of 77 tokens/);
  const fixedSize = await folder({ size: 8 });
  await assert.rejects(withDecoder(fixedSize.dir, (d) => d.generate(request())), /the initial noise is \[1, 4, 3, 5\] but the model takes latents \[1, 4, 8, 8\]/);
  const thresholding = await folder({ scheduler: sdSchedulerConfig({ thresholding: true }) });
  await assert.rejects(withDecoder(thresholding.dir, (d) => d.generate(request())), /"thresholding": true is not supported by the ddim sampler/);
});

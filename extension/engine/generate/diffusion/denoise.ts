// The sampling loop, diffusers' (StableDiffusion ONNX pipeline): initial latents = N(0, 1) noise x
// init_noise_sigma; per step the scaled input, the timestep in the model's own type,
// classifier-free guidance noise = uncond + g (cond - uncond) when g > 1 (one batch of two, or two
// runs when the model's batch is fixed at 1), the scheduler's step; finally latents /
// scaling_factor through the VAE. Previews decode the predicted x0; cancel acts between steps.
import type { Matrix } from '../../../../native-gpu/backend.js';
import { throwIfCancelled, UserError } from '../../../../common/errors.js';
import { f16ToF32 } from '../../../../common/half.js';
import type { NpyArray } from '../../io/formats/npy.js';
import type { RgbImage } from '../../embed/image.js';
import { normalSampler, seededRandom } from '../../core/sampling.js';
import type { DiffusionFolder } from './folder.js';
import { checkConditioning, decodeLatents, type DiffusionModels } from './models.js';
import { createSampler, schedulerConfig, type SchedulerKind } from './schedulers.js';
import { fixed, floatTensor, floats } from '../../../../native-gpu/onnx-tensors.js';
import { timestepTensor } from './tensors.js';
import { MAX_LATENT_SIDE } from '../../core/limits.js';

export interface DiffusionStep {
  /** steps done so far (1..total) */
  step: number;
  total: number;
  /** the current estimate of the final image (the predicted x0 through the VAE), every few steps */
  preview?: RgbImage;
}

export interface DiffusionRequest {
  /** [L x c] conditioning rows (see DiffusionDecoder.conditionOn) */
  conditioning: Matrix;
  scheduler: SchedulerKind;
  steps: number;
  /** classifier-free guidance scale; <= 1 runs the conditional prediction alone */
  guidance: number;
  seed: number;
  /** DDIM's eta (0 = deterministic DDIM) */
  eta?: number;
  /** start from these N(0, 1) latents [1, C, h, w] (scaled by init_noise_sigma, as diffusers
   *  scales `latents=`) instead of seeded noise; they also set the output size */
  initNoise?: { shape: number[]; data: Float32Array };
  /** decode a preview every this many steps (0 = none) */
  previewEvery?: number;
}

export interface DiffusionResult {
  image: RgbImage;
  /** the final latents [1, C, h, w], before the VAE */
  latents: Float32Array;
  latentShape: [number, number, number, number];
  /** the timesteps fed to the model */
  timesteps: number[];
  device: string;
}

export interface DiffusionControl {
  signal?: AbortSignal;
  onStep?: (e: DiffusionStep) => void;
}

/** An open diffusion folder, as the loop runs it. */
export interface Pipeline {
  files: DiffusionFolder;
  models: DiffusionModels;
  /** unconditional.npy when the folder has one */
  unconditional: NpyArray | null;
  /** where the sessions run */
  device(): string;
}

type LatentShape = [number, number, number, number];

/** What every denoiser run of one generation shares. */
interface Run {
  models: DiffusionModels;
  cond: Matrix;
  shape: LatentShape;
  /** values in one latent */
  size: number;
  /** the step under way, for messages: "denoising step 3 of 20 (timestep 761)" */
  at: string;
}

/** The unconditional embedding for guidance over the conditioning's rows: the folder's, one row
 *  repeated over the tokens when it has one, else zeros. */
function unconditionalRows(p: Pipeline, cond: Matrix): Float32Array {
  const uncond = new Float32Array(cond.rows * cond.cols);
  const unconditional = p.unconditional;
  if (unconditional) {
    const values = unconditional.dtype === 'float16' ? f16ToF32(unconditional.data as Uint16Array) : (unconditional.data as Float32Array);
    const last = unconditional.shape[unconditional.shape.length - 1];
    if (last !== cond.cols || (values.length !== cond.cols && values.length !== cond.rows * cond.cols)) {
      throw new UserError(`${p.files.unconditional} is [${unconditional.shape.join(', ')}], expected [${cond.rows}, ${cond.cols}] or [${cond.cols}]`);
    }
    for (let r = 0; r < cond.rows; r++) uncond.set(values.length === cond.cols ? values : values.subarray(r * cond.cols, (r + 1) * cond.cols), r * cond.cols);
  }
  return uncond;
}

/** The starting latents, times init_noise_sigma: the request's noise (checked against the
 *  latents the model takes) or seeded noise of the default latent size. */
function initialLatents(models: DiffusionModels, req: DiffusionRequest, sigma: number, normal: () => number): { x: Float32Array; shape: LatentShape } {
  const { channels, denoiser } = models;
  const [height, width] = models.defaultLatentSize;
  if (!req.initNoise) {
    const x = new Float32Array(channels * height * width);
    for (let i = 0; i < x.length; i++) x[i] = normal() * sigma;
    return { x, shape: [1, channels, height, width] };
  }
  const s = req.initNoise.shape;
  const fixedH = fixed(denoiser.latent.shape[2]);
  const fixedW = fixed(denoiser.latent.shape[3]);
  if (s.length !== 4 || s[0] !== 1 || s[1] !== channels || (fixedH !== null && s[2] !== fixedH) || (fixedW !== null && s[3] !== fixedW)) {
    throw new UserError(`the initial noise is [${s.join(', ')}] but the model takes latents [1, ${channels}, ${fixedH ?? 'h'}, ${fixedW ?? 'w'}]`);
  }
  if (s[2]! > MAX_LATENT_SIDE || s[3]! > MAX_LATENT_SIDE) throw new UserError(`the initial noise is [${s.join(', ')}]; the limit is ${MAX_LATENT_SIDE} x ${MAX_LATENT_SIDE} latents`);
  return { x: req.initNoise.data.map((v) => v * sigma), shape: s as LatentShape };
}

/** One denoiser run over `batch` latents and contexts at timestep t: the predicted noise. */
async function runDenoiser(run: Run, latents: Float32Array, context: Float32Array, batch: number, t: number): Promise<Float32Array> {
  const { denoiser, channels } = run.models;
  const { cond, shape, size } = run;
  const feeds = {
    [denoiser.latent.name]: floatTensor(denoiser.latent.type, latents, [batch, ...shape.slice(1)]),
    [denoiser.timestep.name]: timestepTensor(denoiser.timestep, t, batch),
    [denoiser.context.name]: floatTensor(denoiser.context.type, context, [batch, cond.rows, cond.cols]),
  };
  const out = (await denoiser.session.run(feeds, [denoiser.output], run.at))[denoiser.output]!;
  const values = floats(out);
  // Models that also predict the variance (e.g. PixArt) return 2C channels: the noise is the first C.
  const outChannels = out.dims[1]!;
  if (out.dims.length !== 4 || out.dims[0] !== batch || (outChannels !== channels && outChannels !== 2 * channels) || out.dims[2] !== shape[2] || out.dims[3] !== shape[3]) {
    throw new UserError(`${denoiser.file}: output '${denoiser.output}' is [${out.dims.join(',')}], expected [${batch},${channels},${shape[2]},${shape[3]}]`);
  }
  if (outChannels === channels) return values;
  const firstHalf = new Float32Array(batch * size);
  for (let b = 0; b < batch; b++) firstHalf.set(values.subarray(b * 2 * size, b * 2 * size + size), b * size);
  return firstHalf;
}

/** The noise to step with: the conditional prediction alone without guidance (uncond null),
 *  else uncond + g (cond - uncond). */
async function predictNoise(run: Run, input: Float32Array, t: number, guidance: number, uncond: Float32Array | null): Promise<Float32Array> {
  const { cond, size } = run;
  if (!uncond) return runDenoiser(run, input, cond.data, 1, t);
  let u: Float32Array;
  let c: Float32Array;
  if (run.models.fixedBatch === 1) {
    u = await runDenoiser(run, input, uncond, 1, t);
    c = await runDenoiser(run, input, cond.data, 1, t);
  } else {
    const latents = new Float32Array(2 * size);
    latents.set(input, 0);
    latents.set(input, size);
    const context = new Float32Array(2 * cond.data.length);
    context.set(uncond, 0);
    context.set(cond.data, cond.data.length);
    const both = await runDenoiser(run, latents, context, 2, t);
    u = both.subarray(0, size);
    c = both.subarray(size);
  }
  const guidedNoise = new Float32Array(size);
  for (let i = 0; i < size; i++) guidedNoise[i] = u[i]! + guidance * (c[i]! - u[i]!);
  return guidedNoise;
}

/** The engine's own numbers get the models' rule: a NaN or an infinity is an error, never drawn. */
function checkLatents(x: Float32Array, what: string): void {
  const i = x.findIndex((v) => !Number.isFinite(v));
  if (i >= 0) throw new UserError(`${what} gave ${x[i]} (latent value ${i} of ${x.length}); expected finite numbers`);
}

export async function denoise(p: Pipeline, req: DiffusionRequest, control: DiffusionControl): Promise<DiffusionResult> {
  const { conditioning: cond } = req;
  checkConditioning(p.models, 'the conditioning', cond);
  const config = schedulerConfig(req.scheduler, p.files.scheduler, p.files.schedulerFile);
  const sampler = createSampler(req.scheduler, config, req.steps, { eta: req.eta, source: p.files.schedulerFile });
  if (!Number.isFinite(req.guidance) || req.guidance < 0) throw new UserError(`guidance must be a number >= 0, got ${req.guidance}`);
  const uncond = req.guidance > 1 ? unconditionalRows(p, cond) : null;
  const normal = normalSampler(seededRandom(req.seed));
  const { shape, x: start } = initialLatents(p.models, req, sampler.initNoiseSigma, normal);
  checkLatents(start, `${p.files.schedulerFile}: the starting latents (noise times init_noise_sigma ${sampler.initNoiseSigma})`);
  let x = start;
  const run: Run = { models: p.models, cond, shape, size: x.length, at: '' };
  const decode = (latents: Float32Array, at: string) => decodeLatents(p.models.vae, p.files.scaling, latents, shape, at);

  const total = sampler.timesteps.length;
  const previewEvery = req.previewEvery ?? 0;
  for (let i = 0; i < total; i++) {
    throwIfCancelled(control.signal);
    const t = sampler.timesteps[i]!;
    run.at = `denoising step ${i + 1} of ${total} (timestep ${t})`;
    const noise = await predictNoise(run, sampler.scaleModelInput(x, i), t, req.guidance, uncond);
    throwIfCancelled(control.signal);
    const { prev, x0 } = sampler.step(noise, i, x, sampler.stochastic ? normal : undefined);
    checkLatents(prev, `${p.files.schedulerFile}: the ${sampler.kind} update at ${run.at}`);
    x = prev;
    const wantPreview = previewEvery > 0 && i < total - 1 && (i + 1) % previewEvery === 0;
    control.onStep?.({ step: i + 1, total, preview: wantPreview ? await decode(x0, `the preview after ${run.at}`) : undefined });
  }
  throwIfCancelled(control.signal);
  const image = await decode(x, `the final decode after ${total} steps`);
  return { image, latents: x, latentShape: shape, timesteps: Array.from(sampler.timesteps), device: p.device() };
}

// The diffusion decoder: a pretrained latent diffusion model exported the way diffusers / optimum
// lay out ONNX pipelines, conditioned on visual tokens instead of text. A token grid's rows of the
// codebook's trainable table (through a projector when there is one) are the cross-attention
// input `encoder_hidden_states` [1, L, c], where a text encoder's output would go.
//
//   <folder>/unet/model.onnx  or  transformer/model.onnx   noise predictor (external weight files
//                                                           beside it are loaded by onnxruntime)
//   <folder>/vae_decoder/model.onnx                         latent_sample -> sample
//   <folder>/scheduler/scheduler_config.json                betas, prediction type, spacing...
//   <folder>/vae_decoder/config.json       (optional)       scaling_factor (default 0.18215)
//   <folder>/unet/config.json              (optional)       sample_size: latent size when the
//                                                           model leaves it open (default 64)
//   <folder>/projector/model.onnx          (optional)       trainable rows [.., d'] -> [.., c]
//   <folder>/unconditional.npy             (optional)       the unconditional embedding [L, c] or
//                                                           [c] (repeated over L) for guidance;
//                                                           zeros when absent
//
// Every input's name, shape and type is read from the model (onnxruntime's session metadata) and
// checked when the folder is opened: a model that does not fit fails then, with one line naming
// what was found and what was expected. f16 models get f16 tensors. The sampling loop is
// diffusers' (StableDiffusion ONNX pipeline): initial latents = N(0, 1) noise x init_noise_sigma;
// per step the scaled input, the timestep in the model's own type, classifier-free guidance
// noise = uncond + g (cond - uncond) when g > 1 (one batch of two, or two runs when the model's
// batch is fixed at 1), the scheduler's step; finally latents / scaling_factor through the VAE
// and image = clip(sample / 2 + 0.5, 0, 1).
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type * as ort from 'onnxruntime-node';
import { onnxruntime } from '../../../../native-gpu/onnxruntime.js';
import type { BackendName, Matrix } from '../../../../native-gpu/backend.js';
import { describeTensors, openModelSession, type ModelSession, type TensorInfo } from '../../../../native-gpu/onnx-session.js';
import { throwIfCancelled, UserError } from '../../../../common/errors.js';
import { f16ToF32, f32ToF16 } from '../../../../common/half.js';
import type { Codebook } from '../../codebook/codebook.js';
import { checkTokenIds } from '../../../../native-gpu/token-ids.js';
import { rowsF32 } from '../../../../native-gpu/tables.js';
import { readNpy } from '../../io/formats/npy.js';
import { readJsonFile } from '../../io/files.js';
import { MAX_CONFIG_BYTES } from '../../core/limits.js';
import type { RgbImage } from '../../embed/image.js';
import { normalSampler, seededRandom } from '../../core/sampling.js';
import { createSampler, schedulerConfig, type SchedulerKind } from './schedulers.js';

export const DENOISER_CANDIDATES = ['unet/model.onnx', 'transformer/model.onnx'];
const VAE_DECODER = 'vae_decoder/model.onnx';
const SCHEDULER_CONFIG = 'scheduler/scheduler_config.json';
const PROJECTOR = 'projector/model.onnx';
const UNCONDITIONAL = 'unconditional.npy';
/** Stable Diffusion 1.x's VAE scaling, used when vae_decoder/config.json does not say */
const DEFAULT_SCALING_FACTOR = 0.18215;
/** latent side when neither the model nor unet/config.json fixes it (512 px for an 8x VAE) */
const DEFAULT_LATENT_SIZE = 64;

type FloatType = 'float32' | 'float16';
const FLOAT_TYPES = ['float32', 'float16'];
const TIMESTEP_TYPES = ['float32', 'float16', 'int64', 'int32'];

export interface DiffusionStep {
  /** steps done so far (1..total) */
  step: number;
  total: number;
  /** the current estimate of the final image (the predicted x0 through the VAE), every few steps */
  preview?: RgbImage;
}

export interface DiffusionRequest {
  /** [L x c] conditioning rows (see conditionOn) */
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

interface Denoiser {
  session: ModelSession;
  file: string;
  latent: TensorInfo;
  timestep: TensorInfo;
  context: TensorInfo;
  output: string;
}

export interface DiffusionDecoder {
  readonly folder: string;
  /** where the noise predictor runs (the VAE and projector run on the same kind of device) */
  readonly device: string;
  /** latent channels, and the latent size the model fixes (null = open) */
  readonly latentChannels: number;
  readonly defaultLatentSize: [number, number];
  /** conditioning length and width the model fixes (null = open) */
  readonly contextTokens: number | null;
  readonly contextWidth: number | null;
  readonly hasProjector: boolean;
  /** [L x c]: the token ids' trainable rows, projected when the codebook or the folder has a projector */
  conditionOn(cb: Codebook, ids: Int32Array): Promise<Matrix>;
  generate(req: DiffusionRequest, control?: DiffusionControl): Promise<DiffusionResult>;
  dispose(): Promise<void>;
}

async function isFile(file: string): Promise<boolean> {
  return fs.stat(file).then((s) => s.isFile(), () => false);
}

async function readJson(file: string): Promise<Record<string, unknown>> {
  const doc = await readJsonFile(file, 'a model configuration', MAX_CONFIG_BYTES);
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new UserError(`${file}: expected a JSON object`);
  return doc as Record<string, unknown>;
}

const fixed = (d: number | string | undefined): number | null => (typeof d === 'number' && d > 0 ? d : null);

function checkDenoiser(file: string, session: ModelSession): Denoiser {
  const find = (names: string[]) => session.inputs.find((i) => names.includes(i.name));
  const latent = find(['sample', 'hidden_states']);
  const timestep = find(['timestep']);
  const context = find(['encoder_hidden_states']);
  const expected = "expected inputs 'sample' [B,C,h,w] float, 'timestep' [] or [1] float or int64, 'encoder_hidden_states' [B,L,c] float";
  const ok = latent && timestep && context &&
    FLOAT_TYPES.includes(latent.type) && latent.shape.length === 4 &&
    TIMESTEP_TYPES.includes(timestep.type) && timestep.shape.length <= 1 &&
    FLOAT_TYPES.includes(context.type) && context.shape.length === 3;
  if (!ok) throw new UserError(`${file}: ${expected}; found ${describeTensors(session.inputs)}`);
  const extra = session.inputs.filter((i) => i !== latent && i !== timestep && i !== context);
  if (extra.length) {
    throw new UserError(`${file}: the noise predictor also needs ${describeTensors(extra)}, which token conditioning does not provide (${expected})`);
  }
  const output = session.outputs.find((o) => o.name === 'out_sample') ?? session.outputs[0];
  if (!output || !FLOAT_TYPES.includes(output.type) || output.shape.length !== 4) {
    throw new UserError(`${file}: expected output 'out_sample' [B,C,h,w] float, found ${describeTensors(session.outputs)}`);
  }
  return { session, file, latent, timestep, context, output: output.name };
}

function checkVae(file: string, session: ModelSession, channels: number): { input: TensorInfo; output: string } {
  const input = session.inputs.find((i) => i.name === 'latent_sample') ?? (session.inputs.length === 1 ? session.inputs[0] : undefined);
  const output = session.outputs.find((o) => o.name === 'sample') ?? session.outputs[0];
  const inChannels = fixed(input?.shape[1]);
  if (!input || session.inputs.length !== 1 || !FLOAT_TYPES.includes(input.type) || input.shape.length !== 4 || (inChannels !== null && inChannels !== channels)) {
    throw new UserError(`${file}: expected input 'latent_sample' [B,${channels},h,w] float (the noise predictor's ${channels} latent channels), found ${describeTensors(session.inputs)}`);
  }
  if (!output || !FLOAT_TYPES.includes(output.type) || output.shape.length !== 4 || (fixed(output.shape[1]) ?? 3) !== 3) {
    throw new UserError(`${file}: expected output 'sample' [B,3,H,W] float, found ${describeTensors(session.outputs)}`);
  }
  return { input, output: output.name };
}

function checkProjector(file: string, session: ModelSession): { input: TensorInfo; output: string } {
  const input = session.inputs[0];
  const output = session.outputs[0];
  if (session.inputs.length !== 1 || !input || !FLOAT_TYPES.includes(input.type) || (input.shape.length !== 2 && input.shape.length !== 3) ||
      !output || !FLOAT_TYPES.includes(output.type) || output.shape.length !== input.shape.length) {
    throw new UserError(`${file}: expected one input [L,d'] or [1,L,d'] float and an output [L,c] or [1,L,c] float, found inputs ${describeTensors(session.inputs)}, outputs ${describeTensors(session.outputs)}`);
  }
  return { input, output: output.name };
}

/** A float tensor for an input of the given type (f16 as IEEE half bits). */
function floatTensor(type: string, data: Float32Array, dims: number[]): ort.Tensor {
  const { Tensor } = onnxruntime();
  return type === 'float16' ? new Tensor('float16', f32ToF16(data), dims) : new Tensor('float32', data, dims);
}

function floats(t: ort.Tensor): Float32Array {
  if (t.type === 'float16') return f16ToF32(t.data as Uint16Array);
  if (t.type === 'float32') return t.data as Float32Array;
  throw new Error(`expected a float tensor, got ${t.type}`);
}

function timestepTensor(info: TensorInfo, t: number, batch: number): ort.Tensor {
  const dims = info.shape.length === 0 ? [] : [fixed(info.shape[0]) ?? batch];
  const count = dims.length ? dims[0]! : 1;
  const { Tensor } = onnxruntime();
  switch (info.type) {
    case 'int64':
      return new Tensor('int64', new BigInt64Array(count).fill(BigInt(Math.trunc(t))), dims);
    case 'int32':
      return new Tensor('int32', new Int32Array(count).fill(Math.trunc(t)), dims);
    default:
      return floatTensor(info.type, new Float32Array(count).fill(t), dims);
  }
}

function matmul(a: Matrix, b: Matrix): Matrix {
  const out = new Float32Array(a.rows * b.cols);
  for (let i = 0; i < a.rows; i++) {
    for (let k = 0; k < a.cols; k++) {
      const v = a.data[i * a.cols + k]!;
      if (v === 0) continue;
      for (let j = 0; j < b.cols; j++) out[i * b.cols + j] += v * b.data[k * b.cols + j]!;
    }
  }
  return { rows: a.rows, cols: b.cols, data: out };
}

export async function openDiffusionDecoder(folder: string, opts: { device: BackendName; onWarning?: (m: string) => void }): Promise<DiffusionDecoder> {
  const stat = await fs.stat(folder).catch(() => null);
  if (!stat?.isDirectory()) throw new UserError(`decoder '${folder}': no such folder (expected 'atlas' or a diffusers ONNX export folder)`);
  const at = (rel: string) => path.join(folder, rel);
  let denoiserFile: string | null = null;
  for (const candidate of DENOISER_CANDIDATES) if (await isFile(at(candidate))) { denoiserFile = at(candidate); break; }
  const missing = [
    denoiserFile ? null : DENOISER_CANDIDATES.join(' or '),
    (await isFile(at(VAE_DECODER))) ? null : VAE_DECODER,
    (await isFile(at(SCHEDULER_CONFIG))) ? null : SCHEDULER_CONFIG,
  ].filter(Boolean);
  if (missing.length) throw new UserError(`${folder}: not a diffusers ONNX export: ${missing.join(', ')} missing`);

  const schedulerRaw = await readJson(at(SCHEDULER_CONFIG));
  const vaeConfig = (await isFile(at('vae_decoder/config.json'))) ? await readJson(at('vae_decoder/config.json')) : {};
  const scaling = vaeConfig.scaling_factor ?? DEFAULT_SCALING_FACTOR;
  if (typeof scaling !== 'number' || !(scaling > 0)) throw new UserError(`${at('vae_decoder/config.json')}: "scaling_factor" must be a positive number, found ${JSON.stringify(scaling)}`);
  const denoiserConfig = (await isFile(path.join(path.dirname(denoiserFile!), 'config.json'))) ? await readJson(path.join(path.dirname(denoiserFile!), 'config.json')) : {};

  const sessions: ModelSession[] = [];
  const open = async (file: string) => {
    const s = await openModelSession(file, file, opts);
    sessions.push(s);
    return s;
  };
  try {
    const denoiser = checkDenoiser(denoiserFile!, await open(denoiserFile!));
    const channels = fixed(denoiser.latent.shape[1]);
    if (channels === null) throw new UserError(`${denoiserFile}: the latent input '${denoiser.latent.name}' must fix its channel count, found [${denoiser.latent.shape.join(',')}]`);
    const vaeSession = await open(at(VAE_DECODER));
    const vae = checkVae(at(VAE_DECODER), vaeSession, channels);
    let projector: { file: string; session: ModelSession; input: TensorInfo; output: string } | null = null;
    if (await isFile(at(PROJECTOR))) {
      const session = await open(at(PROJECTOR));
      projector = { file: at(PROJECTOR), session, ...checkProjector(at(PROJECTOR), session) };
    }
    const contextTokens = fixed(denoiser.context.shape[1]);
    const contextWidth = fixed(denoiser.context.shape[2]);
    const sampleSize = typeof denoiserConfig.sample_size === 'number' ? denoiserConfig.sample_size : DEFAULT_LATENT_SIZE;
    const defaultLatentSize: [number, number] = [fixed(denoiser.latent.shape[2]) ?? sampleSize, fixed(denoiser.latent.shape[3]) ?? sampleSize];
    const fixedBatch = fixed(denoiser.latent.shape[0]) ?? fixed(denoiser.context.shape[0]);
    // the unconditional embedding is checked against the conditioning when a run asks for guidance
    const unconditional = (await isFile(at(UNCONDITIONAL))) ? await readNpy(at(UNCONDITIONAL)) : null;
    if (unconditional && unconditional.dtype !== 'float32' && unconditional.dtype !== 'float16') {
      throw new UserError(`${at(UNCONDITIONAL)}: expected float32 or float16, found ${unconditional.dtype}`);
    }

    const devices = () => [...new Set(sessions.map((s) => s.device))].join(' + ');

    const decode = async (latents: Float32Array, shape: number[]): Promise<RgbImage> => {
      const scaled = latents.map((v) => v / scaling);
      const out = (await vaeSession.run({ [vae.input.name]: floatTensor(vae.input.type, scaled, shape) }, [vae.output]))[vae.output]!;
      const [, c, h, w] = out.dims as number[];
      if (out.dims.length !== 4 || c !== 3) throw new UserError(`${at(VAE_DECODER)}: output '${vae.output}' is [${out.dims.join(',')}], expected [1,3,H,W]`);
      const data = floats(out).map((v) => Math.min(1, Math.max(0, v / 2 + 0.5)));
      return { data: data.slice(0, 3 * h! * w!), width: w!, height: h! };
    };

    const conditioningOf = (label: string, m: Matrix) => {
      if (contextWidth !== null && m.cols !== contextWidth) {
        throw new UserError(`${label} gives ${m.cols} values per token but ${denoiserFile} takes encoder_hidden_states of width ${contextWidth}`);
      }
      if (contextTokens !== null && m.rows !== contextTokens) {
        throw new UserError(`the token grid has ${m.rows} tokens but ${denoiserFile} takes encoder_hidden_states of ${contextTokens} tokens`);
      }
      return m;
    };

    return {
      folder,
      get device() {
        return devices();
      },
      latentChannels: channels,
      defaultLatentSize,
      contextTokens,
      contextWidth,
      hasProjector: projector !== null,

      async conditionOn(cb, ids) {
        const d = cb.trainable.cols;
        const rows = new Float32Array(ids.length * d);
        checkTokenIds(ids, cb.trainable.rows);
        const table = await cb.trainable.load();
        ids.forEach((id, i) => rows.set(rowsF32(table, id, 1), i * d));
        const trainable: Matrix = { rows: ids.length, cols: d, data: rows };
        if (cb.projector && projector) throw new UserError(`both the codebook and ${projector.file} hold a projector: keep one`);
        if (cb.projector) return conditioningOf("the codebook's projector", matmul(trainable, cb.projector));
        if (!projector) return conditioningOf("the codebook's trainable rows (no projector)", trainable);
        const dims = projector.input.shape.length === 3 ? [1, ids.length, d] : [ids.length, d];
        const inWidth = fixed(projector.input.shape[projector.input.shape.length - 1]);
        if (inWidth !== null && inWidth !== d) throw new UserError(`${projector.file} takes rows of ${inWidth} values but the codebook's trainable rows have ${d}`);
        const out = (await projector.session.run({ [projector.input.name]: floatTensor(projector.input.type, rows, dims) }, [projector.output]))[projector.output]!;
        const width = out.dims[out.dims.length - 1]!;
        return conditioningOf(projector.file, { rows: ids.length, cols: width, data: floats(out).slice(0, ids.length * width) });
      },

      async generate(req, control = {}) {
        const { conditioning: cond } = req;
        conditioningOf('the conditioning', cond);
        const config = schedulerConfig(req.scheduler, schedulerRaw, at(SCHEDULER_CONFIG));
        const sampler = createSampler(req.scheduler, config, req.steps, { eta: req.eta });
        if (!Number.isFinite(req.guidance) || req.guidance < 0) throw new UserError(`guidance must be a number >= 0, got ${req.guidance}`);
        const guided = req.guidance > 1;

        let uncond: Float32Array | null = null;
        if (guided) {
          uncond = new Float32Array(cond.rows * cond.cols);
          if (unconditional) {
            const values = unconditional.dtype === 'float16' ? f16ToF32(unconditional.data as Uint16Array) : (unconditional.data as Float32Array);
            const last = unconditional.shape[unconditional.shape.length - 1];
            if (last !== cond.cols || (values.length !== cond.cols && values.length !== cond.rows * cond.cols)) {
              throw new UserError(`${at(UNCONDITIONAL)} is [${unconditional.shape.join(', ')}], expected [${cond.rows}, ${cond.cols}] or [${cond.cols}]`);
            }
            for (let r = 0; r < cond.rows; r++) uncond.set(values.length === cond.cols ? values : values.subarray(r * cond.cols, (r + 1) * cond.cols), r * cond.cols);
          }
        }

        const [height, width] = defaultLatentSize;
        let shape: [number, number, number, number] = [1, channels, height, width];
        const random = seededRandom(req.seed);
        const normal = normalSampler(random);
        let x: Float32Array;
        if (req.initNoise) {
          const s = req.initNoise.shape;
          const fixedH = fixed(denoiser.latent.shape[2]);
          const fixedW = fixed(denoiser.latent.shape[3]);
          if (s.length !== 4 || s[0] !== 1 || s[1] !== channels || (fixedH !== null && s[2] !== fixedH) || (fixedW !== null && s[3] !== fixedW)) {
            throw new UserError(`the initial noise is [${s.join(', ')}] but the model takes latents [1, ${channels}, ${fixedH ?? 'h'}, ${fixedW ?? 'w'}]`);
          }
          shape = s as [number, number, number, number];
          x = req.initNoise.data.map((v) => v * sampler.initNoiseSigma);
        } else {
          x = new Float32Array(channels * height * width);
          for (let i = 0; i < x.length; i++) x[i] = normal() * sampler.initNoiseSigma;
        }
        const size = x.length;
        const contextDims = (batch: number) => [batch, cond.rows, cond.cols];

        const predict = async (input: Float32Array, t: number): Promise<Float32Array> => {
          const runOnce = async (latents: Float32Array, context: Float32Array, batch: number) => {
            const feeds = {
              [denoiser.latent.name]: floatTensor(denoiser.latent.type, latents, [batch, ...shape.slice(1)]),
              [denoiser.timestep.name]: timestepTensor(denoiser.timestep, t, batch),
              [denoiser.context.name]: floatTensor(denoiser.context.type, context, contextDims(batch)),
            };
            const out = (await denoiser.session.run(feeds, [denoiser.output]))[denoiser.output]!;
            const values = floats(out);
            // Models that also predict the variance (e.g. PixArt) return 2C channels: the noise is the first C.
            const outChannels = out.dims[1]!;
            if (out.dims.length !== 4 || out.dims[0] !== batch || (outChannels !== channels && outChannels !== 2 * channels) || out.dims[2] !== shape[2] || out.dims[3] !== shape[3]) {
              throw new UserError(`${denoiserFile}: output '${denoiser.output}' is [${out.dims.join(',')}], expected [${batch},${channels},${shape[2]},${shape[3]}]`);
            }
            if (outChannels === channels) return values;
            const firstHalf = new Float32Array(batch * size);
            for (let b = 0; b < batch; b++) firstHalf.set(values.subarray(b * 2 * size, b * 2 * size + size), b * size);
            return firstHalf;
          };
          if (!guided) return runOnce(input, cond.data, 1);
          let u: Float32Array;
          let c: Float32Array;
          if (fixedBatch === 1) {
            u = await runOnce(input, uncond!, 1);
            c = await runOnce(input, cond.data, 1);
          } else {
            const latents = new Float32Array(2 * size);
            latents.set(input, 0);
            latents.set(input, size);
            const context = new Float32Array(2 * cond.data.length);
            context.set(uncond!, 0);
            context.set(cond.data, cond.data.length);
            const both = await runOnce(latents, context, 2);
            u = both.subarray(0, size);
            c = both.subarray(size);
          }
          const guidedNoise = new Float32Array(size);
          for (let i = 0; i < size; i++) guidedNoise[i] = u[i]! + req.guidance * (c[i]! - u[i]!);
          return guidedNoise;
        };

        const total = sampler.timesteps.length;
        const previewEvery = req.previewEvery ?? 0;
        for (let i = 0; i < total; i++) {
          throwIfCancelled(control.signal);
          const t = sampler.timesteps[i]!;
          const noise = await predict(sampler.scaleModelInput(x, i), t);
          throwIfCancelled(control.signal);
          const { prev, x0 } = sampler.step(noise, i, x, sampler.stochastic ? normal : undefined);
          x = prev;
          const wantPreview = previewEvery > 0 && i < total - 1 && (i + 1) % previewEvery === 0;
          control.onStep?.({ step: i + 1, total, preview: wantPreview ? await decode(x0, shape) : undefined });
        }
        throwIfCancelled(control.signal);
        const image = await decode(x, shape);
        return { image, latents: x, latentShape: shape, timesteps: Array.from(sampler.timesteps), device: devices() };
      },

      async dispose() {
        await Promise.all(sessions.map((s) => s.release()));
      },
    };
  } catch (err) {
    await Promise.all(sessions.map((s) => s.release().catch(() => undefined)));
    throw err;
  }
}

// Tiny diffusion decoders built in-process for tests (no weights to download), with the input and
// output names of real diffusers ONNX exports, and simple enough that NumPy can recompute them:
//
//   noise predictor  out_sample = 0.5 tanh(W x) + (mean_L(encoder_hidden_states) Wc)[:, :, None, None]
//                                 + (t / 1000) wt[None, :, None, None]
//                    (x = sample [B,C,h,w], W a 1x1 convolution, t the timestep as the model sees it)
//   VAE decoder      sample = DepthToSpace_8(Wv latent_sample)   [B,C,h,w] -> [B,3,8h,8w] (DCR order)
//   projector        out = rows Wp                                [L,d'] -> [L,c]
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { GraphBuilder, type Dim } from '../../native-gpu/cpu/onnx-graph.js';
import { seededRandom } from '../../extension/engine/core/sampling.js';

export const VAE_SCALE = 8;

export interface DenoiserOptions {
  channels?: number;
  /** conditioning width c */
  context: number;
  /** conditioning length L, or symbolic */
  tokens?: number | string;
  /** batch: symbolic (default) or fixed */
  batch?: number | string;
  /** latent side, or symbolic (default) */
  size?: number | string;
  /** 'int64' [1] (the old conversion script), 'float32' [] (current optimum), 'float32-1d' [1] */
  timestep?: 'int64' | 'float32' | 'float32-1d';
  dtype?: 'float32' | 'float16';
  /** output 2C channels (noise and variance), as PixArt-style transformers do */
  learnedSigma?: boolean;
  /** put the weights in this external data file beside the model */
  externalFile?: string;
  /** an input the token conditioning cannot provide (SDXL's text_embeds) */
  extraInput?: string;
  /** call the latent input this instead of 'sample' */
  latentName?: string;
  seed?: number;
}

export interface DenoiserWeights {
  w: number[];
  wc: number[];
  wt: number[];
}

function uniform(count: number, scale: number, random: () => number): Float32Array {
  return Float32Array.from({ length: count }, () => (random() * 2 - 1) * scale);
}

/** Casts an input to f32 (f16 models) and returns the name to compute with. */
function asFloat(g: GraphBuilder, name: string, dtype: 'float32' | 'float16'): string {
  if (dtype === 'float32') return name;
  g.node('Cast', [name], [`${name}_f32`], { to: 1 });
  return `${name}_f32`;
}

export function denoiserModel(opts: DenoiserOptions): { model: Uint8Array; external: Map<string, Uint8Array>; weights: DenoiserWeights } {
  const c = opts.channels ?? 4;
  const dtype = opts.dtype ?? 'float32';
  const batch: Dim = opts.batch ?? 'batch';
  const size: Dim = opts.size ?? 'height';
  const width: Dim = typeof size === 'number' ? size : 'width';
  const random = seededRandom(opts.seed ?? 1);
  const w = uniform(c * c, 0.5, random);
  const wc = uniform(opts.context * c, 1 / Math.sqrt(opts.context), random);
  const wt = uniform(c, 1, random);
  const ext = opts.externalFile;
  const g = new GraphBuilder('tiny_denoiser');
  const latent = opts.latentName ?? 'sample';
  g.input(latent, dtype, [batch, c, size, width]);
  const timestep = opts.timestep ?? 'float32';
  g.input('timestep', timestep === 'int64' ? 'int64' : dtype, timestep === 'float32' ? [] : [1]);
  g.input('encoder_hidden_states', dtype, [batch, opts.tokens ?? 'sequence', opts.context]);
  if (opts.extraInput) g.input(opts.extraInput, dtype, [batch, 1280]);
  g.initializer('w', { type: 'float32', dims: [c, c, 1, 1], data: w }, ext);
  g.initializer('wc', { type: 'float32', dims: [opts.context, c], data: wc }, ext);
  g.initializer('wt', { type: 'float32', dims: [c, 1, 1], data: wt }, ext);
  g.initializer('half', { type: 'float32', dims: [], data: Float32Array.of(0.5) });
  g.initializer('per_mille', { type: 'float32', dims: [], data: Float32Array.of(1000) });
  g.initializer('column', { type: 'int64', dims: [4], data: BigInt64Array.of(0n, BigInt(c), 1n, 1n) });
  g.node('Conv', [asFloat(g, latent, dtype), 'w'], ['mixed']);
  g.node('Tanh', ['mixed'], ['squashed']);
  g.node('Mul', ['squashed', 'half'], ['spatial']);
  g.node('ReduceMean', [asFloat(g, 'encoder_hidden_states', dtype)], ['context_mean'], { axes: [1], keepdims: 0 });
  g.node('MatMul', ['context_mean', 'wc'], ['context_bias']);
  g.node('Reshape', ['context_bias', 'column'], ['context_term']);
  g.node('Cast', ['timestep'], ['t'], { to: 1 });
  g.node('Div', ['t', 'per_mille'], ['t_scaled']);
  g.node('Mul', ['t_scaled', 'wt'], ['time_term']);
  g.node('Add', ['spatial', 'context_term'], ['partial']);
  const result = opts.learnedSigma ? 'noise' : dtype === 'float16' ? 'out_f32' : 'out_sample';
  g.node('Add', ['partial', 'time_term'], [result]);
  let out = result;
  if (opts.learnedSigma) {
    g.node('Concat', ['noise', 'noise'], [dtype === 'float16' ? 'out_f32' : 'out_sample'], { axis: 1 });
    out = dtype === 'float16' ? 'out_f32' : 'out_sample';
  }
  if (dtype === 'float16') g.node('Cast', [out], ['out_sample'], { to: 10 });
  g.output('out_sample', dtype, [batch, opts.learnedSigma ? 2 * c : c, size, width]);
  return { model: g.toModel(), external: g.externalData(), weights: { w: Array.from(w), wc: Array.from(wc), wt: Array.from(wt) } };
}

export function vaeDecoderModel(opts: { channels?: number; dtype?: 'float32' | 'float16'; seed?: number } = {}): { model: Uint8Array; weights: number[] } {
  const c = opts.channels ?? 4;
  const dtype = opts.dtype ?? 'float32';
  const wv = uniform(3 * VAE_SCALE * VAE_SCALE * c, 0.5, seededRandom(opts.seed ?? 2));
  const g = new GraphBuilder('tiny_vae_decoder');
  g.input('latent_sample', dtype, ['batch', c, 'height', 'width']);
  g.initializer('wv', { type: 'float32', dims: [3 * VAE_SCALE * VAE_SCALE, c, 1, 1], data: wv });
  g.node('Conv', [asFloat(g, 'latent_sample', dtype), 'wv'], ['deep']);
  g.node('DepthToSpace', ['deep'], [dtype === 'float16' ? 'image_f32' : 'sample'], { blocksize: VAE_SCALE, mode: 'DCR' });
  if (dtype === 'float16') g.node('Cast', ['image_f32'], ['sample'], { to: 10 });
  g.output('sample', dtype, ['batch', 3, 'image_height', 'image_width']);
  return { model: g.toModel(), weights: Array.from(wv) };
}

export function projectorModel(d: number, c: number, seed = 3): { model: Uint8Array; weights: number[] } {
  const wp = uniform(d * c, 1 / Math.sqrt(d), seededRandom(seed));
  const g = new GraphBuilder('tiny_projector');
  g.input('rows', 'float32', ['tokens', d]);
  g.initializer('wp', { type: 'float32', dims: [d, c], data: wp });
  g.node('MatMul', ['rows', 'wp'], ['projected']);
  g.output('projected', 'float32', ['tokens', c]);
  return { model: g.toModel(), weights: Array.from(wp) };
}

/** SD 1.x's scheduler config (diffusers' PNDM one), with overrides. */
export function sdSchedulerConfig(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    _class_name: 'PNDMScheduler', beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', num_train_timesteps: 1000,
    set_alpha_to_one: false, skip_prk_steps: true, steps_offset: 1, clip_sample: false, timestep_spacing: 'leading', prediction_type: 'epsilon',
    ...over,
  };
}

export interface FolderParts {
  denoiser: { model: Uint8Array; external?: Map<string, Uint8Array> };
  /** 'unet' (default) or 'transformer' */
  denoiserDir?: string;
  vae: Uint8Array;
  scheduler: Record<string, unknown>;
  vaeConfig?: Record<string, unknown>;
  projector?: Uint8Array;
}

/** Writes a diffusers-style ONNX export folder. */
export async function writeDiffusionFolder(dir: string, parts: FolderParts): Promise<string> {
  const put = async (rel: string, bytes: Uint8Array | string) => {
    await fs.mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await fs.writeFile(path.join(dir, rel), bytes);
  };
  const denoiserDir = parts.denoiserDir ?? 'unet';
  await put(`${denoiserDir}/model.onnx`, parts.denoiser.model);
  for (const [file, bytes] of parts.denoiser.external ?? []) await put(`${denoiserDir}/${file}`, bytes);
  await put('vae_decoder/model.onnx', parts.vae);
  await put('scheduler/scheduler_config.json', JSON.stringify(parts.scheduler, null, 2));
  if (parts.vaeConfig) await put('vae_decoder/config.json', JSON.stringify(parts.vaeConfig));
  if (parts.projector) await put('projector/model.onnx', parts.projector);
  return dir;
}


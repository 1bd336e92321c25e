// SigLIP-shaped ONNX vision towers built in-process for tests (no weights to download):
// pixel_values [B,3,H,W] -> Conv(d, kernel p, stride p) -> Reshape -> Transpose ->
// last_hidden_state [B, L, d]. The convolution weights are the orthonormal 2-D DCT basis, so the
// model computes exactly what the built-in DCT encoder does (for p = 16, d = 768): tests can
// compare the two. Optional leading zero tokens stand in for a ViT's CLS token.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { GraphBuilder } from '../../native-gpu/cpu/onnx-graph.js';
import type { ComputeBackend } from '../../native-gpu/backend.js';
import { openEncoder, type Encoder } from '../../extension/engine/embed/encoders/index.js';

/** Opens the encoder a spec names, uses it, and disposes of it whatever happens. */
export async function withEncoderOn<T>(backend: ComputeBackend, spec: string, use: (e: Encoder) => Promise<T>): Promise<T> {
  const encoder = await openEncoder(spec, backend);
  try {
    return await use(encoder);
  } finally {
    await encoder.dispose();
  }
}

export interface TestModelOptions {
  /** square input size (default 224) */
  size?: number;
  /** patch size (default 16); d = 3 * patch^2 */
  patch?: number;
  /** fixed batch size, or symbolic (default) */
  batch?: number | 'batch';
  /** zero tokens prepended to the sequence (1 = a CLS token) */
  extraTokens?: number;
  /** symbolic H and W instead of fixed ones */
  dynamicSize?: boolean;
  /** float16 pixel_values and last_hidden_state (the model computes in f32 between two Casts) */
  f16Io?: boolean;
  /** also outputs hidden_states.0 ... hidden_states.<n-1>: hidden_states.i = (i + 1) x the tokens */
  hiddenStates?: number;
  /** the convolution weights in this external data file beside the model (as optimum writes
   *  model.onnx_data): see writeExportFolder */
  externalData?: string;
  /** also a pooled output [B, d] of this name ('image_embeds', 'pooler_output'): the mean of the
   *  patch tokens, so a solid colour's is its DC coefficients (p x the normalized value) */
  pooled?: string;
}

/** W[o = c*p*p + u*p + v][c][y][x] = a(u) cos(pi(2y+1)u/2p) * a(v) cos(pi(2x+1)v/2p) */
function dctWeights(p: number): Float32Array {
  const basis = (u: number, x: number) => Math.sqrt((u === 0 ? 1 : 2) / p) * Math.cos((Math.PI * (2 * x + 1) * u) / (2 * p));
  const d = 3 * p * p;
  const w = new Float32Array(d * 3 * p * p);
  for (let c = 0; c < 3; c++) {
    for (let u = 0; u < p; u++) {
      for (let v = 0; v < p; v++) {
        const o = c * p * p + u * p + v;
        for (let y = 0; y < p; y++) for (let x = 0; x < p; x++) w[((o * 3 + c) * p + y) * p + x] = basis(u, y) * basis(v, x);
      }
    }
  }
  return w;
}

export function dctVisionTower(opts: TestModelOptions = {}): Uint8Array {
  return dctVisionTowerGraph(opts).toModel();
}

/** The graph of dctVisionTower, for its external data (GraphBuilder.externalData). */
export function dctVisionTowerGraph(opts: TestModelOptions = {}): GraphBuilder {
  const size = opts.size ?? 224;
  const p = opts.patch ?? 16;
  const d = 3 * p * p;
  const tokens = opts.dynamicSize ? 'tokens' : Math.floor(size / p) ** 2 + (opts.extraTokens ?? 0); // whole patches, as Conv gives
  const batch = opts.batch ?? 'batch';
  const hw = opts.dynamicSize ? ['height', 'width'] : [size, size];
  const g = new GraphBuilder('dct_vision_tower');
  g.input('pixel_values', opts.f16Io ? 'float16' : 'float32', [batch, 3, ...hw]);
  if (opts.f16Io) g.node('Cast', ['pixel_values'], ['pixels'], { to: 1 });
  g.initializer('patch_weight', { type: 'float32', dims: [d, 3, p, p], data: dctWeights(p) }, opts.externalData);
  g.initializer('seq_shape', { type: 'int64', dims: [3], data: BigInt64Array.of(0n, BigInt(d), -1n) });
  g.node('Conv', [opts.f16Io ? 'pixels' : 'pixel_values', 'patch_weight'], ['patches'], { kernel_shape: [p, p], strides: [p, p] });
  g.node('Reshape', ['patches', 'seq_shape'], ['channels_first']);
  g.node('Transpose', ['channels_first'], ['grid_tokens'], { perm: [0, 2, 1] });
  g.initializer('pads', { type: 'int64', dims: [6], data: BigInt64Array.of(0n, BigInt(opts.extraTokens ?? 0), 0n, 0n, 0n, 0n) });
  g.node('Pad', ['grid_tokens', 'pads'], ['sequence']);
  g.node('Cast', ['sequence'], ['last_hidden_state'], { to: opts.f16Io ? 10 : 1 });
  g.output('last_hidden_state', opts.f16Io ? 'float16' : 'float32', [batch, tokens, d]);
  if (opts.pooled) {
    g.node('ReduceMean', ['grid_tokens'], [opts.pooled], { axes: [1], keepdims: 0 });
    g.output(opts.pooled, 'float32', [batch, d]);
  }
  for (let i = 0; i < (opts.hiddenStates ?? 0); i++) {
    g.initializer(`factor_${i}`, { type: 'float32', dims: [], data: Float32Array.of(i + 1) });
    g.node('Mul', ['sequence', `factor_${i}`], [`hidden_states.${i}`]);
    g.output(`hidden_states.${i}`, 'float32', [batch, tokens, d]);
  }
  return g;
}

/** A folder as an export writes it: the model at `modelPath` (its external data beside it), and
 *  config.json and preprocessor_config.json where given. */
export async function writeExportFolder(dir: string, opts: TestModelOptions, files: { modelPath?: string; config?: Record<string, unknown>; preprocessor?: Record<string, unknown> }): Promise<string> {
  const modelPath = files.modelPath ?? 'model.onnx';
  const g = dctVisionTowerGraph(opts);
  await writeModelFolder(dir, g.toModel(), files.preprocessor, modelPath);
  for (const [name, bytes] of g.externalData()) await fs.writeFile(path.join(dir, path.dirname(modelPath), name), bytes);
  if (files.config) await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(files.config, null, 2));
  return dir;
}

/** config.json and preprocessor_config.json of the families, as their Hugging Face repos have them
 *  (the patch size and input chosen by the test). */
export const FAMILY_CONFIGS = {
  siglip: (patch: number, size: number) => ({
    config: { model_type: 'siglip', vision_config: { model_type: 'siglip_vision_model', patch_size: patch, image_size: size, hidden_size: 3 * patch * patch } },
    preprocessor: siglipConfig({ size: { height: size, width: size } }),
  }),
  siglip2: (patch: number, size: number) => ({
    config: { model_type: 'siglip', vision_config: { patch_size: patch, image_size: size } },
    preprocessor: siglipConfig({ size: { height: size, width: size }, resample: 2 }),
  }),
  clip: (patch: number, size: number) => ({
    config: { model_type: 'clip', vision_config: { model_type: 'clip_vision_model', patch_size: patch, image_size: size } },
    preprocessor: {
      crop_size: size, do_center_crop: true, do_normalize: true, do_resize: true, feature_extractor_type: 'CLIPFeatureExtractor',
      image_mean: [0.48145466, 0.4578275, 0.40821073], image_std: [0.26862954, 0.26130258, 0.27577711], resample: 3, size,
    },
  }),
  dinov2: (patch: number, size: number, registers = 0) => ({
    config: registers ? { model_type: 'dinov2_with_registers', patch_size: patch, image_size: 518, num_register_tokens: registers } : { model_type: 'dinov2', patch_size: patch, image_size: 518 },
    preprocessor: {
      crop_size: { height: size, width: size }, do_center_crop: true, do_convert_rgb: true, do_normalize: true, do_rescale: true, do_resize: true,
      image_mean: [0.485, 0.456, 0.406], image_processor_type: 'BitImageProcessor', image_std: [0.229, 0.224, 0.225], resample: 3,
      rescale_factor: 0.00392156862745098, size: { shortest_edge: Math.round((size * 256) / 224) },
    },
  }),
};

/** A Hugging Face style folder: the model at `modelPath` plus preprocessor_config.json (if given). */
export async function writeModelFolder(dir: string, model: Uint8Array, config?: Record<string, unknown>, modelPath = 'model.onnx'): Promise<string> {
  await fs.mkdir(path.dirname(path.join(dir, modelPath)), { recursive: true });
  await fs.writeFile(path.join(dir, modelPath), model);
  if (config) await fs.writeFile(path.join(dir, 'preprocessor_config.json'), JSON.stringify(config, null, 2));
  return dir;
}

/** The preprocessor_config.json of a SigLIP base-patch16-224 export, with mean/std chosen by the test. */
export function siglipConfig(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    do_normalize: true,
    do_rescale: true,
    do_resize: true,
    image_mean: [0.5, 0.5, 0.5],
    image_processor_type: 'SiglipImageProcessor',
    image_std: [0.5, 0.5, 0.5],
    processor_class: 'SiglipProcessor',
    resample: 3,
    rescale_factor: 0.00392156862745098,
    size: { height: 224, width: 224 },
    ...over,
  };
}

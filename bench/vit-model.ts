// A ViT vision tower with random weights of a real model's shapes, in the layout a SigLIP export
// writes (config.json, preprocessor_config.json, model.onnx + model.onnx_data): the patch
// convolution, learned positions, pre-norm blocks (LayerNorm, multi-head attention, LayerNorm,
// GELU MLP) and a final LayerNorm -> last_hidden_state [B, L, d]. Its cost is the real model's
// (the same GEMMs, attention and norms); its outputs mean nothing. For the encoder benchmark only.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { GraphBuilder } from '../native-gpu/cpu/onnx-graph.js';
import { seededNormals } from '../extension/engine/core/sampling.js';
import { FAMILY_CONFIGS } from '../test/helpers/siglip-model.js';

export interface VitSpec {
  name: string;
  size: number;
  patch: number;
  hidden: number;
  heads: number;
  layers: number;
  mlp: number;
}

/** SigLIP-base-patch16-224 and SigLIP-so400m-patch14-384, as their configs give them. */
export const SIGLIP_BASE: VitSpec = { name: 'SigLIP-base (224 px, patch 16)', size: 224, patch: 16, hidden: 768, heads: 12, layers: 12, mlp: 3072 };
export const SIGLIP_SO400M: VitSpec = { name: 'SigLIP-so400m (384 px, patch 14)', size: 384, patch: 14, hidden: 1152, heads: 16, layers: 27, mlp: 4304 };

/** 384 / 14 leaves 6 pixels past the last whole patch: the convolution drops them (27 x 27 = 729). */
export const tokensOf = (s: VitSpec): number => Math.floor(s.size / s.patch) ** 2;

/** Multiply-adds x 2 of one image's forward pass (the GEMMs and the attention products). */
export function vitFlops(s: VitSpec): number {
  const l = tokensOf(s), d = s.hidden;
  const perLayer = 2 * l * (4 * d * d + 2 * d * s.mlp) + 2 * 2 * l * l * d;
  return 2 * l * 3 * s.patch * s.patch * d + s.layers * perLayer;
}

const DATA_FILE = 'model.onnx_data';

// long: one straight-line graph; splitting it would scatter the names its nodes share
function vitGraph(s: VitSpec): GraphBuilder {
  const { hidden: d, heads: h, mlp } = s;
  const hd = d / h, l = tokensOf(s);
  const g = new GraphBuilder('vit_vision_tower');
  let seed = 1;
  const weight = (name: string, dims: number[], scale: number) => {
    const data = seededNormals(dims.reduce((a, b) => a * b, 1), seed++).map((x) => x * scale);
    g.initializer(name, { type: 'float32', dims, data }, DATA_FILE);
  };
  const constant = (name: string, dims: number[], data: Float32Array | BigInt64Array) =>
    g.initializer(name, data instanceof Float32Array ? { type: 'float32', dims, data } : { type: 'int64', dims, data });
  const ones = (name: string, n: number, value: number) => constant(name, [n], new Float32Array(n).fill(value));
  g.input('pixel_values', 'float32', ['batch', 3, s.size, s.size]);
  weight('patch_w', [d, 3, s.patch, s.patch], 1 / Math.sqrt(3 * s.patch * s.patch));
  weight('pos', [l, d], 0.02);
  constant('seq_shape', [3], BigInt64Array.of(0n, BigInt(d), -1n));
  constant('heads_shape', [4], BigInt64Array.of(0n, 0n, BigInt(h), BigInt(hd)));
  constant('model_shape', [3], BigInt64Array.of(0n, 0n, BigInt(d)));
  constant('scale', [], Float32Array.of(1 / Math.sqrt(hd)));
  constant('half', [], Float32Array.of(0.5));
  constant('one', [], Float32Array.of(1));
  constant('sqrt_half', [], Float32Array.of(Math.SQRT1_2));
  ones('ln_g', d, 1);
  ones('ln_b', d, 0);
  g.node('Conv', ['pixel_values', 'patch_w'], ['patches'], { kernel_shape: [s.patch, s.patch], strides: [s.patch, s.patch] });
  g.node('Reshape', ['patches', 'seq_shape'], ['channels_first']);
  g.node('Transpose', ['channels_first'], ['tokens'], { perm: [0, 2, 1] });
  g.node('Add', ['tokens', 'pos'], ['x0']);
  let x = 'x0';
  for (let i = 0; i < s.layers; i++) {
    for (const m of ['q', 'k', 'v', 'o']) weight(`w${m}${i}`, [d, d], 1 / Math.sqrt(d));
    weight(`w1_${i}`, [d, mlp], 1 / Math.sqrt(d));
    weight(`w2_${i}`, [mlp, d], 1 / Math.sqrt(mlp));
    g.node('LayerNormalization', [x, 'ln_g', 'ln_b'], [`n${i}`], { axis: -1 });
    for (const m of ['q', 'k', 'v']) {
      g.node('MatMul', [`n${i}`, `w${m}${i}`], [`${m}${i}a`]);
      g.node('Reshape', [`${m}${i}a`, 'heads_shape'], [`${m}${i}b`]);
      g.node('Transpose', [`${m}${i}b`], [`${m}${i}`], { perm: m === 'k' ? [0, 2, 3, 1] : [0, 2, 1, 3] });
    }
    g.node('MatMul', [`q${i}`, `k${i}`], [`s${i}a`]);
    g.node('Mul', [`s${i}a`, 'scale'], [`s${i}b`]);
    g.node('Softmax', [`s${i}b`], [`p${i}`], { axis: -1 });
    g.node('MatMul', [`p${i}`, `v${i}`], [`o${i}a`]);
    g.node('Transpose', [`o${i}a`], [`o${i}b`], { perm: [0, 2, 1, 3] });
    g.node('Reshape', [`o${i}b`, 'model_shape'], [`o${i}c`]);
    g.node('MatMul', [`o${i}c`, `wo${i}`], [`o${i}`]);
    g.node('Add', [x, `o${i}`], [`r${i}`]);
    g.node('LayerNormalization', [`r${i}`, 'ln_g', 'ln_b'], [`rn${i}`], { axis: -1 });
    g.node('MatMul', [`rn${i}`, `w1_${i}`], [`m${i}a`]);
    // GELU, exact: x / 2 (1 + erf(x / sqrt 2)) (Gelu itself needs opset 20)
    g.node('Mul', [`m${i}a`, 'sqrt_half'], [`m${i}b`]);
    g.node('Erf', [`m${i}b`], [`m${i}c`]);
    g.node('Add', [`m${i}c`, 'one'], [`m${i}d`]);
    g.node('Mul', [`m${i}a`, `m${i}d`], [`m${i}e`]);
    g.node('Mul', [`m${i}e`, 'half'], [`m${i}f`]);
    g.node('MatMul', [`m${i}f`, `w2_${i}`], [`m${i}`]);
    g.node('Add', [`r${i}`, `m${i}`], [`x${i + 1}`]);
    x = `x${i + 1}`;
  }
  g.node('LayerNormalization', [x, 'ln_g', 'ln_b'], ['last_hidden_state'], { axis: -1 });
  g.output('last_hidden_state', 'float32', ['batch', l, d]);
  return g;
}

/** Writes the tower as a SigLIP export folder (config.json with the vision config,
 *  preprocessor_config.json, model.onnx and its external data) and returns the folder. */
export async function writeVitFolder(dir: string, s: VitSpec): Promise<string> {
  const g = vitGraph(s);
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'model.onnx'), g.toModel());
  for (const [name, bytes] of g.externalData()) await fs.writeFile(path.join(dir, name), bytes);
  const family = FAMILY_CONFIGS.siglip(s.patch, s.size);
  const config = { ...family.config, vision_config: { ...family.config.vision_config, hidden_size: s.hidden, num_hidden_layers: s.layers, num_attention_heads: s.heads, intermediate_size: s.mlp } };
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  await fs.writeFile(path.join(dir, 'preprocessor_config.json'), JSON.stringify(family.preprocessor, null, 2));
  return dir;
}

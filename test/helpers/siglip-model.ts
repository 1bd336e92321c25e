// SigLIP-shaped ONNX vision towers built in-process for tests (no weights to download):
// pixel_values [B,3,H,W] -> Conv(d, kernel p, stride p) -> Reshape -> Transpose ->
// last_hidden_state [B, L, d]. The convolution weights are the orthonormal 2-D DCT basis, so the
// model computes exactly what the built-in DCT encoder does (for p = 16, d = 768): tests can
// compare the two. Optional leading zero tokens stand in for a ViT's CLS token.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { GraphBuilder } from '../../native-gpu/cpu/onnx-graph.js';

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
  const size = opts.size ?? 224;
  const p = opts.patch ?? 16;
  const d = 3 * p * p;
  const tokens = (size / p) ** 2 + (opts.extraTokens ?? 0);
  const batch = opts.batch ?? 'batch';
  const hw = opts.dynamicSize ? ['height', 'width'] : [size, size];
  const g = new GraphBuilder('dct_vision_tower');
  g.input('pixel_values', 'float32', [batch, 3, ...hw]);
  g.initializer('patch_weight', { type: 'float32', dims: [d, 3, p, p], data: dctWeights(p) });
  g.initializer('seq_shape', { type: 'int64', dims: [3], data: BigInt64Array.of(0n, BigInt(d), -1n) });
  g.node('Conv', ['pixel_values', 'patch_weight'], ['patches'], { kernel_shape: [p, p], strides: [p, p] });
  g.node('Reshape', ['patches', 'seq_shape'], ['channels_first']);
  g.node('Transpose', ['channels_first'], [opts.extraTokens ? 'sequence' : 'last_hidden_state'], { perm: [0, 2, 1] });
  if (opts.extraTokens) {
    g.initializer('pads', { type: 'int64', dims: [6], data: BigInt64Array.of(0n, BigInt(opts.extraTokens), 0n, 0n, 0n, 0n) });
    g.node('Pad', ['sequence', 'pads'], ['last_hidden_state']);
  }
  g.output('last_hidden_state', 'float32', [batch, opts.dynamicSize ? 'tokens' : tokens, d]);
  return g.toModel();
}

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

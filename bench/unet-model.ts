// A small UNet-like noise predictor, built in-process with seeded weights, with the inputs and
// output of a diffusers UNet export: sample [B,4,h,w], timestep [] float, encoder_hidden_states
// [B,L,c] -> out_sample [B,4,h,w]. Shape of the work, not of the quality:
//   conv_in 3x3 4->C, + time embedding (t * w_t through SiLU), SiLU
//   down: conv 3x3 stride 2 C->2C, SiLU
//   cross-attention at h/2 x w/2: q from the features (2C->64), k and v from the conditioning
//     (c->64), softmax(q k^T / 8) v -> 2C, residual
//   up: nearest x2, concat the skip, conv 3x3 3C->C, SiLU; conv_out 3x3 C->4
// Used by the generation benchmark (denoiser steps/s) and the gpu tests (WebGPU EP vs CPU EP).
import { GraphBuilder } from '../native-gpu/cpu/onnx-graph.js';
import { seededRandom } from '../extension/engine/core/sampling.js';

export interface UnetOptions {
  /** feature channels of the first level (default 64) */
  channels?: number;
  /** conditioning width c (default 768) */
  context?: number;
  seed?: number;
}

/** Multiply-adds x 2 of one forward pass for one latent [4, h, w] and L conditioning tokens. */
export function unetFlops(h: number, w: number, tokens: number, opts: UnetOptions = {}): number {
  const c = opts.channels ?? 64;
  const ctx = opts.context ?? 768;
  const hw = h * w;
  const half = hw / 4;
  const conv = (pixels: number, cin: number, cout: number) => 2 * pixels * cin * cout * 9;
  return conv(hw, 4, c) + conv(half, c, 2 * c) + 2 * half * 2 * c * 64 + 2 * 2 * tokens * ctx * 64 + 2 * 2 * half * tokens * 64 +
    2 * half * 64 * 2 * c + conv(hw, 3 * c, c) + conv(hw, c, 4);
}

export function unetLikeDenoiser(opts: UnetOptions = {}): Uint8Array {
  const c = opts.channels ?? 64;
  const ctx = opts.context ?? 768;
  const random = seededRandom(opts.seed ?? 11);
  const weights = (n: number, fanIn: number) => Float32Array.from({ length: n }, () => (random() * 2 - 1) / Math.sqrt(fanIn));
  const g = new GraphBuilder('unet_like');
  g.input('sample', 'float32', ['batch', 4, 'height', 'width']);
  g.input('timestep', 'float32', []);
  g.input('encoder_hidden_states', 'float32', ['batch', 'sequence', ctx]);
  const conv = (name: string, x: string, cin: number, cout: number, stride = 1) => {
    g.initializer(`${name}.w`, { type: 'float32', dims: [cout, cin, 3, 3], data: weights(cout * cin * 9, cin * 9) });
    g.initializer(`${name}.b`, { type: 'float32', dims: [cout], data: new Float32Array(cout) });
    g.node('Conv', [x, `${name}.w`, `${name}.b`], [name], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [stride, stride] });
    return name;
  };
  const silu = (x: string) => {
    g.node('Sigmoid', [x], [`${x}.sig`]);
    g.node('Mul', [x, `${x}.sig`], [`${x}.silu`]);
    return `${x}.silu`;
  };
  const matmul = (name: string, x: string, cin: number, cout: number) => {
    g.initializer(`${name}.w`, { type: 'float32', dims: [cin, cout], data: weights(cin * cout, cin) });
    g.node('MatMul', [x, `${name}.w`], [name]);
    return name;
  };
  // time embedding: SiLU(t/1000 * w_t) as a per-channel bias
  g.initializer('t_scale', { type: 'float32', dims: [], data: Float32Array.of(0.001) });
  g.initializer('time.w', { type: 'float32', dims: [c, 1, 1], data: weights(c, 1) });
  g.node('Mul', ['timestep', 't_scale'], ['t01']);
  g.node('Mul', ['t01', 'time.w'], ['temb']);
  const timeBias = silu('temb');
  g.node('Add', [conv('conv_in', 'sample', 4, c), timeBias], ['h0']);
  const skip = silu('h0');
  const down = silu(conv('down', skip, c, 2 * c, 2));
  // cross-attention over the conditioning tokens
  g.initializer('to_sequence', { type: 'int64', dims: [3], data: BigInt64Array.of(0n, BigInt(2 * c), -1n) });
  g.node('Reshape', [down, 'to_sequence'], ['seq_cf']);
  g.node('Transpose', ['seq_cf'], ['seq'], { perm: [0, 2, 1] });
  const q = matmul('q', 'seq', 2 * c, 64);
  const k = matmul('k', 'encoder_hidden_states', ctx, 64);
  const v = matmul('v', 'encoder_hidden_states', ctx, 64);
  g.node('Transpose', [k], ['kT'], { perm: [0, 2, 1] });
  g.node('MatMul', [q, 'kT'], ['scores']);
  g.initializer('inv_sqrt_d', { type: 'float32', dims: [], data: Float32Array.of(1 / 8) });
  g.node('Mul', ['scores', 'inv_sqrt_d'], ['scaled']);
  g.node('Softmax', ['scaled'], ['attn'], { axis: -1 });
  g.node('MatMul', ['attn', v], ['mixed']);
  const o = matmul('o', 'mixed', 64, 2 * c);
  g.node('Transpose', [o], ['o_cf'], { perm: [0, 2, 1] });
  g.node('Shape', [down], ['down_shape']);
  g.node('Reshape', ['o_cf', 'down_shape'], ['attended']);
  g.node('Add', [down, 'attended'], ['mid']);
  g.initializer('up_scales', { type: 'float32', dims: [4], data: Float32Array.of(1, 1, 2, 2) });
  g.node('Resize', ['mid', '', 'up_scales'], ['upsampled'], { mode: 'nearest' });
  g.node('Concat', ['upsampled', skip], ['joined'], { axis: 1 });
  const up = silu(conv('up', 'joined', 3 * c, c));
  g.initializer('conv_out.w', { type: 'float32', dims: [4, c, 3, 3], data: weights(4 * c * 9, c * 9) });
  g.node('Conv', [up, 'conv_out.w'], ['out_sample'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
  g.output('out_sample', 'float32', ['batch', 4, 'height', 'width']);
  return g.toModel();
}


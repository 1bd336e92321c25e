// A small causal transformer in the decoder-with-past layout of optimum / Transformers.js, built
// with the engine's ONNX writer: token and position embeddings, `layers` blocks of multi-head
// attention over [past ; new] keys and values (causal and padding masks) and a tanh MLP, each with
// a residual, then an LM head. Every output logit depends on every token in the cache. The weights
// come back too, for the NumPy reference (AR_REFERENCE) to recompute the same function.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { GraphBuilder, type TensorValue } from '../../native-gpu/cpu/onnx-graph.js';
import { seededNormals } from '../../extension/engine/core/sampling.js';

export interface ArModelSpec {
  vocab: number;
  hidden: number;
  heads: number;
  layers: number;
  /** MLP width (default: hidden) */
  mlp?: number;
  /** positions the position embedding covers (default 64) */
  maxPositions?: number;
  /** past inputs and present outputs (default true) */
  cache?: boolean;
  /** leave the present outputs out (a broken layout) */
  noPresent?: boolean;
  /** past inputs and present outputs in f16 (attention itself in f32) */
  halfCache?: boolean;
  /** a position_ids input feeding a position embedding (default true) */
  positionIds?: boolean;
  /** a use_cache_branch input, as optimum's merged decoders have (it must not change the logits) */
  useCacheBranch?: boolean;
  seed?: number;
  /** scale of the LM head's weights (default 2 / sqrt(hidden); NaN poisons the logits) */
  lmScale?: number;
  /** weights go to this external data file beside the model (large models) */
  externalFile?: string;
}

export interface BuiltArModel {
  bytes: Uint8Array;
  external: Map<string, Uint8Array>;
  weights: Map<string, { dims: number[]; data: Float32Array }>;
}

const MASK_BIAS = 1e4;

// long: one straight-line graph; splitting it would scatter the names its nodes share
export function buildArModel(spec: ArModelSpec): BuiltArModel {
  const { vocab: v, hidden: d, heads: h, layers } = spec;
  const mlp = spec.mlp ?? d;
  const hd = d / h;
  const maxPos = spec.maxPositions ?? 64;
  const cache = spec.cache ?? true;
  const g = new GraphBuilder('ar');
  const weights = new Map<string, { dims: number[]; data: Float32Array }>();
  let seed = spec.seed ?? 1;
  const weight = (name: string, dims: number[], scale: number) => {
    const data = seededNormals(dims[0]! * dims[1]!, seed++).map((x) => x * scale);
    weights.set(name, { dims, data });
    g.initializer(name, { type: 'float32', dims, data }, spec.externalFile);
  };
  const constant = (name: string, t: TensorValue) => g.initializer(name, t);
  g.input('input_ids', 'int64', ['batch', 'seq']);
  g.input('attention_mask', 'int64', ['batch', 'total']);
  if (spec.positionIds ?? true) g.input('position_ids', 'int64', ['batch', 'seq']);
  weight('emb', [v, d], 1);
  weight('pos', [maxPos, d], 1);
  constant('one', { type: 'float32', dims: [], data: Float32Array.of(1) });
  constant('big', { type: 'float32', dims: [], data: Float32Array.of(MASK_BIAS) });
  constant('scale', { type: 'float32', dims: [], data: Float32Array.of(1 / Math.sqrt(hd)) });
  constant('shape4', { type: 'int64', dims: [4], data: BigInt64Array.of(0n, 0n, BigInt(h), BigInt(hd)) });
  constant('shape3', { type: 'int64', dims: [3], data: BigInt64Array.of(0n, 0n, BigInt(d)) });
  constant('axes12', { type: 'int64', dims: [2], data: BigInt64Array.of(1n, 2n) });
  g.node('Gather', ['emb', 'input_ids'], ['tok']);
  if (spec.positionIds ?? true) {
    g.node('Gather', ['pos', 'position_ids'], ['posv']);
    g.node('Add', ['tok', 'posv'], ['x0']);
  } else {
    g.node('Identity', ['tok'], ['x0']);
  }
  // bias[b, 0, i, j] = 0 where key j is visible to query i (j <= past + i, mask[b, j] = 1), else -1e4
  g.node('Shape', ['input_ids'], ['S1'], { start: 1 });
  g.node('Shape', ['attention_mask'], ['T1'], { start: 1 });
  g.node('Sub', ['T1', 'S1'], ['P1']);
  g.node('Squeeze', ['P1'], ['P0']);
  g.node('Concat', ['S1', 'T1'], ['ST'], { axis: 0 });
  g.node('ConstantOfShape', ['ST'], ['ones'], { value: { type: 'float32', dims: [1], data: Float32Array.of(1) } });
  g.node('Trilu', ['ones', 'P0'], ['tri'], { upper: 0 });
  g.node('Sub', ['tri', 'one'], ['tri1']);
  g.node('Mul', ['tri1', 'big'], ['causal']);
  g.node('Cast', ['attention_mask'], ['amf'], { to: 1 });
  g.node('Unsqueeze', ['amf', 'axes12'], ['amu']);
  g.node('Sub', ['amu', 'one'], ['am1']);
  g.node('Mul', ['am1', 'big'], ['pad']);
  g.node('Add', ['causal', 'pad'], ['bias']);
  let x = 'x0';
  for (let i = 0; i < layers; i++) {
    for (const m of ['wq', 'wk', 'wv', 'wo']) weight(`${m}${i}`, [d, d], 1 / Math.sqrt(d));
    weight(`w1_${i}`, [d, mlp], 1 / Math.sqrt(d));
    weight(`w2_${i}`, [mlp, d], 1 / Math.sqrt(mlp));
    for (const m of ['q', 'k', 'v']) {
      g.node('MatMul', [x, `w${m}${i}`], [`${m}${i}a`]);
      g.node('Reshape', [`${m}${i}a`, 'shape4'], [`${m}${i}b`]);
      g.node('Transpose', [`${m}${i}b`], [`${m}${i}`], { perm: [0, 2, 1, 3] });
    }
    const [key, value] = cache ? keysAndValues(g, spec, i) : [`k${i}`, `v${i}`];
    g.node('Transpose', [key], [`kt${i}`], { perm: [0, 1, 3, 2] });
    g.node('MatMul', [`q${i}`, `kt${i}`], [`s${i}a`]);
    g.node('Mul', [`s${i}a`, 'scale'], [`s${i}b`]);
    g.node('Add', [`s${i}b`, 'bias'], [`s${i}c`]);
    g.node('Softmax', [`s${i}c`], [`p${i}`], { axis: -1 });
    g.node('MatMul', [`p${i}`, value], [`o${i}a`]);
    g.node('Transpose', [`o${i}a`], [`o${i}b`], { perm: [0, 2, 1, 3] });
    g.node('Reshape', [`o${i}b`, 'shape3'], [`o${i}c`]);
    g.node('MatMul', [`o${i}c`, `wo${i}`], [`o${i}`]);
    g.node('Add', [x, `o${i}`], [`r${i}`]);
    g.node('MatMul', [`r${i}`, `w1_${i}`], [`m${i}a`]);
    g.node('Tanh', [`m${i}a`], [`m${i}b`]);
    g.node('MatMul', [`m${i}b`, `w2_${i}`], [`m${i}`]);
    g.node('Add', [`r${i}`, `m${i}`], [`x${i + 1}`]);
    x = `x${i + 1}`;
  }
  weight('lm', [d, v], spec.lmScale ?? 2 / Math.sqrt(d));
  g.node('MatMul', [x, 'lm'], [spec.useCacheBranch ? 'logits0' : 'logits']);
  if (spec.useCacheBranch) {
    g.input('use_cache_branch', 'bool', [1]);
    constant('zero', { type: 'float32', dims: [], data: Float32Array.of(0) });
    g.node('Cast', ['use_cache_branch'], ['branchf'], { to: 1 });
    g.node('Mul', ['branchf', 'zero'], ['branch0']);
    g.node('Add', ['logits0', 'branch0'], ['logits']);
  }
  g.output('logits', 'float32', ['batch', 'seq', v]);
  return { bytes: g.toModel(), external: g.externalData(), weights };
}

/** Layer i's keys and values, [past ; new]: past inputs in, present outputs out (f16 ones cast
 *  from and to the f32 the attention runs in). */
function keysAndValues(g: GraphBuilder, spec: ArModelSpec, i: number): [string, string] {
  const type = spec.halfCache ? 'float16' : 'float32';
  const hd = spec.hidden / spec.heads;
  return (['key', 'value'] as const).map((kind) => {
    const past = `past_key_values.${i}.${kind}`;
    const present = `present.${i}.${kind}`;
    g.input(past, type, ['batch', spec.heads, 'past', hd]);
    if (spec.halfCache) g.node('Cast', [past], [`${past}.f32`], { to: 1 });
    const joined = spec.halfCache || spec.noPresent ? `${present}.f32` : present;
    g.node('Concat', [spec.halfCache ? `${past}.f32` : past, `${kind[0]}${i}`], [joined], { axis: 2 });
    if (spec.noPresent) return joined;
    if (spec.halfCache) g.node('Cast', [joined], [present], { to: 10 });
    g.output(present, type, ['batch', spec.heads, 'total', hd]);
    return joined;
  }) as [string, string];
}

/** Writes an AR prior folder: config.json, the model (onnx/model.onnx by default; + external data), unicode2.json. */
export async function writeArFolder(dir: string, spec: ArModelSpec, sidecar: Record<string, unknown>, modelFile = 'onnx/model.onnx'): Promise<BuiltArModel> {
  const model = buildArModel(spec);
  await fs.mkdir(path.dirname(path.join(dir, modelFile)), { recursive: true });
  await fs.writeFile(path.join(dir, modelFile), model.bytes);
  for (const [file, bytes] of model.external) await fs.writeFile(path.join(dir, path.dirname(modelFile), file), bytes);
  const config = { model_type: 'llamagen-test', num_hidden_layers: spec.layers, num_attention_heads: spec.heads, hidden_size: spec.hidden, vocab_size: spec.vocab, max_position_embeddings: spec.maxPositions ?? 64 };
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(config));
  await fs.writeFile(path.join(dir, 'unicode2.json'), JSON.stringify(sidecar));
  return model;
}

/** Writes the weights as raw little-endian f32 files plus weights.json (name -> dims). */
export async function writeWeights(dir: string, weights: BuiltArModel['weights']): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  const index: Record<string, number[]> = {};
  for (const [name, w] of weights) {
    index[name] = w.dims;
    await fs.writeFile(path.join(dir, `${name}.f32`), new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength));
  }
  await fs.writeFile(path.join(dir, 'weights.json'), JSON.stringify(index));
}

/**
 * NumPy reference: argv = weights dir, spec JSON ({heads, layers, offset, k, cells, guidance,
 * rows: [[prompt...], ...]}). Greedy raster sampling over the image tokens, recomputing the whole
 * sequence each step in float64; prints {"ids": [...], "gap": smallest top-1 / top-2 margin}.
 */
export const AR_REFERENCE = `
import json, sys, os
import numpy as np
wd, spec = sys.argv[1], json.loads(sys.argv[2])
dims = json.load(open(os.path.join(wd, 'weights.json')))
W = {n: np.fromfile(os.path.join(wd, n + '.f32'), dtype='<f4').astype(np.float64).reshape(s) for n, s in dims.items()}
H, L = spec['heads'], spec['layers']
def forward(seq):
    S = len(seq)
    x = W['emb'][seq] + W['pos'][np.arange(S)]
    d = x.shape[1]; hd = d // H
    bias = (np.tril(np.ones((S, S))) - 1) * ${MASK_BIAS}
    for i in range(L):
        q, k, v = [(x @ W[m + str(i)]).reshape(S, H, hd).transpose(1, 0, 2) for m in ('wq', 'wk', 'wv')]
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + bias
        p = np.exp(s - s.max(-1, keepdims=True)); p /= p.sum(-1, keepdims=True)
        o = (p @ v).transpose(1, 0, 2).reshape(S, d) @ W['wo' + str(i)]
        r = x + o
        x = r + np.tanh(r @ W['w1_' + str(i)]) @ W['w2_' + str(i)]
    return x[-1] @ W['lm']
off, K, G = spec['offset'], spec['k'], spec['guidance']
rows = [list(r) for r in spec['rows']]
ids, gap = [], np.inf
for c in range(spec['cells']):
    l = [forward(r)[off:off + K] for r in rows]
    z = l[0] if len(l) == 1 else l[1] + G * (l[0] - l[1])
    top = np.sort(z)[-2:]
    gap = min(gap, top[1] - top[0])
    t = int(np.argmax(z))
    ids.append(t)
    for r in rows: r.append(off + t)
print(json.dumps({'ids': ids, 'gap': float(gap)}))
`;

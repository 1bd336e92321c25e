// The AR prior's decoder session: its layout read from the model's own inputs and outputs (the
// decoder-with-past layout of optimum and Transformers.js) and config.json, and a runner that
// feeds tokens step by step, carrying the KV cache (`present.{i}.*` of one step become
// `past_key_values.{i}.*` of the next). A model without past inputs is re-run on the whole
// sequence each step: the same logits, quadratically more work.
import type * as ort from 'onnxruntime-node';
import { UserError } from '../../../../common/errors.js';
import { onnxruntime } from '../../../../native-gpu/onnxruntime.js';
import { describeTensors, openModelSession, type ModelSession, type ModelSessionOptions, type TensorInfo } from '../../../../native-gpu/onnx-session.js';
import { MAX_AR_HEADS, MAX_AR_HEAD_DIM, MAX_AR_LAYERS, MAX_AR_PREFIX, MAX_AR_VOCAB, MAX_GRID_SIDE } from '../../core/limits.js';
import { FLOAT_TYPES, fixed, floats } from '../../../../native-gpu/onnx-tensors.js';
import type { ArFolder } from './folder.js';

/** The longest sequence a run feeds: the longest prompt and the largest grid. */
export const MAX_AR_SEQUENCE = MAX_AR_PREFIX + 1 + MAX_GRID_SIDE * MAX_GRID_SIDE;

export interface ArLayout {
  layers: number;
  heads: number;
  headDim: number;
  /** false: no past inputs; every step runs the whole sequence */
  cache: boolean;
  /** the past tensors' element type */
  pastType: 'float32' | 'float16';
  positionIds: boolean;
  useCacheBranch: boolean;
  /** the logits' last dimension when the model fixes it */
  vocab: number | null;
  /** the longest sequence the model takes (max_position_embeddings, when config.json says) */
  maxPositions: number | null;
}

export interface ArModel {
  folder: ArFolder;
  session: ModelSession;
  layout: ArLayout;
}

const PAST = /^past_key_values\.(\d+)\.(key|value)$/;

function configInt(config: Record<string, unknown>, keys: string[], file: string, max: number): number | null {
  for (const key of keys) {
    const v = config[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw new UserError(`${file}: "${key}" must be a whole number in 1..${max}, found ${JSON.stringify(v)}`);
    return v;
  }
  return null;
}

/** Layers from the past inputs (0..L-1, key and value each), heads and head size from their
 *  fixed dimensions or from config.json. */
function pastLayout(f: ArFolder, past: TensorInfo[]): Pick<ArLayout, 'layers' | 'heads' | 'headDim' | 'pastType'> {
  const cfg = `${f.folder}/config.json`;
  const c = f.config;
  const configLayers = configInt(c, ['num_hidden_layers', 'n_layer', 'num_layers'], cfg, MAX_AR_LAYERS);
  const layers = past.length / 2;
  if (!Number.isInteger(layers) || layers > MAX_AR_LAYERS) throw new UserError(`${f.model}: ${past.length} past inputs; expected key and value for each of at most ${MAX_AR_LAYERS} layers`);
  for (let i = 0; i < layers; i++) {
    for (const kind of ['key', 'value']) if (!past.some((p) => p.name === `past_key_values.${i}.${kind}`)) throw new UserError(`${f.model}: input 'past_key_values.${i}.${kind}' missing (layers 0..${layers - 1} need key and value each)`);
  }
  if (configLayers !== null && configLayers !== layers) throw new UserError(`${cfg} says ${configLayers} layers but ${f.model} takes past inputs for ${layers}`);
  const first = past[0]!;
  if (first.shape.length !== 4 || !FLOAT_TYPES.includes(first.type) || past.some((p) => p.type !== first.type)) {
    throw new UserError(`${f.model}: past inputs must be [batch, heads, past, head_size] float32 or float16, found ${describeTensors(past.slice(0, 2))}`);
  }
  const attention = configInt(c, ['num_attention_heads', 'n_head'], cfg, MAX_AR_HEADS);
  const heads = fixed(first.shape[1]) ?? configInt(c, ['num_key_value_heads'], cfg, MAX_AR_HEADS) ?? attention;
  const hidden = configInt(c, ['hidden_size', 'n_embd', 'd_model'], cfg, MAX_AR_HEADS * MAX_AR_HEAD_DIM);
  const headDim = fixed(first.shape[3]) ?? configInt(c, ['head_dim'], cfg, MAX_AR_HEAD_DIM) ?? (hidden && attention ? hidden / attention : null);
  if (heads === null || headDim === null || !Number.isInteger(headDim) || heads > MAX_AR_HEADS || headDim > MAX_AR_HEAD_DIM) {
    throw new UserError(`${f.model}: cannot tell the heads and head size of the past inputs (${describeTensors([first])}); give num_key_value_heads and head_dim in ${cfg} (at most ${MAX_AR_HEADS} and ${MAX_AR_HEAD_DIM})`);
  }
  return { layers, heads, headDim, pastType: first.type as 'float32' | 'float16' };
}

const EXPECTED = "inputs 'input_ids' [batch, seq] int64, 'attention_mask' [batch, total] int64, optional 'position_ids', 'past_key_values.{i}.key|value', 'use_cache_branch'; outputs 'logits' [batch, seq, vocab], 'present.{i}.key|value'";

/** Checks the model's inputs and outputs against the decoder-with-past layout, and its vocabulary
 *  against the sidecar's image range. */
export function readLayout(f: ArFolder, session: ModelSession): ArLayout {
  const input = (name: string) => session.inputs.find((i) => i.name === name);
  const ids = input('input_ids');
  const mask = input('attention_mask');
  const past = session.inputs.filter((i) => PAST.test(i.name));
  const known = new Set(['input_ids', 'attention_mask', 'position_ids', 'use_cache_branch', ...past.map((p) => p.name)]);
  const extra = session.inputs.filter((i) => !known.has(i.name));
  if (!ids || ids.type !== 'int64' || !mask || mask.type !== 'int64' || extra.length) {
    throw new UserError(`${f.model}: expected ${EXPECTED}; found inputs ${describeTensors(session.inputs)}`);
  }
  const logits = session.outputs.find((o) => o.name === 'logits');
  if (!logits || !FLOAT_TYPES.includes(logits.type) || logits.shape.length !== 3) throw new UserError(`${f.model}: expected output 'logits' [batch, seq, vocab] float; found ${describeTensors(session.outputs)}`);
  const cache = past.length > 0;
  const sizes = cache ? pastLayout(f, past) : { layers: 0, heads: 0, headDim: 0, pastType: 'float32' as const };
  for (let i = 0; i < sizes.layers; i++) {
    for (const kind of ['key', 'value']) if (!session.outputs.some((o) => o.name === `present.${i}.${kind}`)) throw new UserError(`${f.model}: output 'present.${i}.${kind}' missing: a model with past inputs must return the updated cache (${EXPECTED})`);
  }
  const cfg = `${f.folder}/config.json`;
  const vocab = fixed(logits.shape[2]) ?? configInt(f.config, ['vocab_size'], cfg, MAX_AR_VOCAB);
  if (vocab !== null && vocab > MAX_AR_VOCAB) throw new UserError(`${f.model}: a vocabulary of ${vocab} exceeds the limit of ${MAX_AR_VOCAB} ids`);
  const s = f.sidecar;
  const top = s.imageTokenOffset + s.numImageTokens;
  if (vocab !== null && vocab < top) throw new UserError(`${f.model}: a vocabulary of ${vocab} is smaller than the image tokens ${s.imageTokenOffset}..${top - 1} of ${f.sidecarFile}`);
  return {
    ...sizes,
    cache,
    positionIds: !!input('position_ids'),
    useCacheBranch: !!input('use_cache_branch'),
    vocab,
    maxPositions: configInt(f.config, ['max_position_embeddings', 'n_positions', 'block_size'], cfg, 2 ** 31 - 1),
  };
}

/** Opens the folder's model on the backend's device (WebGPU provider, else CPU) and checks it. */
export async function openArModel(f: ArFolder, opts: ModelSessionOptions): Promise<ArModel> {
  const session = await openModelSession(f.model, f.model, opts);
  try {
    const layout = readLayout(f, session);
    if (!layout.cache) {
      const warn = opts.onWarning ?? ((m: string) => process.stderr.write(`warning: ${m}\n`));
      warn(`${f.model} takes no past_key_values: without a KV cache every token re-runs the whole sequence (slower)`);
    }
    return { folder: f, session, layout };
  } catch (err) {
    await session.release();
    throw err;
  }
}

/** Throws unless the model takes a sequence of `total` tokens (checked before a run starts, and
 *  at each step). */
export function checkSequenceLength(model: ArModel, total: number): void {
  const max = model.layout.maxPositions;
  if (total > MAX_AR_SEQUENCE || (max !== null && total > max)) {
    throw new UserError(`${model.folder.model}: a sequence of ${total} tokens exceeds ${max !== null && max < MAX_AR_SEQUENCE ? `the model's max_position_embeddings (${max})` : `the limit of ${MAX_AR_SEQUENCE}`}`);
  }
}

/** Logits of the positions one step fed: [rows, n, vocab]. */
export interface StepLogits {
  data: Float32Array;
  rows: number;
  n: number;
  vocab: number;
}

const int64 = (values: number[], dims: number[]): ort.Tensor => new (onnxruntime().Tensor)('int64', BigInt64Array.from(values, BigInt), dims);

/** Feeds the rows of one sequence batch step by step. */
export class ArRunner {
  private past: Record<string, ort.Tensor> = {};
  /** tokens fed so far, per row (without a cache they are fed again each step) */
  private readonly history: number[][];

  constructor(private readonly model: ArModel, readonly rows: number) {
    this.history = Array.from({ length: rows }, () => []);
    const { layers, heads, headDim, pastType } = model.layout;
    const { Tensor } = onnxruntime();
    for (let i = 0; i < layers; i++) {
      for (const kind of ['key', 'value']) {
        const empty = pastType === 'float16' ? new Uint16Array(0) : new Float32Array(0);
        this.past[`past_key_values.${i}.${kind}`] = new Tensor(pastType, empty, [rows, heads, 0, headDim]);
      }
    }
  }

  get length(): number {
    return this.history[0]!.length;
  }

  /** Feeds `tokens[r]` (the same count per row) and returns the logits at those positions. */
  async step(tokens: number[][]): Promise<StepLogits> {
    const { layout } = this.model;
    const n = tokens[0]!.length;
    const before = this.length;
    const total = before + n;
    checkSequenceLength(this.model, total);
    tokens.forEach((t, r) => this.history[r]!.push(...t));
    const fed = layout.cache ? tokens : this.history;
    const start = layout.cache ? before : 0;
    const len = fed[0]!.length;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: int64(fed.flat(), [this.rows, len]),
      attention_mask: int64(new Array<number>(this.rows * total).fill(1), [this.rows, total]),
      ...(layout.cache ? this.past : {}),
    };
    if (layout.positionIds) feeds.position_ids = int64(fed.flatMap(() => Array.from({ length: len }, (_, j) => start + j)), [this.rows, len]);
    if (layout.useCacheBranch) feeds.use_cache_branch = new (onnxruntime().Tensor)('bool', [before > 0], [1]);
    const out = await this.model.session.run(feeds);
    if (layout.cache) {
      const next: Record<string, ort.Tensor> = {};
      for (const name of Object.keys(this.past)) next[name] = out[name.replace('past_key_values.', 'present.')]!;
      this.past = next;
    }
    return this.lastLogits(out.logits!, n, len);
  }

  /** The logits of the last n of the `len` positions the model returned. */
  private lastLogits(t: ort.Tensor, n: number, len: number): StepLogits {
    const [rows, seq, vocab] = t.dims as number[];
    if (t.dims.length !== 3 || rows !== this.rows || seq !== len) {
      throw new UserError(`${this.model.folder.model}: 'logits' came back [${t.dims.join(',')}], expected [${this.rows}, ${len}, vocab]`);
    }
    const all = floats(t);
    if (n === len) return { data: all, rows, n, vocab: vocab! };
    const data = new Float32Array(rows * n * vocab!);
    for (let r = 0; r < rows; r++) data.set(all.subarray((r * len + len - n) * vocab!, (r * len + len) * vocab!), r * n * vocab!);
    return { data, rows, n, vocab: vocab! };
  }
}

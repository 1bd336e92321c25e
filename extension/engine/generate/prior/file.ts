// A token prior (model.ts) as a file. .safetensors, all tensors 1-D; n = 1 .. order-1 is the
// number of neighbours in the context:
//   unigram              I64 [K]      c(w)
//   context{n}.parent    I32 [C_n]    index of the parent context in context{n-1} (0 for n = 1)
//   context{n}.neighbour I32 [C_n]    the added neighbour's code, K = off the grid
//   context{n}.start     I64 [C_n+1]  followers of context i are rows start[i] .. start[i+1]-1
//   context{n}.code      I32 [E_n]    follower codes, ascending within a context
//   context{n}.count     I64 [E_n]    c(h, w)
// Contexts are sorted by (parent, neighbour). __metadata__: format, formatVersion, k, order,
// neighbours, smoothing, codebook (fingerprint), tokens, grid, images, createdAt.
import { UserError } from '../../../../common/errors.js';
import { readSafetensorsIndex, readTensors, writeSafetensors, type Tensor } from '../../io/formats/safetensors.js';
import { checkGridSize, MAX_PRIOR_K } from '../../core/limits.js';
import { MAX_PRIOR_ORDER, PRIOR_NEIGHBOURS, withDerived, type ContextLevel, type TokenPrior } from './model.js';

const PRIOR_FORMAT = 'unicode2-token-prior';
const PRIOR_FORMAT_VERSION = 1;
const SMOOTHING = 'interpolated Witten-Bell';

const i64 = (values: Float64Array): Tensor => ({ dtype: 'I64', shape: [values.length], data: BigInt64Array.from(values, (v) => BigInt(v)) });
const i32 = (values: Int32Array): Tensor => ({ dtype: 'I32', shape: [values.length], data: values });

export async function writePrior(file: string, prior: TokenPrior): Promise<void> {
  const tensors: Record<string, Tensor> = { unigram: i64(prior.unigram) };
  prior.levels.forEach((level, i) => {
    const n = i + 1;
    tensors[`context${n}.parent`] = i32(level.parent);
    tensors[`context${n}.neighbour`] = i32(level.neighbour);
    tensors[`context${n}.start`] = i64(level.start);
    tensors[`context${n}.code`] = i32(level.code);
    tensors[`context${n}.count`] = i64(level.count);
  });
  const metadata: Record<string, string> = {
    format: PRIOR_FORMAT,
    formatVersion: String(PRIOR_FORMAT_VERSION),
    k: String(prior.k),
    order: String(prior.order),
    neighbours: JSON.stringify(PRIOR_NEIGHBOURS.slice(0, prior.order - 1).map((n) => n[2])),
    smoothing: SMOOTHING,
    codebook: prior.codebook,
    tokens: String(prior.tokens),
    grid: JSON.stringify(prior.grid),
    images: String(prior.images),
    createdAt: prior.createdAt,
  };
  await writeSafetensors(file, tensors, metadata);
}

/** The tensors of a prior file, read with their checks: a problem fails naming the file. */
function priorTensors(file: string, tensors: Record<string, Tensor>) {
  const fail = (problem: string): never => {
    throw new UserError(`${file}: ${problem}`);
  };
  const vector = (name: string, dtype: 'I32' | 'I64', length?: number): Tensor['data'] => {
    const t = tensors[name];
    if (!t) return fail(`missing tensor '${name}'`);
    if (t.dtype !== dtype || t.shape.length !== 1 || (length !== undefined && t.shape[0] !== length)) {
      fail(`tensor '${name}' must be ${dtype} [${length ?? 'n'}], found ${t.dtype} [${t.shape.join(', ')}]`);
    }
    return t.data;
  };
  /** An I64 tensor of counts (or offsets) as numbers, each a whole number from `min` to 2^53 - 1. */
  const counts = (name: string, min: number, length?: number, what = 'counts') => {
    const values = Float64Array.from(vector(name, 'I64', length) as BigInt64Array, Number);
    const bad = values.findIndex((c) => !(c >= min && c <= Number.MAX_SAFE_INTEGER));
    if (bad >= 0) fail(`tensor '${name}' holds ${values[bad]} at row ${bad}; expected ${what} from ${min} to ${Number.MAX_SAFE_INTEGER}`);
    return values;
  };
  return { fail, vector, counts };
}

/** The offsets of each context's followers: start[0] = 0, rising strictly (every context has a
 *  follower), start[C] = E. Checked before any loop runs over them. */
function checkStarts({ fail }: ReturnType<typeof priorTensors>, n: number, start: Float64Array, followers: number): void {
  if (start[0] !== 0 || start[start.length - 1] !== followers) fail(`tensor 'context${n}.start' does not cover its ${followers} followers`);
  for (let i = 1; i < start.length; i++) {
    if (!(start[i]! > start[i - 1]!)) fail(`context ${i - 1} of length ${n} has no followers (tensor 'context${n}.start' must rise at every row)`);
  }
}

/** The contexts of n neighbours, checked against the `parents` contexts of n - 1. */
function readLevel(read: ReturnType<typeof priorTensors>, n: number, parents: number, k: number): ContextLevel {
  const { fail, vector, counts } = read;
  const parent = vector(`context${n}.parent`, 'I32') as Int32Array;
  const contexts = parent.length;
  const neighbour = vector(`context${n}.neighbour`, 'I32', contexts) as Int32Array;
  const code = vector(`context${n}.code`, 'I32') as Int32Array;
  const start = counts(`context${n}.start`, 0, contexts + 1, 'offsets');
  const count = counts(`context${n}.count`, 1, code.length);
  checkStarts(read, n, start, code.length);
  if (code.some((c) => c < 0 || c >= k)) fail(`tensor 'context${n}.code' holds a code outside 0..${k - 1}`);
  const keys = new Float64Array(contexts);
  const total = new Float64Array(contexts);
  for (let i = 0; i < contexts; i++) {
    if (parent[i]! < 0 || parent[i]! >= parents || neighbour[i]! < 0 || neighbour[i]! > k) fail(`context ${i} of length ${n} refers outside the prior`);
    keys[i] = parent[i]! * (k + 1) + neighbour[i]!;
    if (i > 0 && keys[i]! <= keys[i - 1]!) fail(`contexts of length ${n} are not sorted by (parent, neighbour)`);
    for (let e = start[i]!; e < start[i + 1]!; e++) {
      if (e > start[i]! && code[e]! <= code[e - 1]!) fail(`the followers of context ${i} of length ${n} are not in ascending code order`);
      total[i] += count[e]!;
    }
    if (total[i]! > Number.MAX_SAFE_INTEGER) fail(`context ${i} of length ${n} counts more than ${Number.MAX_SAFE_INTEGER} tokens`);
  }
  return { keys, parent, neighbour, start, code, count, total };
}

/** The metadata a prior is sized by, each checked against what makes sense before any tensor is
 *  read: K against the memory it implies, the order, the default grid, the counts. */
function priorMetadata(file: string, metadata: Record<string, string>) {
  const fail = (problem: string): never => {
    throw new UserError(`${file}: ${problem}`);
  };
  if (metadata.format !== PRIOR_FORMAT) fail(`not a UniCode² token prior (metadata format is ${JSON.stringify(metadata.format ?? null)}, expected "${PRIOR_FORMAT}")`);
  if (metadata.formatVersion !== String(PRIOR_FORMAT_VERSION)) fail(`token prior format version ${metadata.formatVersion} is not supported (expected ${PRIOR_FORMAT_VERSION})`);
  const whole = (key: string, min: number, max: number) => {
    const text = metadata[key] ?? '';
    const value = /^\d+$/.test(text) ? Number(text) : NaN;
    if (!(value >= min && value <= max)) fail(`metadata ${key} must be a whole number from ${min} to ${max}, found ${JSON.stringify(metadata[key] ?? null)}`);
    return value;
  };
  const k = whole('k', 1, MAX_PRIOR_K);
  const order = whole('order', 1, MAX_PRIOR_ORDER);
  let grid: unknown;
  try {
    grid = JSON.parse(metadata.grid ?? '');
  } catch {
    fail(`metadata grid must be [h, w], found ${JSON.stringify(metadata.grid ?? null)}`);
  }
  checkGridSize(Array.isArray(grid) ? grid : [grid], `${file}: metadata`);
  const images = metadata.images === undefined ? 0 : whole('images', 0, Number.MAX_SAFE_INTEGER);
  const tokens = metadata.tokens === undefined ? null : whole('tokens', 1, Number.MAX_SAFE_INTEGER);
  return { k, order, grid, images, tokens, codebook: metadata.codebook ?? '', createdAt: metadata.createdAt ?? '' };
}

export async function readPrior(file: string): Promise<TokenPrior> {
  const index = await readSafetensorsIndex(file);
  const { k, order, grid, images, tokens: declared, codebook, createdAt } = priorMetadata(file, index.metadata);
  const read = priorTensors(file, await readTensors(index, [...index.tensors.keys()]));
  const unigram = read.counts('unigram', 0, k);
  const levels: ContextLevel[] = [];
  let parents = 1; // the root context
  for (let n = 1; n < order; n++) {
    const level = readLevel(read, n, parents, k);
    levels.push(level);
    parents = level.keys.length;
  }
  const tokens = unigram.reduce((s, c) => s + c, 0);
  // Probabilities divide by the token count: zero tokens would make every one of them NaN.
  if (!(tokens >= 1 && tokens <= Number.MAX_SAFE_INTEGER)) read.fail(`the unigram counts sum to ${tokens}; expected 1 to ${Number.MAX_SAFE_INTEGER} tokens`);
  if (declared !== null && declared !== tokens) read.fail(`metadata tokens is ${declared} but the unigram counts sum to ${tokens}`);
  return withDerived({ k, order, codebook, tokens, grid: grid as [number, number], images, createdAt, unigram, levels });
}

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
import { readSafetensors, writeSafetensors, type Tensor } from '../../io/formats/safetensors.js';
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
  const numbers = (name: string, length?: number) => Float64Array.from(vector(name, 'I64', length) as BigInt64Array, Number);
  return { fail, vector, numbers };
}

/** The contexts of n neighbours, checked against the `parents` contexts of n - 1. */
function readLevel({ fail, vector, numbers }: ReturnType<typeof priorTensors>, n: number, parents: number, k: number): ContextLevel {
  const parent = vector(`context${n}.parent`, 'I32') as Int32Array;
  const contexts = parent.length;
  const neighbour = vector(`context${n}.neighbour`, 'I32', contexts) as Int32Array;
  const start = numbers(`context${n}.start`, contexts + 1);
  const code = vector(`context${n}.code`, 'I32') as Int32Array;
  const count = numbers(`context${n}.count`, code.length);
  const keys = new Float64Array(contexts);
  const total = new Float64Array(contexts);
  for (let i = 0; i < contexts; i++) {
    if (parent[i]! < 0 || parent[i]! >= parents || neighbour[i]! < 0 || neighbour[i]! > k) fail(`context ${i} of length ${n} refers outside the prior`);
    keys[i] = parent[i]! * (k + 1) + neighbour[i]!;
    if (i > 0 && keys[i]! <= keys[i - 1]!) fail(`contexts of length ${n} are not sorted by (parent, neighbour)`);
    if (!(start[i]! < start[i + 1]!)) fail(`context ${i} of length ${n} has no followers`);
    for (let e = start[i]!; e < start[i + 1]!; e++) total[i] += count[e]!;
  }
  if (start[0] !== 0 || start[contexts] !== code.length) fail(`tensor 'context${n}.start' does not cover its ${code.length} followers`);
  if (code.some((c) => c < 0 || c >= k)) fail(`tensor 'context${n}.code' holds a code outside 0..${k - 1}`);
  return { keys, parent, neighbour, start, code, count, total };
}

export async function readPrior(file: string): Promise<TokenPrior> {
  const { tensors, metadata } = await readSafetensors(file);
  const read = priorTensors(file, tensors);
  const { fail } = read;
  if (metadata.format !== PRIOR_FORMAT) fail(`not a UniCode² token prior (metadata format is ${JSON.stringify(metadata.format ?? null)}, expected "${PRIOR_FORMAT}")`);
  if (metadata.formatVersion !== String(PRIOR_FORMAT_VERSION)) fail(`token prior format version ${metadata.formatVersion} is not supported (expected ${PRIOR_FORMAT_VERSION})`);
  const k = Number(metadata.k);
  const order = Number(metadata.order);
  if (!Number.isSafeInteger(k) || k < 1) fail(`metadata k must be a positive integer, found ${JSON.stringify(metadata.k)}`);
  if (!Number.isInteger(order) || order < 1 || order > MAX_PRIOR_ORDER) fail(`metadata order must be 1..${MAX_PRIOR_ORDER}, found ${JSON.stringify(metadata.order)}`);
  let grid: [number, number] = [1, 1];
  try {
    grid = JSON.parse(metadata.grid ?? '') as [number, number];
  } catch {
    fail(`metadata grid must be [h, w], found ${JSON.stringify(metadata.grid)}`);
  }
  const unigram = read.numbers('unigram', k);
  const levels: ContextLevel[] = [];
  let parents = 1; // the root context
  for (let n = 1; n < order; n++) {
    const level = readLevel(read, n, parents, k);
    levels.push(level);
    parents = level.keys.length;
  }
  const tokens = unigram.reduce((s, c) => s + c, 0);
  return withDerived({
    k,
    order,
    codebook: metadata.codebook ?? '',
    tokens,
    grid,
    images: Number(metadata.images ?? 0),
    createdAt: metadata.createdAt ?? '',
    unigram,
    levels,
  });
}

// Token priors: a 2-D context model over token grids, built in (no weights), the stand-in for the
// language model that writes visual tokens in UniCode². It predicts each cell's code from its
// causal neighbours in raster order -- left, up, up-left, up-right (the first `order - 1` of
// them) -- with interpolated Witten-Bell smoothing: backing off from the longest context to
// shorter ones (dropping the last neighbour first), then to the unigram, then to uniform:
//
//   P_0(w)        = 1 / K
//   P_1(w)        = (c(w) + U P_0(w)) / (N + U)                       U = distinct codes seen
//   P_n(w | h_n)  = (c(h_n, w) + T(h_n) P_{n-1}(w | h_{n-1})) / (c(h_n) + T(h_n))
//
// where c(h_n) counts the tokens seen after context h_n (its n - 1 neighbours' codes) and T(h_n)
// the distinct codes seen after it; a context never seen leaves P_{n-1} as it is. A neighbour off
// the grid is the symbol K ("off the grid"), learned like any code from the first rows and columns
// of the training grids; a context with it that training never saw backs off like any other, so
// grids of any size can be sampled and scored.
//
// Storage is sparse: contexts form a trie (each context = its parent context + one neighbour) kept
// as sorted arrays, and each context's followers as (code, count) runs sorted by code, so memory
// grows with the tokens seen, not with K^2: K = 500,000 fits. File (.safetensors, all tensors
// 1-D; n = 1 .. order-1 is the number of neighbours in the context):
//   unigram              I64 [K]      c(w)
//   context{n}.parent    I32 [C_n]    index of the parent context in context{n-1} (0 for n = 1)
//   context{n}.neighbour I32 [C_n]    the added neighbour's code, K = off the grid
//   context{n}.start     I64 [C_n+1]  followers of context i are rows start[i] .. start[i+1]-1
//   context{n}.code      I32 [E_n]    follower codes, ascending within a context
//   context{n}.count     I64 [E_n]    c(h, w)
// Contexts are sorted by (parent, neighbour). __metadata__: format, formatVersion, k, order,
// neighbours, smoothing, codebook (fingerprint), tokens, grid, images, createdAt.
import { UserError } from '../../../common/errors.js';
import { readSafetensors, writeSafetensors, type Tensor } from '../io/formats/safetensors.js';
import { checkGridSize } from '../core/limits.js';
import { seededRandom } from '../core/sampling.js';

export const PRIOR_FORMAT = 'unicode2-token-prior';
const PRIOR_FORMAT_VERSION = 1;
const SMOOTHING = 'interpolated Witten-Bell';

/** The causal neighbours a context is made of, in the order they are added: [dy, dx, name]. */
export const PRIOR_NEIGHBOURS: readonly (readonly [number, number, string])[] = [
  [0, -1, 'left'],
  [-1, 0, 'up'],
  [-1, -1, 'up-left'],
  [-1, 1, 'up-right'],
];
export const MAX_PRIOR_ORDER = PRIOR_NEIGHBOURS.length + 1;

/** Gibbs sweeps over the masked cells after the raster pass of inpainting, and the candidates each
 *  resampled cell weighs (the most probable codes of its causal distribution). */
const INPAINT_SWEEPS = 2;
const INPAINT_CANDIDATES = 64;

/** Contexts of one length (n neighbours), followers in CSR form. */
interface ContextLevel {
  /** parent * (K + 1) + neighbour, ascending: the lookup key of each context */
  keys: Float64Array;
  parent: Int32Array;
  neighbour: Int32Array;
  start: Float64Array;
  code: Int32Array;
  count: Float64Array;
  /** c(h): tokens seen after each context */
  total: Float64Array;
}

export interface PriorInfo {
  k: number;
  order: number;
  /** fingerprint of the codebook the training tokens were made with ('' if unknown) */
  codebook: string;
  tokens: number;
  /** the most common grid of the training data: the default size of sampled grids */
  grid: [number, number];
  images: number;
  createdAt: string;
}

export interface TokenPrior extends PriorInfo {
  unigram: Float64Array;
  levels: ContextLevel[];
  /** distinct codes seen (U) */
  distinct: number;
  /** codes by unigram count (descending, then id), grouped by equal count: sampling treats a
   *  group's codes outside the sparse contexts as one block of equal probability */
  byCount: Int32Array;
  position: Int32Array;
  groupOf: Int32Array;
  groupStart: Int32Array;
  groupValue: Float64Array;
}

/** What the prior trains on and edits: a grid of token ids in raster order. */
export interface GridTokens {
  grid: [number, number];
  ids: ArrayLike<number>;
}

export interface SampleOptions {
  seed: number;
  /** > 0; logits are divided by it (1 = the model's own distribution) */
  temperature?: number;
  /** keep only the k most probable codes (0 = all) */
  topK?: number;
  /** keep the smallest set of most probable codes whose probability reaches p (1 = all) */
  topP?: number;
}

// ---------------------------------------------------------------------------------------------
// Fitting

function checkOrder(order: number): void {
  if (!Number.isInteger(order) || order < 1 || order > MAX_PRIOR_ORDER) {
    throw new UserError(`prior order ${order} is not supported: expected 1 (unigram) to ${MAX_PRIOR_ORDER} (${PRIOR_NEIGHBOURS.map((n) => n[2]).join(', ')})`);
  }
}

/** The code at (y, x) of a grid, or K when (y, x) is off the grid. */
function symbolAt(ids: ArrayLike<number>, h: number, w: number, y: number, x: number, k: number): number {
  return y < 0 || y >= h || x < 0 || x >= w ? k : ids[y * w + x];
}

function lowerBound(sorted: Float64Array, value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function uniqueSorted(values: Float64Array): Float64Array {
  const sorted = values.slice().sort();
  let n = 0;
  for (let i = 0; i < sorted.length; i++) if (i === 0 || sorted[i] !== sorted[i - 1]) sorted[n++] = sorted[i];
  return sorted.slice(0, n);
}

function mostCommonGrid(grids: GridTokens[]): [number, number] {
  const seen = new Map<string, number>();
  for (const g of grids) seen.set(g.grid.join('x'), (seen.get(g.grid.join('x')) ?? 0) + 1);
  const [best] = [...seen].sort((a, b) => b[1] - a[1])[0]!;
  return best.split('x').map(Number) as [number, number];
}

/**
 * Counts a prior over token grids. Sort-based: each context length costs a few sorts of one
 * number per token, so memory stays a small multiple of the token count for any K.
 */
export function fitPrior(grids: GridTokens[], k: number, order: number, codebook = ''): TokenPrior {
  checkOrder(order);
  if (!Number.isInteger(k) || k < 1) throw new UserError(`a prior needs a codebook size K >= 1, got ${k}`);
  const tokens = grids.reduce((s, g) => s + g.ids.length, 0);
  if (tokens === 0) throw new UserError('the token data set is empty: a prior needs at least one token');
  const code = new Int32Array(tokens);
  let t = 0;
  for (const g of grids) {
    const [h, w] = g.grid;
    if (g.ids.length !== h * w) throw new UserError(`a token grid of ${g.ids.length} ids does not fill its ${h}x${w} grid`);
    for (let i = 0; i < g.ids.length; i++) {
      const id = g.ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= k) throw new UserError(`token id ${id} is outside the codebook's range 0..${k - 1}`);
      code[t++] = id;
    }
  }
  const unigram = new Float64Array(k);
  for (let i = 0; i < tokens; i++) unigram[code[i]]++;

  const levels: ContextLevel[] = [];
  let parentOf = new Int32Array(tokens); // every token's context one level up; the root is 0
  for (let n = 0; n < order - 1; n++) {
    const [dy, dx] = PRIOR_NEIGHBOURS[n]!;
    const keyOf = new Float64Array(tokens);
    t = 0;
    for (const g of grids) {
      const [h, w] = g.grid;
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++, t++) keyOf[t] = parentOf[t] * (k + 1) + symbolAt(g.ids, h, w, y + dy, x + dx, k);
      }
    }
    const keys = uniqueSorted(keyOf);
    const contextOf = new Int32Array(tokens);
    for (let i = 0; i < tokens; i++) contextOf[i] = lowerBound(keys, keyOf[i]);
    // (context, code) pairs, sorted: runs of equal pairs are the follower counts, already in CSR order.
    const pairs = new Float64Array(tokens);
    for (let i = 0; i < tokens; i++) pairs[i] = contextOf[i] * k + code[i];
    pairs.sort();
    const followers: number[] = [];
    const counts: number[] = [];
    const start = new Float64Array(keys.length + 1);
    const total = new Float64Array(keys.length);
    for (let i = 0; i < tokens; ) {
      let j = i + 1;
      while (j < tokens && pairs[j] === pairs[i]) j++;
      const context = Math.floor(pairs[i] / k);
      followers.push(pairs[i] - context * k);
      counts.push(j - i);
      start[context + 1] = followers.length;
      total[context] += j - i;
      i = j;
    }
    const parent = new Int32Array(keys.length);
    const neighbour = new Int32Array(keys.length);
    keys.forEach((key, i) => {
      parent[i] = Math.floor(key / (k + 1));
      neighbour[i] = key - parent[i] * (k + 1);
    });
    levels.push({ keys, parent, neighbour, start, code: Int32Array.from(followers), count: Float64Array.from(counts), total });
    parentOf = contextOf;
  }
  return withDerived({
    k,
    order,
    codebook,
    tokens,
    grid: mostCommonGrid(grids),
    images: grids.length,
    createdAt: new Date().toISOString(),
    unigram,
    levels,
  });
}

/** Adds what sampling needs and the file does not store: U and the codes grouped by count. */
function withDerived(p: PriorInfo & { unigram: Float64Array; levels: ContextLevel[] }): TokenPrior {
  const { k, unigram } = p;
  let distinct = 0;
  for (let i = 0; i < k; i++) if (unigram[i] > 0) distinct++;
  const byCount = Int32Array.from({ length: k }, (_, i) => i).sort((a, b) => unigram[b] - unigram[a] || a - b);
  const position = new Int32Array(k);
  const groupOf = new Int32Array(k);
  const starts: number[] = [];
  const values: number[] = [];
  byCount.forEach((c, i) => {
    position[c] = i;
    if (i === 0 || unigram[c] !== unigram[byCount[i - 1]]) {
      starts.push(i);
      values.push(unigram[c]);
    }
    groupOf[c] = starts.length - 1;
  });
  starts.push(k);
  return { ...p, distinct, byCount, position, groupOf, groupStart: Int32Array.from(starts), groupValue: Float64Array.from(values) };
}

// ---------------------------------------------------------------------------------------------
// Probabilities

/** The seen part of a cell's context chain: the context index at each level, shortest first. */
function chainAt(prior: TokenPrior, ids: ArrayLike<number>, h: number, w: number, y: number, x: number): number[] {
  const chain: number[] = [];
  let parent = 0;
  for (let n = 0; n < prior.levels.length; n++) {
    const [dy, dx] = PRIOR_NEIGHBOURS[n]!;
    const level = prior.levels[n]!;
    const key = parent * (prior.k + 1) + symbolAt(ids, h, w, y + dy, x + dx, prior.k);
    const i = lowerBound(level.keys, key);
    if (i >= level.keys.length || level.keys[i] !== key) break;
    chain.push(i);
    parent = i;
  }
  return chain;
}

function followerCount(level: ContextLevel, context: number, code: number): number {
  let lo = level.start[context];
  let hi = level.start[context + 1];
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (level.code[mid] < code) lo = mid + 1;
    else hi = mid;
  }
  return lo < level.start[context + 1] && level.code[lo] === code ? level.count[lo] : 0;
}

function unigramProbability(prior: TokenPrior, code: number): number {
  return (prior.unigram[code] + prior.distinct / prior.k) / (prior.tokens + prior.distinct);
}

function probability(prior: TokenPrior, chain: number[], code: number): number {
  let p = unigramProbability(prior, code);
  chain.forEach((context, n) => {
    const level = prior.levels[n]!;
    const types = level.start[context + 1] - level.start[context];
    p = (followerCount(level, context, code) + types * p) / (level.total[context] + types);
  });
  return p;
}

export interface PriorScore {
  tokens: number;
  /** mean negative log-likelihood per token, nats */
  nll: number;
  perplexity: number;
  /** the same data under the prior's own (smoothed) unigram */
  unigramPerplexity: number;
}

/** Held-out likelihood of token grids under the prior. */
export function scorePrior(prior: TokenPrior, grids: GridTokens[]): PriorScore {
  let nll = 0;
  let unigramNll = 0;
  let tokens = 0;
  for (const g of grids) {
    const [h, w] = g.grid;
    checkIds(prior, g.ids);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const code = g.ids[y * w + x];
        nll -= Math.log(probability(prior, chainAt(prior, g.ids, h, w, y, x), code));
        unigramNll -= Math.log(unigramProbability(prior, code));
        tokens++;
      }
    }
  }
  if (tokens === 0) throw new UserError('no tokens to score');
  return { tokens, nll: nll / tokens, perplexity: Math.exp(nll / tokens), unigramPerplexity: Math.exp(unigramNll / tokens) };
}

function checkIds(prior: TokenPrior, ids: ArrayLike<number>): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= prior.k) throw new UserError(`token id ${id} is outside the prior's codebook range 0..${prior.k - 1}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Sampling

/** A candidate of a cell's distribution: one code, or `size` codes of one unigram-count group
 *  (those outside the sparse contexts) that all have probability p. */
interface Item {
  p: number;
  code: number;
  group: number;
  size: number;
}

/** The cell's full distribution as items sorted by probability (descending). */
function distribution(prior: TokenPrior, chain: number[]): { items: Item[]; sparse: Map<number, number> } {
  // Unrolled interpolation: P(w) = sum_n a_n c(h_n, w) / c(h_n) + b P_1(w).
  const sparse = new Map<number, number>();
  let rest = 1;
  for (let n = chain.length - 1; n >= 0; n--) {
    const level = prior.levels[n]!;
    const context = chain[n]!;
    const types = level.start[context + 1] - level.start[context];
    const total = level.total[context];
    const weight = (rest * total) / (total + types);
    for (let e = level.start[context]; e < level.start[context + 1]; e++) {
      sparse.set(level.code[e], (sparse.get(level.code[e]) ?? 0) + (weight * level.count[e]) / total);
    }
    rest *= types / (total + types);
  }
  const items: Item[] = [];
  const taken = new Int32Array(prior.groupValue.length);
  for (const [code, p] of sparse) {
    const full = p + rest * unigramProbability(prior, code);
    sparse.set(code, full);
    items.push({ p: full, code, group: -1, size: 1 });
    taken[prior.groupOf[code]]++;
  }
  prior.groupValue.forEach((value, g) => {
    const size = prior.groupStart[g + 1] - prior.groupStart[g] - taken[g];
    const p = (rest * (value + prior.distinct / prior.k)) / (prior.tokens + prior.distinct);
    if (size > 0) items.push({ p, code: -1, group: g, size });
  });
  items.sort((a, b) => b.p - a.p || a.group - b.group || a.code - b.code);
  return { items, sparse };
}

/** The j-th code (in count order) of a group that is not one of the sparse codes. */
function blockCode(prior: TokenPrior, group: number, j: number, sparse: Map<number, number>): number {
  const from = prior.groupStart[group];
  const skipped: number[] = [];
  for (const code of sparse.keys()) if (prior.groupOf[code] === group) skipped.push(prior.position[code] - from);
  skipped.sort((a, b) => a - b);
  let index = j;
  for (const s of skipped) {
    if (s <= index) index++;
    else break;
  }
  return prior.byCount[from + index]!;
}

interface Kept {
  item: Item;
  take: number;
  weight: number;
}

/** Temperature, then top-k, then top-p (the order language-model samplers use). */
function filtered(items: Item[], opts: Required<Omit<SampleOptions, 'seed'>>): Kept[] {
  const top = Math.log(items[0]!.p);
  let kept: Kept[] = [];
  let left = opts.topK > 0 ? opts.topK : Infinity;
  for (const item of items) {
    if (left <= 0) break;
    const take = Math.min(item.size, left);
    left -= take;
    kept.push({ item, take, weight: Math.exp((Math.log(item.p) - top) / opts.temperature) });
  }
  if (opts.topP < 1) {
    const total = kept.reduce((s, k) => s + k.take * k.weight, 0);
    const out: Kept[] = [];
    let cumulative = 0;
    for (const k of kept) {
      const q = k.weight / total;
      const need = Math.max(1, Math.ceil((opts.topP - cumulative) / q - 1e-9));
      out.push({ ...k, take: Math.min(k.take, need) });
      cumulative += out[out.length - 1]!.take * q;
      if (cumulative >= opts.topP - 1e-12) break;
    }
    kept = out;
  }
  return kept;
}

/**
 * The distribution sampling draws cell (y, x) from, after temperature, top-k and top-p, as one
 * probability per code: the exact counterpart of draw(), for checking it and for showing it.
 */
export function cellDistribution(prior: TokenPrior, ids: ArrayLike<number>, [h, w]: [number, number], y: number, x: number, opts: Omit<SampleOptions, 'seed'> = {}): Float64Array {
  const { items, sparse } = distribution(prior, chainAt(prior, ids, h, w, y, x));
  const kept = filtered(items, sampleOptions({ seed: 0, ...opts }));
  const total = kept.reduce((s, k) => s + k.take * k.weight, 0);
  const out = new Float64Array(prior.k);
  for (const k of kept) {
    if (k.item.group < 0) out[k.item.code] = k.weight / total;
    else for (let j = 0; j < k.take; j++) out[blockCode(prior, k.item.group, j, sparse)] = k.weight / total;
  }
  return out;
}

function draw(prior: TokenPrior, kept: Kept[], sparse: Map<number, number>, random: () => number): number {
  const total = kept.reduce((s, k) => s + k.take * k.weight, 0);
  let u = random() * total;
  for (const k of kept) {
    const mass = k.take * k.weight;
    if (u < mass || k === kept[kept.length - 1]) {
      if (k.item.group < 0) return k.item.code;
      return blockCode(prior, k.item.group, Math.min(k.take - 1, Math.floor(u / k.weight)), sparse);
    }
    u -= mass;
  }
  throw new Error('unreachable: draw() ran past its items');
}

function sampleOptions(opts: SampleOptions): Required<Omit<SampleOptions, 'seed'>> {
  const temperature = opts.temperature ?? 1;
  const topK = opts.topK ?? 0;
  const topP = opts.topP ?? 1;
  if (!(temperature > 0) || !Number.isFinite(temperature)) throw new UserError(`temperature must be a positive number, got ${temperature}`);
  if (!Number.isInteger(topK) || topK < 0) throw new UserError(`top-k must be a whole number >= 0 (0 = off), got ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new UserError(`top-p must be in (0, 1] (1 = off), got ${topP}`);
  return { temperature, topK, topP };
}

/** A new grid drawn cell by cell in raster order (ancestral sampling: an exact sample of the
 *  model when temperature = 1 and top-k / top-p are off). */
export function samplePriorGrid(prior: TokenPrior, grid: [number, number], opts: SampleOptions): Int32Array {
  checkGridSize(grid, 'sampled grid'); // before anything is allocated for it
  const mask = new Uint8Array(grid[0] * grid[1]).fill(1);
  return resample(prior, new Int32Array(mask.length), grid, mask, opts, 0);
}

/**
 * Inpainting: the masked cells (mask[i] = 1) are drawn again given every other cell. A raster pass
 * draws each masked cell from its causal context (the tokens above and to the left), then Gibbs
 * sweeps redraw each masked cell given its whole neighbourhood: its own context and every cell
 * whose context it is part of (to the right and below), over its most probable candidates.
 * Unmasked cells are never changed.
 */
export function inpaintGrid(prior: TokenPrior, ids: ArrayLike<number>, grid: [number, number], mask: Uint8Array, opts: SampleOptions): Int32Array {
  checkGridSize(grid, 'token grid');
  if (ids.length !== grid[0] * grid[1] || mask.length !== ids.length) {
    throw new UserError(`a ${grid[0]}x${grid[1]} grid needs ${grid[0] * grid[1]} ids and mask cells, got ${ids.length} and ${mask.length}`);
  }
  checkIds(prior, ids);
  return resample(prior, Int32Array.from(ids), grid, mask, opts, INPAINT_SWEEPS);
}

/** A seeded choice of round(fraction * cells) cells to redraw ("variations"). */
export function variationMask(cells: number, fraction: number, seed: number): Uint8Array {
  if (!(fraction > 0 && fraction <= 1)) throw new UserError(`the share of cells to vary must be in (0, 1], got ${fraction}`);
  const random = seededRandom(seed ^ 0x5eed);
  const order = Int32Array.from({ length: cells }, (_, i) => i);
  const count = Math.max(1, Math.round(fraction * cells));
  const mask = new Uint8Array(cells);
  for (let i = 0; i < count; i++) {
    const j = i + Math.floor(random() * (cells - i));
    [order[i], order[j]] = [order[j]!, order[i]!];
    mask[order[i]!] = 1;
  }
  return mask;
}

function resample(prior: TokenPrior, ids: Int32Array, [h, w]: [number, number], mask: Uint8Array, opts: SampleOptions, sweeps: number): Int32Array {
  const options = sampleOptions(opts);
  const random = seededRandom(opts.seed);
  for (let i = 0; i < ids.length; i++) {
    if (!mask[i]) continue;
    const { items, sparse } = distribution(prior, chainAt(prior, ids, h, w, Math.floor(i / w), i % w));
    ids[i] = draw(prior, filtered(items, options), sparse, random);
  }
  for (let sweep = 0; sweep < sweeps; sweep++) {
    for (let i = 0; i < ids.length; i++) if (mask[i]) ids[i] = gibbsDraw(prior, ids, h, w, i, options, random);
  }
  return ids;
}

/** Cells whose context includes cell i. */
function dependents(prior: TokenPrior, h: number, w: number, i: number): number[] {
  const y = Math.floor(i / w);
  const x = i % w;
  const out: number[] = [];
  for (let n = 0; n < prior.levels.length; n++) {
    const [dy, dx] = PRIOR_NEIGHBOURS[n]!;
    const yy = y - dy;
    const xx = x - dx;
    if (yy >= 0 && yy < h && xx >= 0 && xx < w) out.push(yy * w + xx);
  }
  return out;
}

function gibbsDraw(prior: TokenPrior, ids: Int32Array, h: number, w: number, i: number, opts: Required<Omit<SampleOptions, 'seed'>>, random: () => number): number {
  const y = Math.floor(i / w);
  const x = i % w;
  const chain = chainAt(prior, ids, h, w, y, x);
  const { items, sparse } = distribution(prior, chain);
  const candidates: number[] = [];
  for (const k of filtered(items, opts)) {
    for (let j = 0; j < k.take && candidates.length < INPAINT_CANDIDATES; j++) {
      candidates.push(k.item.group < 0 ? k.item.code : blockCode(prior, k.item.group, j, sparse));
    }
    if (candidates.length >= INPAINT_CANDIDATES) break;
  }
  const after = dependents(prior, h, w, i);
  const logits = candidates.map((code) => {
    ids[i] = code;
    let logp = Math.log(probability(prior, chain, code));
    for (const d of after) logp += Math.log(probability(prior, chainAt(prior, ids, h, w, Math.floor(d / w), d % w), ids[d]!));
    return logp / opts.temperature;
  });
  const top = Math.max(...logits);
  const weights = logits.map((l) => Math.exp(l - top));
  let u = random() * weights.reduce((s, v) => s + v, 0);
  for (let c = 0; c < candidates.length; c++) {
    if (u < weights[c]! || c === candidates.length - 1) return candidates[c]!;
    u -= weights[c]!;
  }
  throw new Error('unreachable: gibbsDraw() ran past its candidates');
}

// ---------------------------------------------------------------------------------------------
// Files

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

export async function readPrior(file: string): Promise<TokenPrior> {
  const { tensors, metadata } = await readSafetensors(file);
  const fail = (problem: string): never => {
    throw new UserError(`${file}: ${problem}`);
  };
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
  const vector = (name: string, dtype: 'I32' | 'I64', length?: number): Tensor['data'] => {
    const t = tensors[name];
    if (!t) return fail(`missing tensor '${name}'`);
    if (t.dtype !== dtype || t.shape.length !== 1 || (length !== undefined && t.shape[0] !== length)) {
      fail(`tensor '${name}' must be ${dtype} [${length ?? 'n'}], found ${t.dtype} [${t.shape.join(', ')}]`);
    }
    return t.data;
  };
  const numbers = (name: string, length?: number) => Float64Array.from(vector(name, 'I64', length) as BigInt64Array, Number);
  const unigram = numbers('unigram', k);
  const levels: ContextLevel[] = [];
  let parents = 1;
  for (let n = 1; n < order; n++) {
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
    levels.push({ keys, parent, neighbour, start, code, count, total });
    parents = contexts;
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

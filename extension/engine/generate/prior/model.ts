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
// grows with the tokens seen, not with K^2: K = 500,000 fits. This module holds the model and the
// probabilities it gives; fit.ts counts one, score.ts and sample.ts use one, file.ts stores one.
import { UserError } from '../../../../common/errors.js';

/** The causal neighbours a context is made of, in the order they are added: [dy, dx, name]. */
export const PRIOR_NEIGHBOURS: readonly (readonly [number, number, string])[] = [
  [0, -1, 'left'],
  [-1, 0, 'up'],
  [-1, -1, 'up-left'],
  [-1, 1, 'up-right'],
];
export const MAX_PRIOR_ORDER = PRIOR_NEIGHBOURS.length + 1;

/** Contexts of one length (n neighbours), followers in CSR form. */
export interface ContextLevel {
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

export function checkOrder(order: number): void {
  if (!Number.isInteger(order) || order < 1 || order > MAX_PRIOR_ORDER) {
    throw new UserError(`prior order ${order} is not supported: expected 1 (unigram) to ${MAX_PRIOR_ORDER} (${PRIOR_NEIGHBOURS.map((n) => n[2]).join(', ')})`);
  }
}

export function checkIds(prior: TokenPrior, ids: ArrayLike<number>): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= prior.k) throw new UserError(`token id ${id} is outside the prior's codebook range 0..${prior.k - 1}`);
  }
}

/** Throws unless the prior was fitted on tokens of this codebook: the same K (when `codebook`
 *  says it: tokens alone do not) and the same fingerprint (when both record one). `source` names
 *  the prior in the message. */
export function checkPriorMatchesCodebook(prior: TokenPrior, codebook: { k?: number; fingerprint: string }, source: string): void {
  if (codebook.k !== undefined && prior.k !== codebook.k) throw new UserError(`${source} was fitted for K = ${prior.k} codes but the codebook has K = ${codebook.k}`);
  if (prior.codebook && codebook.fingerprint && prior.codebook !== codebook.fingerprint) {
    throw new UserError(`${source} was fitted on tokens of codebook ${prior.codebook}, not of ${codebook.fingerprint}`);
  }
}

/** The code at (y, x) of a grid, or K when (y, x) is off the grid. */
export function symbolAt(ids: ArrayLike<number>, h: number, w: number, y: number, x: number, k: number): number {
  return y < 0 || y >= h || x < 0 || x >= w ? k : ids[y * w + x];
}

export function lowerBound(sorted: Float64Array, value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Adds what sampling needs and the file does not store: U and the codes grouped by count. */
export function withDerived(p: PriorInfo & { unigram: Float64Array; levels: ContextLevel[] }): TokenPrior {
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
export function chainAt(prior: TokenPrior, ids: ArrayLike<number>, h: number, w: number, y: number, x: number): number[] {
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

export function unigramProbability(prior: TokenPrior, code: number): number {
  return (prior.unigram[code] + prior.distinct / prior.k) / (prior.tokens + prior.distinct);
}

export function probability(prior: TokenPrior, chain: number[], code: number): number {
  let p = unigramProbability(prior, code);
  chain.forEach((context, n) => {
    const level = prior.levels[n]!;
    const types = level.start[context + 1] - level.start[context];
    p = (followerCount(level, context, code) + types * p) / (level.total[context] + types);
  });
  return p;
}

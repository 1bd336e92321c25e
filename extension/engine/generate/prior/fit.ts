// Fitting a token prior (model.ts): counting every context of every length over token grids.
import { UserError } from '../../../../common/errors.js';
import { checkPriorK } from '../../core/limits.js';
import { checkOrder, lowerBound, PRIOR_NEIGHBOURS, symbolAt, withDerived, type ContextLevel, type GridTokens, type TokenPrior } from './model.js';

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

/** Every grid's ids in one array, each checked to fill its grid and to be a code of 0..k-1. */
function tokenCodes(grids: GridTokens[], k: number): Int32Array {
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
  return code;
}

/** The contexts of n + 1 neighbours: each token's context one level up (`parentOf`) plus its
 *  neighbour n, and the codes that followed each. `contextOf`: every token's context here. */
function countLevel(grids: GridTokens[], code: Int32Array, parentOf: Int32Array, n: number, k: number): { level: ContextLevel; contextOf: Int32Array } {
  const tokens = code.length;
  const [dy, dx] = PRIOR_NEIGHBOURS[n]!;
  const keyOf = new Float64Array(tokens);
  let t = 0;
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
  return { level: { keys, parent, neighbour, start, code: Int32Array.from(followers), count: Float64Array.from(counts), total }, contextOf };
}

/**
 * Counts a prior over token grids. Sort-based: each context length costs a few sorts of one
 * number per token, so memory stays a small multiple of the token count for any K.
 */
export function fitPrior(grids: GridTokens[], k: number, order: number, codebook = ''): TokenPrior {
  checkOrder(order);
  checkPriorK(k, 'token prior'); // before the per-code tables are allocated
  const code = tokenCodes(grids, k);
  const tokens = code.length;
  const unigram = new Float64Array(k);
  for (let i = 0; i < tokens; i++) unigram[code[i]]++;

  const levels: ContextLevel[] = [];
  let parentOf: Int32Array = new Int32Array(tokens); // every token's context one level up; the root is 0
  for (let n = 0; n < order - 1; n++) {
    const { level, contextOf } = countLevel(grids, code, parentOf, n, k);
    levels.push(level);
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

// Sampling from a token prior (model.ts): new grids drawn cell by cell, and edits of a grid
// (inpainting a region, variations) that redraw some cells given all the others.
import { UserError } from '../../../../common/errors.js';
import { checkGridSize } from '../../core/limits.js';
import { seededRandom } from '../../core/sampling.js';
import { chainAt, checkIds, PRIOR_NEIGHBOURS, probability, unigramProbability, type TokenPrior } from './model.js';

/** Gibbs sweeps over the masked cells after the raster pass of inpainting, and the candidates each
 *  redrawn cell weighs (the most probable codes of its causal distribution). */
const INPAINT_SWEEPS = 2;
const INPAINT_CANDIDATES = 64;

export interface SampleOptions {
  seed: number;
  /** > 0; logits are divided by it (1 = the model's own distribution) */
  temperature?: number;
  /** keep only the k most probable codes (0 = all) */
  topK?: number;
  /** keep the smallest set of most probable codes whose probability reaches p (1 = all) */
  topP?: number;
}

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
  // NaN weights would pick the last item every time: never a token drawn from them
  if (!(total > 0 && total < Infinity)) throw new UserError(`the prior's distribution for a cell sums to ${total}: its counts are inconsistent`);
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

export function sampleOptions(opts: SampleOptions): Required<Omit<SampleOptions, 'seed'>> {
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
  return redrawMasked(prior, new Int32Array(mask.length), grid, mask, opts, 0);
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
  return redrawMasked(prior, Int32Array.from(ids), grid, mask, opts, INPAINT_SWEEPS);
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

/** Draws the masked cells again: a raster pass from each cell's causal context, then `sweeps`
 *  Gibbs sweeps over them (inpaintGrid). */
function redrawMasked(prior: TokenPrior, ids: Int32Array, [h, w]: [number, number], mask: Uint8Array, opts: SampleOptions, sweeps: number): Int32Array {
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
  const total = weights.reduce((s, v) => s + v, 0);
  if (!(total > 0 && total < Infinity)) throw new UserError(`the prior's distribution for a redrawn cell sums to ${total}: its counts are inconsistent`);
  let u = random() * total;
  for (let c = 0; c < candidates.length; c++) {
    if (u < weights[c]! || c === candidates.length - 1) return candidates[c]!;
    u -= weights[c]!;
  }
  throw new Error('unreachable: gibbsDraw() ran past its candidates');
}

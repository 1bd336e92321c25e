// The codebook builder: k-means over patch embeddings with the UniCode² utilization-regularized
// update (README, "Builder"). The heavy part of every pass (assign each point to its
// nearest code, accumulate per-code sums) runs on the ComputeBackend; this file decides what the
// codes are.
//
// Update, with c_bar = mean of the current codewords held fixed within the iteration:
//   c_k = (S_k + lambda * c_bar) / (n_k + lambda)
// lambda = 0 is plain k-means (Lloyd). With lambda > 0 a rarely used code is pulled toward the
// centre of the codebook, where it wins points again, and an empty code lands on c_bar.
// Scale matters (measured on DCT patches of the fixture photos): lambda ~ 0.07 x N/K cut the codes
// unused on held-out photos by a third to a half; lambda ~ 0.3 x N/K and above drags many codes
// onto c_bar itself, where they tie, and all but one die.
//
// Empty codes when lambda = 0: each is re-seeded on one of the points currently farthest from
// their own code (the E farthest for E empty codes; ties -> lower point index), and that point is
// taken out of its old code's sum. This is deterministic and never increases the inertia.
import type { ComputeBackend, KMeansStepResult, Matrix } from '../../../native-gpu/backend.js';
import { throwIfCancelled, UserError } from '../../../common/errors.js';
import { DEFAULTS } from '../core/defaults.js';
import { sampleIndices, seededRandom, takeRows } from '../core/sampling.js';

export interface KMeansOptions {
  k: number;
  /** max update iterations (default DEFAULTS.iterations) */
  iterations?: number;
  /** utilization regularization weight (default DEFAULTS.lambda = 0: plain k-means) */
  lambda?: number;
  seed?: number;
  /** default 'kmeans++', or 'random' when k-means++ would cost more than KMEANSPP_MAX_FLOPS
   *  (sample x k x d multiply-adds: for K in the hundreds of thousands it would take hours) */
  init?: 'kmeans++' | 'random';
  /** stop when |inertia change| / inertia falls below this (default DEFAULTS.tolerance) */
  tolerance?: number;
  /** k-means++ draws from a uniform sample of this many points when there are more (default 100,000) */
  initSample?: number;
  /** k-means++ rounds (default KMEANSPP_ROUNDS): fewer rounds draw more centers per round */
  initRounds?: number;
}

export interface KMeansProgress {
  phase: 'init' | 'iterate';
  iteration: number;
  iterations: number;
  inertia?: number;
  used?: number;
}

export interface KMeansResult {
  centroids: Matrix;
  /** counts and ids of the assignment to the returned centroids */
  counts: Float64Array;
  ids: Int32Array;
  /** update iterations performed */
  iterations: number;
  /** sum of squared distances of the points to their codes (the returned centroids) */
  inertia: number;
}

export interface KMeansControl {
  signal?: AbortSignal;
  onProgress?: (p: KMeansProgress) => void;
}

const DEFAULT_INIT_SAMPLE = 100_000;
const KMEANSPP_MAX_FLOPS = 2e12;
/** k-means++ rounds: each round draws several centers, then updates D² with one backend pass */
const KMEANSPP_ROUNDS = 64;

export async function kmeans(points: Matrix, opts: KMeansOptions, backend: ComputeBackend,
                             control: KMeansControl = {}): Promise<KMeansResult> {
  const { k } = opts;
  const maxIterations = opts.iterations ?? DEFAULTS.iterations;
  const lambda = opts.lambda ?? DEFAULTS.lambda;
  const tolerance = opts.tolerance ?? DEFAULTS.tolerance;
  validate(points, k, maxIterations, lambda);

  const random = seededRandom(opts.seed ?? DEFAULTS.seed);
  const sampleSize = Math.min(points.rows, Math.max(k, opts.initSample ?? DEFAULT_INIT_SAMPLE));
  const init = opts.init ?? (sampleSize * k * points.cols > KMEANSPP_MAX_FLOPS ? 'random' : 'kmeans++');
  let centroids = init === 'random'
    ? takeRows(points, sampleIndices(points.rows, k, random))
    : await kmeansPlusPlus(points, k, sampleSize, opts.initRounds ?? KMEANSPP_ROUNDS, random, backend, control);

  let iteration = 0;
  let previous = Infinity;
  for (;;) {
    throwIfCancelled(control.signal);
    const step = await assign(backend, centroids, points, control.signal);
    const used = countUsed(step.counts);
    control.onProgress?.({ phase: 'iterate', iteration, iterations: maxIterations, inertia: step.inertia, used });
    const converged = Math.abs(previous - step.inertia) <= tolerance * step.inertia;
    if (iteration >= maxIterations || converged) {
      return { centroids, counts: step.counts, ids: step.ids, iterations: iteration, inertia: step.inertia };
    }
    if (lambda === 0) reseedEmptyCodes(step, points);
    centroids = updateCentroids(centroids, step, lambda);
    previous = step.inertia;
    iteration++;
  }
}

function validate(points: Matrix, k: number, iterations: number, lambda: number): void {
  if (!Number.isInteger(k) || k < 1) throw new UserError(`k must be a whole number of at least 1; got ${k}`);
  if (k > points.rows) throw new UserError(`k=${k} codes need at least ${k} points, but there are only ${points.rows}`);
  if (!Number.isInteger(iterations) || iterations < 0) throw new UserError(`iterations must be a whole number of at least 0; got ${iterations}`);
  if (!Number.isFinite(lambda) || lambda < 0) throw new UserError(`lambda must be a number of at least 0; got ${lambda}`);
  const x = points.data;
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) {
      throw new UserError(`point ${Math.floor(i / points.cols)} has a non-finite value (${x[i]}) in dimension ${i % points.cols}; clean the embeddings first`);
    }
  }
}

async function assign(backend: ComputeBackend, centroids: Matrix, points: Matrix, signal?: AbortSignal): Promise<KMeansStepResult> {
  const handle = await backend.loadCodebook(centroids);
  try {
    return await backend.kmeansStep(handle, points, { signal });
  } finally {
    handle.dispose();
  }
}

function countUsed(counts: Float64Array): number {
  let used = 0;
  for (let i = 0; i < counts.length; i++) if (counts[i] > 0) used++;
  return used;
}

/**
 * k-means++ (D² sampling) on `sampleSize` points (all of them when there are few enough).
 * The first center is uniform; the rest come in `maxRounds` rounds (default KMEANSPP_ROUNDS): each
 * round draws B = ceil((k-1)/(rounds-1)) centers from the same D² distribution, then updates D²
 * with one backend nearest-pass against the round's centers. B = 1 (classic, fully sequential
 * k-means++) for k <= rounds; for larger k this is the batched variant (as in k-means||) that
 * keeps the cost at one sample x k x d GEMM instead of k memory-bound passes.
 */
async function kmeansPlusPlus(points: Matrix, k: number, sampleSize: number, maxRounds: number, random: () => number,
                              backend: ComputeBackend, control: KMeansControl): Promise<Matrix> {
  const sample = sampleSize < points.rows ? takeRows(points, sampleIndices(points.rows, sampleSize, random)) : points;
  const n = sample.rows;
  const d2 = new Float64Array(n).fill(Infinity);
  const perRound = Math.max(1, Math.ceil((k - 1) / Math.max(1, maxRounds - 1)));
  const rounds = Math.ceil((k - 1) / perRound);
  let newest = [Math.floor(random() * n)];
  const chosen = newest.slice();
  for (let round = 1; chosen.length < k; round++) {
    throwIfCancelled(control.signal);
    const handle = await backend.loadCodebook(takeRows(sample, newest));
    try {
      const { distances } = await backend.nearest(handle, sample, { signal: control.signal });
      for (let i = 0; i < n; i++) d2[i] = Math.min(d2[i], Math.max(0, distances[i]));
    } finally {
      handle.dispose();
    }
    for (const c of newest) d2[c] = 0; // a chosen point is never drawn again
    newest = drawWeighted(d2, Math.min(perRound, k - chosen.length), random);
    chosen.push(...newest);
    control.onProgress?.({ phase: 'init', iteration: round, iterations: rounds });
  }
  return takeRows(sample, chosen);
}

/**
 * `count` distinct indices drawn with probability proportional to weight. When fewer points than
 * needed have positive weight (duplicate points), the rest are drawn uniformly from the points
 * not yet taken, so k codes always exist (the duplicates become empty codes that the update fixes).
 */
function drawWeighted(weights: Float64Array, count: number, random: () => number): number[] {
  const w = Float64Array.from(weights);
  let total = 0;
  for (let i = 0; i < w.length; i++) total += w[i];
  const picked: number[] = [];
  while (picked.length < count) {
    let pick = -1;
    if (total > 0) {
      const r = random() * total;
      let acc = 0;
      for (let i = 0; i < w.length; i++) {
        if (w[i] <= 0) continue;
        acc += w[i];
        pick = i; // the last positive weight absorbs rounding drift in `total`
        if (acc > r) break;
      }
    }
    if (pick < 0) pick = uniformUntaken(w, random);
    total -= w[pick];
    w[pick] = -1; // taken
    picked.push(pick);
  }
  return picked;
}

function uniformUntaken(w: Float64Array, random: () => number): number {
  const free: number[] = [];
  for (let i = 0; i < w.length; i++) if (w[i] === 0) free.push(i);
  return free[Math.floor(random() * free.length)];
}

/** Moves each empty code onto one of the points farthest from their codes (lambda = 0 only). */
function reseedEmptyCodes(step: KMeansStepResult, points: Matrix): void {
  const empty: number[] = [];
  for (let c = 0; c < step.counts.length; c++) if (step.counts[c] === 0) empty.push(c);
  if (empty.length === 0) return;
  const d = points.cols;
  for (const [code, point] of zip(empty, farthestPoints(step.distances, empty.length))) {
    const from = step.ids[point];
    if (step.counts[from] <= 1) continue; // taking its only point would just empty another code
    for (let j = 0; j < d; j++) {
      const v = points.data[point * d + j];
      step.sums[from * d + j] -= v;
      step.sums[code * d + j] = v;
    }
    step.counts[from]--;
    step.counts[code] = 1;
  }
}

/** Indices of the `count` largest distances, farthest first (ties -> lower index). */
function farthestPoints(distances: Float32Array, count: number): number[] {
  const sorted = Float32Array.from(distances).sort();
  const threshold = sorted[Math.max(0, sorted.length - count)];
  const candidates: number[] = [];
  for (let i = 0; i < distances.length; i++) if (distances[i] >= threshold) candidates.push(i);
  candidates.sort((a, b) => distances[b] - distances[a] || a - b);
  return candidates.slice(0, count);
}

function zip<A, B>(a: A[], b: B[]): [A, B][] {
  return a.slice(0, Math.min(a.length, b.length)).map((x, i) => [x, b[i]]);
}

/** c_k = (S_k + lambda c_bar) / (n_k + lambda); a code with no points and lambda = 0 stays put.
 *  `into` may be centroids.data itself (an in-place update: each code reads only its own row, and
 *  c_bar is taken first), which spares a second K x d copy when K is in the hundreds of thousands. */
export function updateCentroids(centroids: Matrix, step: Pick<KMeansStepResult, 'sums' | 'counts'>, lambda: number,
                                into: Float32Array = new Float32Array(centroids.rows * centroids.cols)): Matrix {
  const k = centroids.rows, d = centroids.cols;
  const mean = new Float64Array(d);
  if (lambda > 0) {
    for (let c = 0; c < k; c++) for (let j = 0; j < d; j++) mean[j] += centroids.data[c * d + j];
    for (let j = 0; j < d; j++) mean[j] /= k;
  }
  for (let c = 0; c < k; c++) {
    const n = step.counts[c] + lambda;
    if (n === 0) {
      if (into !== centroids.data) into.set(centroids.data.subarray(c * d, (c + 1) * d), c * d);
      continue;
    }
    for (let j = 0; j < d; j++) into[c * d + j] = (step.sums[c * d + j] + lambda * mean[j]) / n;
  }
  return { rows: k, cols: d, data: into };
}

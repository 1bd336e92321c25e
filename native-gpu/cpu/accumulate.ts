// The k-means update's reduction: per-code sums of the assigned points and their counts, plus each
// point's exact squared distance to its code. Sums are f64 so that adding hundreds of thousands of
// f32 vectors into one code loses nothing visible. Distances and sums are computed in ONE pass over
// the points (rather than exactDistances() then a second pass): both are memory-bound, and at
// N = 200,000 x d = 768 the fused pass saves about a third of a second per k-means iteration.
import type { Matrix } from '../backend.js';

export function accumulateClusters(points: Matrix, ids: Int32Array, codes: Float32Array, k: number):
    { distances: Float32Array; sums: Float64Array; counts: Float64Array; inertia: number } {
  const d = points.cols, x = points.data;
  const distances = new Float32Array(points.rows);
  const sums = new Float64Array(k * d);
  const counts = new Float64Array(k);
  let inertia = 0;
  for (let i = 0; i < points.rows; i++) {
    const id = ids[i];
    let dist = 0;
    for (let j = 0, so = id * d, xo = i * d; j < d; j++) {
      const v = x[xo + j];
      const diff = v - codes[so + j];
      dist += diff * diff;
      sums[so + j] += v;
    }
    counts[id]++;
    distances[i] = dist;
    inertia += dist;
  }
  return { distances, sums, counts, inertia };
}

// The k-means update's reduction: per-code sums of the assigned points and their counts. Sums are
// f64 so that adding hundreds of thousands of f32 vectors into one code loses nothing visible.
import type { Matrix } from '../backend.js';

export function accumulateClusters(points: Matrix, ids: Int32Array, distances: Float32Array, k: number):
    { sums: Float64Array; counts: Float64Array; inertia: number } {
  const d = points.cols, x = points.data;
  const sums = new Float64Array(k * d);
  const counts = new Float64Array(k);
  let inertia = 0;
  for (let i = 0; i < points.rows; i++) {
    const id = ids[i];
    counts[id]++;
    inertia += distances[i];
    for (let j = 0, so = id * d, xo = i * d; j < d; j++) sums[so + j] += x[xo + j];
  }
  return { sums, counts, inertia };
}

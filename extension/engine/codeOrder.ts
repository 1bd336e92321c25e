// Heatmap layout order: similar codes sit together. Codes are sorted into rows by their
// projection on the codewords' first principal direction, and each row is sorted by the second,
// so both axes of the heatmap mean something. Directions come from power iteration on a sample
// of at most 20,000 codewords (a direction needs no more), projections cover all K.
import type { Matrix } from '../../native-gpu/backend.js';
import { heatmapColumns } from '../../common/colormap.js';

const SAMPLE = 20_000;
const ITERATIONS = 20;

export function similarityOrder(frozen: Matrix): number[] {
  const { rows: k, cols: d, data } = frozen;
  const step = Math.max(1, Math.floor(k / SAMPLE));
  const sample: number[] = [];
  for (let i = 0; i < k; i += step) sample.push(i);
  const mean = new Float64Array(d);
  for (const i of sample) for (let j = 0; j < d; j++) mean[j] += data[i * d + j]!;
  for (let j = 0; j < d; j++) mean[j] /= sample.length;

  const first = principalDirection(frozen, sample, mean, null);
  const second = principalDirection(frozen, sample, mean, first);
  const project = (v: Float64Array): Float64Array => {
    const out = new Float64Array(k);
    for (let i = 0; i < k; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += (data[i * d + j]! - mean[j]!) * v[j]!;
      out[i] = s;
    }
    return out;
  };
  const p1 = project(first);
  const p2 = project(second);
  const byFirst = Array.from({ length: k }, (_, i) => i).sort((a, b) => p1[a]! - p1[b]! || a - b);
  const cols = heatmapColumns(k);
  const order: number[] = [];
  for (let r = 0; r < k; r += cols) order.push(...byFirst.slice(r, r + cols).sort((a, b) => p2[a]! - p2[b]! || a - b));
  return order;
}

/** Power iteration for the top eigenvector of the sample covariance, orthogonal to `deflate`. */
function principalDirection(frozen: Matrix, sample: number[], mean: Float64Array, deflate: Float64Array | null): Float64Array {
  const { cols: d, data } = frozen;
  // deterministic start: a fixed, non-degenerate vector (same layout on every open)
  let v: Float64Array = Float64Array.from({ length: d }, (_, j) => 1 + ((j * 7919) % 13) / 13);
  const orthonormalize = (x: Float64Array): Float64Array => {
    if (deflate) {
      let dot = 0;
      for (let j = 0; j < d; j++) dot += x[j]! * deflate[j]!;
      for (let j = 0; j < d; j++) x[j] -= dot * deflate[j]!;
    }
    let n = 0;
    for (let j = 0; j < d; j++) n += x[j]! * x[j]!;
    n = Math.sqrt(n) || 1;
    for (let j = 0; j < d; j++) x[j] /= n;
    return x;
  };
  v = orthonormalize(v);
  for (let it = 0; it < ITERATIONS; it++) {
    const w = new Float64Array(d);
    for (const i of sample) {
      let s = 0;
      for (let j = 0; j < d; j++) s += (data[i * d + j]! - mean[j]!) * v[j]!;
      for (let j = 0; j < d; j++) w[j] += s * (data[i * d + j]! - mean[j]!);
    }
    v = orthonormalize(w);
  }
  return v;
}

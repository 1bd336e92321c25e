// Heatmap layout order: similar codes sit together. Codes are sorted into rows by their
// projection on the codewords' first principal direction, and each row is sorted by the second,
// so both axes of the heatmap mean something. Directions come from power iteration on a sample
// of at most 20,000 codewords (a direction needs no more), projections cover all K.
import type { CodebookData, Matrix } from '../../../native-gpu/backend.js';
import { rowsF32 } from '../../../native-gpu/tables.js';
import { heatmapColumns } from '../../../common/colormap.js';
import { takeRows } from '../core/sampling.js';

const SAMPLE = 20_000;
const ITERATIONS = 20;
/** rows decoded at a time when projecting every code (f16 tables are read in blocks) */
const BLOCK = 4096;

export function similarityOrder(frozen: CodebookData): number[] {
  const { rows: k, cols: d } = frozen;
  const step = Math.max(1, Math.floor(k / SAMPLE));
  const indices: number[] = [];
  for (let i = 0; i < k; i += step) indices.push(i);
  const sample = takeRows(frozen, indices);
  const mean = new Float64Array(d);
  for (let i = 0; i < sample.rows; i++) for (let j = 0; j < d; j++) mean[j] += sample.data[i * d + j]!;
  for (let j = 0; j < d; j++) mean[j] /= sample.rows;

  const first = principalDirection(sample, mean, null);
  const second = principalDirection(sample, mean, first);
  const p1 = new Float64Array(k);
  const p2 = new Float64Array(k);
  for (let r0 = 0; r0 < k; r0 += BLOCK) {
    const n = Math.min(BLOCK, k - r0);
    const block = rowsF32(frozen, r0, n);
    for (let r = 0; r < n; r++) {
      let s1 = 0, s2 = 0;
      for (let j = 0; j < d; j++) {
        const v = block[r * d + j]! - mean[j]!;
        s1 += v * first[j]!;
        s2 += v * second[j]!;
      }
      p1[r0 + r] = s1;
      p2[r0 + r] = s2;
    }
  }
  const byFirst = Array.from({ length: k }, (_, i) => i).sort((a, b) => p1[a]! - p1[b]! || a - b);
  const cols = heatmapColumns(k);
  const order: number[] = [];
  for (let r = 0; r < k; r += cols) order.push(...byFirst.slice(r, r + cols).sort((a, b) => p2[a]! - p2[b]! || a - b));
  return order;
}

/** Power iteration for the top eigenvector of the sample's covariance, orthogonal to `deflate`. */
function principalDirection(sample: Matrix, mean: Float64Array, deflate: Float64Array | null): Float64Array {
  const { cols: d, data } = sample;
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
    for (let i = 0; i < sample.rows; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += (data[i * d + j]! - mean[j]!) * v[j]!;
      for (let j = 0; j < d; j++) w[j] += s * (data[i * d + j]! - mean[j]!);
    }
    v = orthonormalize(w);
  }
  return v;
}

// Brute-force references for the search tests (unit and gpu tiers), and coarse levels for the IVF
// tests made without the code under test: `cells` seeded random codes as the centroids and every
// code assigned to its nearest one by brute force.
import type { CodebookData, ComputeBackend, Matrix } from '../../native-gpu/backend.js';
import { inMemory, type Codebook } from '../../extension/engine/codebook/codebook.js';
import { openSearch, shareFound } from '../../extension/engine/search/search.js';
import { sampleIndices, seededRandom, takeRows } from '../../extension/engine/core/sampling.js';

export function squaredDistance(a: Float32Array, ai: number, b: Float32Array, bi: number, d: number): number {
  let s = 0;
  for (let j = 0; j < d; j++) {
    const diff = a[ai * d + j] - b[bi * d + j];
    s += diff * diff;
  }
  return s;
}

/** index of the row of `rows` nearest to row `i` of `points` (ties: lowest) */
export function bruteNearest(points: Matrix, i: number, rows: Matrix): number {
  let best = 0, bestDist = Infinity;
  for (let c = 0; c < rows.rows; c++) {
    const dist = squaredDistance(points.data, i, rows.data, c, points.cols);
    if (dist < bestDist) {
      bestDist = dist;
      best = c;
    }
  }
  return best;
}

export function coarseLevel(codes: Matrix, cells: number, seed: number): { centroids: Matrix; assign: Int32Array } {
  const centroids = takeRows(codes, sampleIndices(codes.rows, cells, seededRandom(seed)));
  const assign = Int32Array.from({ length: codes.rows }, (_, i) => bruteNearest(codes, i, centroids));
  return { centroids, assign };
}

/** The codes reordered by cell (ascending id within a cell) with the matching sorted assignment,
 *  as a two-level build stores them; `ids[p]` is the original id of new code p. */
export function sortedByCell(codes: Matrix, coarse: { centroids: Matrix; assign: Int32Array }): { codes: Matrix; coarse: { centroids: Matrix; assign: Int32Array }; ids: Int32Array } {
  const ids = Int32Array.from({ length: codes.rows }, (_, i) => i).sort((a, b) => coarse.assign[a] - coarse.assign[b] || a - b);
  return {
    codes: takeRows(codes, ids),
    coarse: { centroids: coarse.centroids, assign: Int32Array.from(ids, (i) => coarse.assign[i]) },
    ids,
  };
}

/** A codebook in memory around `frozen` (external encoder, no atlas), with an optional coarse level. */
export function memoryCodebook(frozen: CodebookData, coarse?: Codebook['coarse']): Codebook {
  return {
    frozen,
    trainable: inMemory(frozen),
    counts: null,
    coarse,
    meta: {
      formatVersion: 1, encoder: { kind: 'onnx', id: 'external', patch: 0, inputSize: [0, 0], d: frozen.cols, resize: 'stretch' }, k: frozen.rows, d: frozen.cols,
      lambda: 0, iterations: 0, seed: 0, corpusFingerprint: 'test', atlas: 'none', createdAt: new Date(0).toISOString(),
    },
    fingerprint: 'test',
  };
}

/** recall@1 of `cb`'s IVF search of `queries` at a given nprobe, against its exact search (run
 *  once, here): the share of queries whose nearest code it found (shareFound). */
export async function ivfRecallOf(cb: Codebook, backend: ComputeBackend, queries: Matrix): Promise<(nprobe: number) => Promise<number>> {
  const exact = await openSearch(cb, backend, { search: 'exact' });
  const truth = await exact.nearest(queries);
  exact.dispose();
  return async (nprobe) => {
    const ivf = await openSearch(cb, backend, { nprobe });
    try {
      return shareFound(queries, cb.frozen, await ivf.nearest(queries), truth);
    } finally {
      ivf.dispose();
    }
  };
}

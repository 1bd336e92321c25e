// What the Codebook panel shows about the codes beyond their counts: a code's nearest codewords,
// and the coarse level of an IVF codebook (its cells, each cell's codes and how much they are used).
import type { ComputeBackend } from '../../../native-gpu/backend.js';
import { rowsF32 } from '../../../native-gpu/tables.js';
import { cellMembers } from '../../../native-gpu/ivf.js';
import type { Codebook } from '../codebook/codebook.js';
import { UserError } from '../../../common/errors.js';

/** codewords compared per backend call (f16 tables are decoded a block at a time) */
const BLOCK = 65_536;

/** The `count` codewords nearest to code `code` (itself left out), nearest first, with their
 *  squared distances. The one codeword is the backend's "codebook" and the codewords its queries,
 *  so each nearest() call returns every code's distance to it. */
export async function nearestCodewords(cb: Codebook, code: number, count: number, backend: ComputeBackend): Promise<{ code: number; distance: number }[]> {
  const { rows: k, cols: d } = cb.frozen;
  if (!Number.isInteger(code) || code < 0 || code >= k) throw new UserError(`code ${code} is outside the codebook (K = ${k})`);
  const handle = await backend.loadCodebook({ rows: 1, cols: d, data: rowsF32(cb.frozen, code, 1).slice() });
  const best: { code: number; distance: number }[] = [];
  try {
    for (let r0 = 0; r0 < k; r0 += BLOCK) {
      const n = Math.min(BLOCK, k - r0);
      const { distances } = await backend.nearest(handle, { rows: n, cols: d, data: rowsF32(cb.frozen, r0, n) });
      for (let i = 0; i < n; i++) {
        if (r0 + i === code) continue;
        const distance = Math.max(0, distances[i]!);
        if (best.length < count || distance < best[best.length - 1]!.distance) {
          best.push({ code: r0 + i, distance });
          best.sort((a, b) => a.distance - b.distance);
          if (best.length > count) best.pop();
        }
      }
    }
  } finally {
    handle.dispose();
  }
  return best;
}

/** One coarse cell of an IVF codebook and the use of its codes in some counts. */
export interface CoarseCell {
  cell: number;
  /** its codes' ids, ascending */
  codes: Int32Array;
  /** tokens assigned to its codes */
  tokens: number;
  /** its codes used at least once */
  used: number;
}

/** The coarse cells of a codebook with their codes and usage under `counts` (per-code token
 *  counts, e.g. cb.counts or a token set's histogram); null for a codebook without a coarse level. */
export function coarseCells(cb: Codebook, counts: ArrayLike<number>): CoarseCell[] | null {
  if (!cb.coarse) return null;
  const k = cb.frozen.rows;
  if (counts.length !== k) throw new UserError(`${counts.length} code counts for a codebook of K = ${k}`);
  const cells = cb.coarse.centroids.rows;
  const { order, cellStart } = cellMembers(cb.coarse.assign, cells);
  return Array.from({ length: cells }, (_, cell) => {
    const codes = order.slice(cellStart[cell], cellStart[cell + 1]);
    let tokens = 0, used = 0;
    for (const code of codes) {
      tokens += counts[code]!;
      if (counts[code]! > 0) used++;
    }
    return { cell, codes, tokens, used };
  });
}

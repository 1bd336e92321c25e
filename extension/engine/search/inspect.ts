// What the Codebook panel shows about the codes beyond their counts: a code's nearest codewords,
// the coarse level of an IVF codebook (its cells, each cell's codes and how much they are used), and
// how far training moved each code's trainable row from its frozen row.
import type { ComputeBackend } from '../../../native-gpu/backend.js';
import { rowsF32 } from '../../../native-gpu/tables.js';
import { cellMembers } from '../../../native-gpu/ivf.js';
import { trainableStartsAsFrozen, type Codebook } from '../codebook/codebook.js';
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

/** How far training moved each code: the L2 distance between trainable row k and frozen row k,
 *  its initialization. Null distances, with the reason, when the two rows do not share a space. */
export interface TrainingDrift {
  distances: Float64Array | null;
  /** what the distances are, or why there are none */
  note: string;
}

export async function trainingDrift(cb: Codebook): Promise<TrainingDrift> {
  const { rows: k, cols: d } = cb.frozen;
  const width = cb.trainable.cols;
  if (width !== d) {
    return { distances: null, note: `The trainable rows have ${width} values and the frozen rows ${d}: they live in different spaces, so there is no drift to measure.` };
  }
  if (!trainableStartsAsFrozen(cb.meta)) {
    return { distances: null, note: 'The trainable half is the refined pixel atlas (mean patches fitted from images), not frozen rows moved by training.' };
  }
  const trainable = await cb.trainable.load();
  const distances = new Float64Array(k);
  for (let r0 = 0; r0 < k; r0 += BLOCK) {
    const n = Math.min(BLOCK, k - r0);
    const a = rowsF32(cb.frozen, r0, n);
    const b = rowsF32(trainable, r0, n);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = i * d; j < (i + 1) * d; j++) s += (b[j]! - a[j]!) ** 2;
      distances[r0 + i] = Math.sqrt(s);
    }
  }
  return { distances, note: `L2 distance between each code's trainable row and its frozen row (atlas '${cb.meta.atlas}'): how far training moved it.` };
}

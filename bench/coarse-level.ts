// A coarse level for IVF search made from a codebook's own codes: plain k-means over the codes
// (the engine's kmeans) into K1 cells, then the codes reordered so each cell's codes are
// contiguous and in ascending id order, as a two-level build stores them (IVF then needs no copy).
// The IVF and tokenize benches and the IVF tests use it to get codebooks with a coarse level.
import type { ComputeBackend, Matrix } from '../native-gpu/backend.js';
import { rowsF32 } from '../native-gpu/tables.js';
import { inMemory, type Codebook } from '../extension/engine/codebook/codebook.js';
import { kmeans } from '../extension/engine/build/kmeans.js';
import { takeRows } from '../extension/engine/core/sampling.js';

export interface GroupedCodes {
  /** the codes, grouped by cell */
  codes: Matrix;
  coarse: { centroids: Matrix; assign: Int32Array };
  /** order[p] = the original index of grouped code p */
  order: Int32Array;
}

export async function coarseLevelOf(codes: Matrix, cells: number, backend: ComputeBackend, opts: { iterations?: number; seed?: number } = {}): Promise<GroupedCodes> {
  const { centroids, ids } = await kmeans(codes, { k: cells, iterations: opts.iterations ?? 10, seed: opts.seed ?? 0 }, backend);
  const order = Int32Array.from({ length: codes.rows }, (_, i) => i).sort((a, b) => ids[a] - ids[b] || a - b);
  return { codes: takeRows(codes, order), coarse: { centroids, assign: Int32Array.from(order, (i) => ids[i]) }, order };
}

/** The same codebook with a coarse level of `cells` cells, codes (and their trainable rows and
 *  counts) reordered by cell. Its fingerprint is the reordered table's. */
export async function withCoarseLevel(cb: Codebook, cells: number, backend: ComputeBackend): Promise<Omit<Codebook, 'fingerprint'>> {
  const frozen: Matrix = { rows: cb.frozen.rows, cols: cb.frozen.cols, data: rowsF32(cb.frozen, 0, cb.frozen.rows) };
  const { codes, coarse, order } = await coarseLevelOf(frozen, cells, backend);
  const trainable = await cb.trainable.load();
  const { fingerprint: _old, ...rest } = cb;
  return {
    ...rest,
    frozen: codes,
    trainable: inMemory(takeRows(trainable, order)),
    counts: cb.counts && Float64Array.from(order, (i) => cb.counts![i]),
    coarse,
  };
}

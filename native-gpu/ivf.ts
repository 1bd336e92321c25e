// IVF search, the part both backends share. An IVF index is the codebook plus a coarse level: K1
// coarse centroids and each code's cell. A query is compared with the coarse centroids first; only
// the codes of its nprobe nearest cells are searched. Both backends then batch by CELL, not by
// query: every query that probes a cell goes into one GEMM against that cell's codes, so the work
// stays a few large matrix products (FAISS's IndexIVFFlat scans list by list, per query, without
// BLAS: notes in BENCHMARKS.md). For that the codes are grouped by cell once, at load time.
//
// What lives here: the grouping (CellLayout), the checks, the query -> cell lists of one batch,
// and the per-query merge of the cells' winners. The coarse step itself is cpu/ivf.ts's
// CoarseQuantizer (the WebGPU backend uses it too: see webgpu/ivf.ts); the per-cell GEMMs are each
// backend's own.
import type { CoarseData, CodebookData, Matrix } from './backend.js';
import { valueCount } from './tables.js';
import { UserError } from '../common/errors.js';

/**
 * The codes grouped by coarse cell: position p of `grouped` holds code `order[p]`, and cell c owns
 * positions [cellStart[c], cellStart[c+1]). Within a cell the codes keep ascending id order, so
 * the lowest position among equal scores is also the lowest id.
 */
export interface CellLayout {
  cells: number;
  /** grouped position -> code id */
  order: Int32Array;
  /** K1 + 1 offsets into the grouped table */
  cellStart: Int32Array;
  /** the codes in grouped order: the caller's arrays themselves when `assign` is already sorted */
  grouped: CodebookData;
  /** the cells that hold at least one code, ascending: the only ones the coarse step may pick,
   *  so every probed cell has a code to offer */
  nonEmpty: Int32Array;
}

/** Throws unless the coarse level fits the codes: every assignment a cell, centroids of width d. */
export function checkCoarse(codes: CodebookData, coarse: CoarseData): void {
  const k = codes.rows, d = codes.cols, cells = coarse.centroids.rows;
  if (k < 1 || d < 1) throw new UserError(`the codebook is empty (${k} x ${d}); expected at least one code of at least one dimension`);
  if (valueCount(codes) !== k * d) throw new Error(`codebook data has ${valueCount(codes)} values for ${k} x ${d}`);
  if (valueCount(coarse.centroids) !== cells * coarse.centroids.cols) throw new Error(`coarse centroid data does not hold ${cells} x ${coarse.centroids.cols} values`);
  if (cells < 1) throw new UserError('the coarse level has no cells; expected at least one coarse centroid');
  if (coarse.centroids.cols !== d) throw new UserError(`the coarse centroids have ${coarse.centroids.cols} dimensions but the codes have ${d}`);
  if (coarse.assign.length !== k) throw new UserError(`the coarse assignment lists ${coarse.assign.length} codes but the codebook has ${k}`);
  for (let i = 0; i < k; i++) {
    const c = coarse.assign[i];
    if (!(c >= 0 && c < cells)) throw new UserError(`code ${i} is assigned to coarse cell ${c}, outside [0, ${cells})`);
  }
}

export function checkNprobe(nprobe: number, cells: number): void {
  if (!Number.isInteger(nprobe) || nprobe < 1 || nprobe > cells) {
    throw new UserError(`nprobe must be a whole number from 1 to ${cells} (the coarse cells); got ${nprobe}`);
  }
}

/** Each cell's codes (a stable counting sort of `assign`): cell c's code ids are
 *  order[cellStart[c] .. cellStart[c+1]), ascending. */
export function cellMembers(assign: Int32Array, cells: number): { order: Int32Array; cellStart: Int32Array } {
  const cellStart = new Int32Array(cells + 1);
  for (let i = 0; i < assign.length; i++) cellStart[assign[i] + 1]++;
  for (let c = 0; c < cells; c++) cellStart[c + 1] += cellStart[c];
  const order = new Int32Array(assign.length);
  const next = cellStart.slice(0, cells);
  for (let i = 0; i < assign.length; i++) order[next[assign[i]]++] = i;
  return { order, cellStart };
}

/** Groups the codes by cell. No copy when `assign` is non-decreasing. */
export function groupByCell(codes: CodebookData, coarse: CoarseData): CellLayout {
  checkCoarse(codes, coarse);
  const k = codes.rows, d = codes.cols, cells = coarse.centroids.rows, assign = coarse.assign;
  const { order, cellStart } = cellMembers(assign, cells);
  let sorted = true;
  for (let i = 1; i < k && sorted; i++) if (assign[i] < assign[i - 1]) sorted = false;

  let grouped: CodebookData = codes;
  if (!sorted) {
    if ('half' in codes) {
      const half = new Uint16Array(k * d);
      for (let p = 0; p < k; p++) half.set(codes.half.subarray(order[p] * d, (order[p] + 1) * d), p * d);
      grouped = { rows: k, cols: d, half };
    } else {
      const data = new Float32Array(k * d);
      for (let p = 0; p < k; p++) data.set(codes.data.subarray(order[p] * d, (order[p] + 1) * d), p * d);
      grouped = { rows: k, cols: d, data };
    }
  }
  const nonEmpty: number[] = [];
  for (let c = 0; c < cells; c++) if (cellStart[c + 1] > cellStart[c]) nonEmpty.push(c);
  return { cells, order, cellStart, grouped, nonEmpty: Int32Array.from(nonEmpty) };
}

/** The queries of one batch listed per cell they probe (CSR): cell c's queries are
 *  members[start[c] .. start[c+1]), ascending. `probes` is [queries x nprobe] cell ids. */
export function queriesByCell(probes: Int32Array, nprobe: number, cells: number): { start: Int32Array; members: Int32Array } {
  const start = new Int32Array(cells + 1);
  for (let i = 0; i < probes.length; i++) start[probes[i] + 1]++;
  for (let c = 0; c < cells; c++) start[c + 1] += start[c];
  const members = new Int32Array(probes.length);
  const next = start.slice(0, cells);
  for (let i = 0; i < probes.length; i++) members[next[probes[i]]++] = Math.floor(i / nprobe);
  return { start, members };
}

/**
 * The best candidate of each query over the cells it probes: lowest score ||c||^2 - 2 q.c, ties to
 * the lowest code id (as exact search breaks them). Keeps the grouped position too, to read the
 * winner's row back for its exact distance.
 */
export class BestPerQuery {
  readonly scores: Float32Array;
  readonly ids: Int32Array;
  readonly positions: Int32Array;

  constructor(queries: number) {
    this.scores = new Float32Array(queries).fill(Infinity);
    this.ids = new Int32Array(queries).fill(-1);
    this.positions = new Int32Array(queries).fill(-1);
  }

  offer(query: number, score: number, id: number, position: number): void {
    const s = this.scores[query];
    if (score < s || (score === s && id < this.ids[query]) || this.ids[query] < 0) {
      this.scores[query] = score;
      this.ids[query] = id;
      this.positions[query] = position;
    }
  }

  /** Throws if some query got no candidate (a bug: every probed cell holds a code). */
  checkComplete(): void {
    const missing = this.ids.indexOf(-1);
    if (missing >= 0) throw new Error(`IVF search found no candidate for query ${missing}`);
  }
}

/** The rows of `queries` listed in `members[from..to)`, gathered into `out` (row-major). */
export function gatherRows(queries: Matrix, members: Int32Array, from: number, to: number, out: Float32Array, outStride = queries.cols): void {
  const d = queries.cols;
  for (let i = from; i < to; i++) {
    const q = members[i];
    out.set(queries.data.subarray(q * d, (q + 1) * d), (i - from) * outStride);
  }
}

// Which search a job runs over a codebook's frozen table, decided in one place: IVF through the
// codebook's coarse level when it has one (nprobe cells per query), exact search otherwise or
// when asked for. Tokenize, the CLI's search and the extension's commands open a search here, and
// every token file records what was run ({method, nprobe}).
//
// nprobe: what the caller asks for, else the codebook's calibrated value (its metadata `nprobe`:
// the smallest rung of NPROBE_LADDER whose recall@1 against exact search reached
// CALIBRATION_TARGET on a sample of vectors, see calibrateNprobe), else UNCALIBRATED_NPROBE.
// The right value depends on the data far more than on K: 1 of 128 cells on the sample photos'
// DCT patches, 28-40 of 362-707 on bench/embedding-data.ts's mixture; a fixed default is either
// slow on the first or misses on the second.
import type { CoarseData, CodebookData, ComputeBackend, Matrix, NearestResult, RunControl } from '../../../native-gpu/backend.js';
import type { Codebook, CodebookMeta } from '../codebook/codebook.js';
import type { SearchInfo } from '../codebook/token-files.js';
import { DEFAULTS, SEARCH_CHOICES, UNCALIBRATED_NPROBE, type SearchChoice } from '../core/defaults.js';
import { UserError } from '../../../common/errors.js';
import { sampleIndices, sampleRows, seededRandom, takeRows } from '../core/sampling.js';
import { rowsF32 } from '../../../native-gpu/tables.js';


export interface SearchOptions {
  search?: SearchChoice;
  /** coarse cells probed per query (IVF); more than the codebook has means all of them;
   *  0 or absent: the codebook's calibrated nprobe (UNCALIBRATED_NPROBE without one) */
  nprobe?: number;
}


export interface CodebookSearch {
  readonly info: SearchInfo;
  nearest(queries: Matrix, control?: RunControl): Promise<NearestResult>;
  dispose(): void;
}

/** nprobe as a search option: a whole number, 0 meaning the codebook's calibrated value. */
export function checkNprobe(nprobe: number): void {
  if (!Number.isInteger(nprobe) || nprobe < 0) throw new UserError(`nprobe must be a whole number of at least 0 (0: the codebook's calibrated nprobe); got ${nprobe}`);
}

/** The nprobe an IVF search of `cb` runs at when the caller asks for `requested` (0 or absent:
 *  the codebook's calibrated value, else the fallback), before capping at the cells. */
export function defaultNprobe(meta: CodebookMeta, requested?: number): number {
  return requested || meta.nprobe || UNCALIBRATED_NPROBE;
}

export function checkSearchChoice(search: string): asserts search is SearchChoice {
  if (!(SEARCH_CHOICES as readonly string[]).includes(search)) throw new UserError(`search must be ${SEARCH_CHOICES.map((c) => `'${c}'`).join(' or ')}; got '${search}'`);
}

/** Loads the codebook's frozen table on the backend for the search the options ask for. */
export async function openSearch(cb: Codebook, backend: ComputeBackend, options: SearchOptions = {}): Promise<CodebookSearch> {
  const search = options.search ?? DEFAULTS.search;
  checkSearchChoice(search);
  checkNprobe(options.nprobe ?? 0);
  if (search === 'exact' || !cb.coarse) {
    const handle = await backend.loadCodebook(cb.frozen);
    return {
      info: { method: 'exact', nprobe: null },
      nearest: (queries, control) => backend.nearest(handle, queries, control),
      dispose: () => handle.dispose(),
    };
  }
  const index = await backend.loadIvf(cb.frozen, cb.coarse);
  const cells = Math.min(defaultNprobe(cb.meta, options.nprobe), index.cells);
  return {
    info: { method: 'ivf', nprobe: cells },
    nearest: (queries, control) => backend.nearestIvf(index, queries, { nprobe: cells, signal: control?.signal }),
    dispose: () => index.dispose(),
  };
}

/**
 * Whether a search found a query's nearest code: its code is exact search's code, or one exactly as
 * near as far as the search scores can tell. A score ||c||^2 - 2 q.c is a sum of d f32 products,
 * rounded by about sqrt(d) x 2^-24 x (||q||^2 + ||c||^2); codes whose distances differ by less
 * than four times that are a tie either search may break either way (real patch data has many:
 * flat regions give near-duplicate codes, and exact search and IVF's per-cell GEMMs round
 * differently; measured gaps reach 1.6e-6 x (||q||^2 + ||c||^2) at d = 768). Such a tie counts as
 * found. `distance`, `exactDistance`: the squared distances both searches return.
 */
export function foundNearest(query: Float32Array, code: Float32Array, distance: number, exactDistance: number): boolean {
  if (distance <= exactDistance) return true;
  let qq = 0, cc = 0;
  for (let j = 0; j < query.length; j++) {
    qq += query[j]! * query[j]!;
    cc += code[j]! * code[j]!;
  }
  return distance - exactDistance <= tieTolerance(query.length) * (qq + cc);
}

/** Relative rounding bound of the f32 search scores in d dimensions (see foundNearest). */
export function tieTolerance(d: number): number {
  return 4 * 2 ** -24 * Math.sqrt(d);
}

/**
 * The share of queries whose nearest code `answer` found, judged against exact search's `truth`
 * (foundNearest). truth[i] answers query rows[i] (query i when `rows` is absent).
 */
export function shareFound(queries: Matrix, codes: CodebookData, answer: NearestResult, truth: NearestResult, rows?: ArrayLike<number>): number {
  const d = queries.cols;
  let found = 0;
  for (let i = 0; i < truth.ids.length; i++) {
    const q = rows ? rows[i]! : i;
    const exactId = truth.ids[i]!;
    if (answer.ids[q] === exactId || foundNearest(queries.data.subarray(q * d, (q + 1) * d), rowsF32(codes, exactId, 1), answer.distances[q]!, truth.distances[i]!)) found++;
  }
  return found / truth.ids.length;
}

/**
 * recall@1 of a search's answer (`ids`, `distances`) for `queries`: exact search on `sample` of
 * the queries (a seeded draw) and the share of them whose nearest code was found (shareFound).
 */
export async function measureRecall(cb: Codebook, backend: ComputeBackend, queries: Matrix, answer: NearestResult, sample: number,
                                    control?: RunControl): Promise<{ recall: number; sampled: number }> {
  if (!Number.isInteger(sample) || sample < 1) throw new UserError(`the recall sample must be a whole number of at least 1; got ${sample}`);
  const picked = sampleIndices(queries.rows, Math.min(sample, queries.rows), seededRandom(DEFAULTS.seed));
  const truth = await exactNearest(cb, backend, takeRows(queries, picked), control);
  return { recall: shareFound(queries, cb.frozen, answer, truth, picked), sampled: picked.length };
}

/** Exact search's answers for `queries` (the ground truth of recall), its search closed after. */
async function exactNearest(cb: Codebook, backend: ComputeBackend, queries: Matrix, control?: RunControl): Promise<NearestResult> {
  const exact = await openSearch(cb, backend, { search: 'exact' });
  try {
    return await exact.nearest(queries, control);
  } finally {
    exact.dispose();
  }
}

/** recall@1 a calibrated nprobe reaches on its sample. */
export const CALIBRATION_TARGET = 0.95;
/** Vectors a calibration searches: the recall of 4,096 has a standard error of 0.0034 at 0.95. */
export const CALIBRATION_SAMPLE = 4096;
/** Queries per IVF search in a calibration. */
const CALIBRATION_BATCH = 1024;

/** The nprobe values a calibration tries, smallest first: 1, 2, 4, 8, then steps of x1.5 and
 *  x4/3 (12, 16, 24, 32, 48, 64, ...), ending with every candidate cell, which is exact search. */
export function nprobeLadder(cells: number): number[] {
  const ladder = [1, 2, 4];
  for (let p = 8; p < cells; p *= 2) ladder.push(p, p * 1.5);
  return [...ladder.filter((p) => p < cells), cells];
}

export interface NprobeCalibration {
  /** the smallest rung of the ladder whose recall@1 reached the target */
  nprobe: number;
  /** its recall@1 on the sample */
  recall: number;
  /** vectors searched */
  queries: number;
  /** every rung tried: nprobe and recall@1 */
  curve: { nprobe: number; recall: number }[];
}

/**
 * The smallest nprobe of nprobeLadder whose IVF search of `queries` finds exact search's code
 * (`truth`, one per query; shareFound's near-ties count) for at least `target` of them. Climbs
 * the ladder from 1: recall grows with nprobe (every rung probes a superset of the cells of the
 * one before), and on clustered data the first rungs already reach it, so the climb is cheap where
 * the answer is small. `codes` and `coarse` as the codebook stores them (f16 rounding included).
 */
export async function calibrateNprobe(codes: CodebookData, coarse: CoarseData, backend: ComputeBackend, queries: Matrix, truth: NearestResult,
                                      control: RunControl & { target?: number; onRung?: (nprobe: number, recall: number) => void } = {}): Promise<NprobeCalibration> {
  const target = control.target ?? CALIBRATION_TARGET;
  if (!(target > 0 && target <= 1)) throw new UserError(`the target recall must be in (0, 1]; got ${target}`);
  if (truth.ids.length !== queries.rows) throw new Error(`calibration has ${truth.ids.length} exact answers for ${queries.rows} queries`);
  const index = await backend.loadIvf(codes, coarse);
  try {
    const curve: NprobeCalibration['curve'] = [];
    for (const nprobe of nprobeLadder(index.cells)) {
      // in slices, so that the search's per-cell blocks (and a build's peak memory) stay small
      let found = 0;
      for (let q0 = 0; q0 < queries.rows; q0 += CALIBRATION_BATCH) {
        const rows = Math.min(CALIBRATION_BATCH, queries.rows - q0);
        const slice: Matrix = { rows, cols: queries.cols, data: queries.data.subarray(q0 * queries.cols, (q0 + rows) * queries.cols) };
        const answer = await backend.nearestIvf(index, slice, { nprobe, signal: control.signal });
        found += rows * shareFound(slice, codes, answer, { ids: truth.ids.subarray(q0, q0 + rows), distances: truth.distances.subarray(q0, q0 + rows) });
      }
      const recall = found / queries.rows;
      curve.push({ nprobe, recall });
      control.onRung?.(nprobe, recall);
      if (recall >= target) return { nprobe, recall, queries: queries.rows, curve };
    }
    // Every cell probed is exact search; only near-ties beyond the f32 tolerance could miss.
    const last = curve.at(-1)!;
    return { nprobe: last.nprobe, recall: last.recall, queries: queries.rows, curve };
  } finally {
    index.dispose();
  }
}

/** calibrateNprobe for a codebook with a coarse level, on `queries` (a seeded sample of
 *  CALIBRATION_SAMPLE of them when there are more), exact search giving the truth. */
export async function calibrateCodebook(cb: Codebook, backend: ComputeBackend, queries: Matrix,
                                        control: RunControl & { target?: number; sample?: number; onRung?: (nprobe: number, recall: number) => void } = {}): Promise<NprobeCalibration> {
  if (!cb.coarse) throw new UserError('the codebook has no coarse level, so its search is exact and has no nprobe to calibrate; expected a two-level codebook');
  if (queries.cols !== cb.frozen.cols) throw new UserError(`the queries have d=${queries.cols} but the codebook has d=${cb.frozen.cols}`);
  const sample = control.sample ?? CALIBRATION_SAMPLE;
  if (!Number.isInteger(sample) || sample < 1) throw new UserError(`the calibration sample must be a whole number of at least 1; got ${sample}`);
  const picked = queries.rows > sample ? sampleRows(queries, sample, DEFAULTS.seed) : queries;
  return calibrateNprobe(cb.frozen, cb.coarse, backend, picked, await exactNearest(cb, backend, picked, control), control);
}

// Which search a job runs over a codebook's frozen table, decided in one place: IVF through the
// codebook's coarse level when it has one (nprobe cells per query), exact search otherwise or
// when asked for. Tokenize, the CLI's search and the extension's commands open a search here, and
// every token file records what was run ({method, nprobe}).
import type { CodebookData, ComputeBackend, Matrix, NearestResult, RunControl } from '../../native-gpu/backend';
import type { Codebook } from './codebook';
import { DEFAULTS } from './defaults';
import { UserError } from '../../common/errors';
import { sampleIndices, seededRandom, takeRows } from './sampling';
import { rowsF32 } from '../../native-gpu/tables';

/** 'auto': IVF when the codebook has a coarse level, else exact; 'exact': always exact. */
export type SearchChoice = 'auto' | 'exact';

export interface SearchOptions {
  search?: SearchChoice;
  /** coarse cells probed per query (IVF); more than the codebook has means all of them */
  nprobe?: number;
}

/** What a search run was, as token files record it. nprobe is null for exact search. */
export interface SearchInfo {
  method: 'ivf' | 'exact';
  nprobe: number | null;
}

export interface CodebookSearch {
  readonly info: SearchInfo;
  nearest(queries: Matrix, control?: RunControl): Promise<NearestResult>;
  dispose(): void;
}

export function checkNprobe(nprobe: number): void {
  if (!Number.isInteger(nprobe) || nprobe < 1) throw new UserError(`nprobe must be a whole number of at least 1; got ${nprobe}`);
}

export function checkSearchChoice(search: string): asserts search is SearchChoice {
  if (search !== 'auto' && search !== 'exact') throw new UserError(`search must be 'auto' or 'exact'; got '${search}'`);
}

/** Loads the codebook's frozen table on the backend for the search the options ask for. */
export async function openSearch(cb: Codebook, backend: ComputeBackend, options: SearchOptions = {}): Promise<CodebookSearch> {
  const search = options.search ?? DEFAULTS.search;
  checkSearchChoice(search);
  const nprobe = options.nprobe ?? DEFAULTS.nprobe;
  checkNprobe(nprobe);
  if (search === 'exact' || !cb.coarse) {
    const handle = await backend.loadCodebook(cb.frozen);
    return {
      info: { method: 'exact', nprobe: null },
      nearest: (queries, control) => backend.nearest(handle, queries, control),
      dispose: () => handle.dispose(),
    };
  }
  const index = await backend.loadIvf(cb.frozen, cb.coarse);
  const cells = Math.min(nprobe, index.cells);
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
  const exact = await openSearch(cb, backend, { search: 'exact' });
  try {
    const truth = await exact.nearest(takeRows(queries, picked), control);
    return { recall: shareFound(queries, cb.frozen, answer, truth, picked), sampled: picked.length };
  } finally {
    exact.dispose();
  }
}

// Two-level k-means: the builder at the paper's scale (500,000 codes from millions of vectors).
// Flat k-means compares every vector with every code in every iteration; at N = 2,000,000,
// K = 500,000, d = 768 one pass is 1.5 PFLOP, hours on two cores. Two levels cost about
// N x (K / K1) x d per iteration instead:
//   1. coarse: k-means with K1 cells (default round(sqrt K)) on a seeded sample of at most
//      POINTS_PER_CENTROID points per cell;
//   2. partition: one streaming pass per group of input rows (an input shard file's) assigns
//      every vector to its nearest cell and appends it, as f16, to that group's file of the cell;
//   3. cells: every cell gets a share of K proportional to its size (the shares sum to K exactly,
//      and no cell gets more codes than it has points), and k-means with that many codes runs on
//      the cell's own points (at most POINTS_PER_CENTROID per code, a seeded sample beyond), read
//      from every group's file of the cell in group order (= input order);
//   4. refine: passes in which every vector is reassigned through the coarse level (IVF: the
//      nearest code among the codes of its nprobe nearest cells) and every code becomes the mean
//      of the vectors it won, from whichever cell they came: codes at cell borders compete. A
//      pass is a map (each group's partial sums and counts per code) and a reduce (added in
//      group order).
// The plan: these stages as independent tasks (coarse; partition per group; k-means per range
// of cells; map per group and reduce, per pass) that communicate only through files in the
// checkpoint folder, each task's outputs vouched for by a marker written last. One process runs
// them in order (twoLevelKMeans); a cluster runs each as its own task (runTwoLevelStage). The
// groups depend on the input alone and every sum is taken in the same order, so both give the
// same codebook to the bit.
// The counts are those of the last assignment (the vectors each code is the mean of), as the
// inertia is: like FAISS, no extra pass re-assigns after the last update.
// The utilization-regularized update (kmeans.ts, lambda) runs at both levels and in refinement.
// The codes come out grouped by cell (cell 0's first); `coarse.assign` says each code's cell.
//
// Memory: the vectors are only ever streamed in blocks (never all in f32 at once); what stays is
// the codebook (K x d f32) and, during a refinement pass, its sums (K x d f64). planTwoLevel
// sizes the blocks and the training samples to the working-set budget, or says why it cannot.
//
// Checkpoints: every task's outputs (checkpoint.ts keys the folder). Every random choice is
// drawn from derivedSeed(seed, phase, cell), so a build that was killed and run again with the
// same arguments ends with the same bytes as one that never stopped.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { CodebookHandle, ComputeBackend, IvfHandle, Matrix } from '../../../native-gpu/backend.js';
import type { CoarseLevel } from '../codebook/codebook.js';
import { writeFileAtomic } from '../io/atomic-write.js';
import { openRegularFile, readExactly } from '../io/files.js';
import { Checkpoint } from '../io/checkpoint.js';
import { blockScratch, gatherRows, rawRowsSource, subsetSource, type BlockScratch, type RawRows, type RowSource } from '../embed/embedding-source.js';
import { kmeans, updateCentroids } from './kmeans.js';
import { derivedSeed, sampleIndices, seededRandom } from '../core/sampling.js';
import { f32ToF16 } from '../../../common/half.js';
import { throwIfCancelled, UserError } from '../../../common/errors.js';

/** Training points per centroid at most, at both levels: faiss.Kmeans's default cap
 *  (max_points_per_centroid = 256); beyond it a level trains on a seeded sample. */
export const POINTS_PER_CENTROID = 256;
/** k-means++ rounds of a cell's k-means. A cell is small (thousands of points, hundreds of codes):
 *  each round's GEMM is tiny and the round's fixed cost rules, so the default 64 rounds made the
 *  init as costly as the iterations. Measured on six cells of embedding-like data (~1,900 points,
 *  ~475 codes, 25 iterations): 64 rounds 0.40 CPU-s a cell, MSE 0.6350; 8 rounds 0.17 s, 0.6348;
 *  random init 0.10 s, 0.6380. */
const CELL_INIT_ROUNDS = 8;
/** Largest value an f16 scratch row can hold. */
const F16_MAX = 65504;
/** Rows per streamed block when the budget allows: big enough that the IVF pass's per-cell GEMMs
 *  are large, small enough to stay a fraction of the working set. */
const MAX_BLOCK_ROWS = 32_768;
const MIN_BLOCK_ROWS = 256;
/** Rows per read while a cell's training sample is gathered (see readCell). */
const CELL_READ_ROWS = 2048;
/** Bytes per value a streamed block costs: the raw read (f16..f64), its f32 copy, a subset's
 *  copy, the f16 scratch copy and the search's gathered rows. */
const BLOCK_BYTES_PER_VALUE = 24;
/** A k-means training set costs its f32 rows plus the k-means++ sample copy and per-point arrays. */
const TRAINING_BYTES_PER_VALUE = 10;
/** Share of the budget the plan fills. The rest is headroom for what the plan cannot count: freed
 *  buffers V8 returns to the system only at its next collection, and allocator slack. Measured on
 *  150,000 x 768 f16 rows, 100 MB budget, six runs each: planning the whole budget peaked at
 *  76-101 MB above the process's own footprint, planning 75% of it at 57-71 MB. */
const PLANNED_SHARE = 0.75;

export interface TwoLevelOptions {
  k: number;
  /** coarse cells K1 */
  coarse: number;
  /** k-means iterations at each level (at most) */
  iterations: number;
  lambda: number;
  seed: number;
  tolerance: number;
  /** refinement passes */
  refine: number;
  /** coarse cells each vector is compared against in refinement */
  nprobe: number;
  /** the working-set budget in bytes */
  memoryBytes: number;
}

/** What the budget allows, fixed before the build starts (and part of the checkpoint key). */
export interface TwoLevelPlan {
  blockRows: number;
  /** points the coarse level trains on */
  coarseSample: number;
  /** most points one cell's k-means trains on */
  cellSample: number;
}

/** Default coarse cells for K codes: round(sqrt K), as faiss.contrib.clustering does. */
export function defaultCoarseCells(k: number): number {
  return Math.max(1, Math.round(Math.sqrt(k)));
}

/** Bytes the codebook holds during refinement: the codes (f32) and their sums (f64), counts and cells. */
function codebookBytes(k: number, d: number): number {
  return k * d * (4 + 8) + k * 16;
}

export function planTwoLevel(rows: number, d: number, opts: Pick<TwoLevelOptions, 'k' | 'coarse' | 'memoryBytes'>): TwoLevelPlan {
  const { k, coarse, memoryBytes } = opts;
  const mb = (bytes: number) => Math.ceil(bytes / 2 ** 20);
  const planned = memoryBytes * PLANNED_SHARE;
  const fixed = codebookBytes(k, d) + codebookBytes(coarse, d);
  const blockRows = Math.min(MAX_BLOCK_ROWS, Math.floor((planned - fixed) / (d * BLOCK_BYTES_PER_VALUE)));
  if (blockRows < MIN_BLOCK_ROWS) {
    const needed = (fixed + MIN_BLOCK_ROWS * d * BLOCK_BYTES_PER_VALUE) / PLANNED_SHARE;
    throw new UserError(`a memory budget of ${mb(memoryBytes)} MB cannot hold K=${k} codes of d=${d} with their sums (${mb(needed)} MB at least)`, {
      cli: 'raise --memory or lower --k',
      vscode: 'lower unicode2.k (builds get half the RAM)',
    });
  }
  const trainingRows = Math.floor(planned / (d * TRAINING_BYTES_PER_VALUE));
  const coarseSample = Math.min(rows, coarse * POINTS_PER_CENTROID, trainingRows);
  if (coarseSample < coarse) {
    throw new UserError(`a memory budget of ${mb(memoryBytes)} MB cannot hold a training sample for ${coarse} coarse cells`, {
      cli: 'raise --memory or lower --coarse',
      vscode: 'lower unicode2.k (builds get half the RAM)',
    });
  }
  return { blockRows, coarseSample, cellSample: Math.max(trainingRows, 1) };
}

/** Each cell's share of K in proportion to its points: share_c = floor(K x P_c / N) -
 *  floor(K x P_(c-1) / N) with P_c the points in cells 0..c. The shares sum to K exactly, and
 *  when K <= N no cell gets more codes than it has points (share_c <= ceil(K n_c / N) <= n_c). */
export function proportionalShares(cellRows: ArrayLike<number>, k: number): Int32Array {
  let n = 0;
  for (let c = 0; c < cellRows.length; c++) n += cellRows[c];
  if (k > n) throw new UserError(`k=${k} codes need at least ${k} vectors, but there are only ${n}`);
  const shares = new Int32Array(cellRows.length);
  let cumulative = 0, previous = 0;
  for (let c = 0; c < cellRows.length; c++) {
    cumulative += cellRows[c];
    // Exact in doubles while K x N < 2^53 (K = 500,000 allows N up to 1.8e10).
    const upTo = Math.floor((k * cumulative) / n);
    shares[c] = upTo - previous;
    previous = upTo;
  }
  return shares;
}

export interface TwoLevelResult {
  centroids: Matrix;
  /** vectors assigned to each code by the last assignment (the ones it is the mean of) */
  counts: Float64Array;
  coarse: CoarseLevel;
  /** sum of squared distances of the vectors to their codes in the last assignment */
  inertia: number;
  /** sha256 of all the input vectors as f32 (the corpus fingerprint), 16 hex */
  fingerprint: string;
  plan: TwoLevelPlan;
  /** the phase the build resumed at, when it did */
  resumedAt: string | null;
}

export interface TwoLevelProgress {
  phase: 'sample' | 'coarse' | 'partition' | 'cells' | 'refine';
  done: number;
  total: number;
  /** [done, total] in units of the phase's cost, when they differ from done/total (for the ETA) */
  work?: [number, number];
  message?: string;
}

export interface TwoLevelControl {
  signal?: AbortSignal;
  onProgress?: (p: TwoLevelProgress) => void;
}

/** One task of the plan. Parts count from 1 (`part` of `parts`), refinement passes too. */
export type TwoLevelStage =
  | { stage: 'coarse' }
  | { stage: 'partition'; part: number; parts: number }
  | { stage: 'cells'; part: number; parts: number }
  | { stage: 'map'; pass: number; part: number; parts: number }
  | { stage: 'reduce'; pass: number };

/** A stage as its status and log files are named: 'coarse', 'partition-3', 'map-1-3', 'reduce-1'. */
export function stageName(s: TwoLevelStage): string {
  if (s.stage === 'coarse') return 'coarse';
  if (s.stage === 'reduce') return `reduce-${s.pass}`;
  return s.stage === 'map' ? `map-${s.pass}-${s.part}` : `${s.stage}-${s.part}`;
}

/** A stage as the task's command line names it: 'coarse', 'partition:3/8', 'map:1:3/8', 'reduce:1'. */
export function formatStage(s: TwoLevelStage): string {
  if (s.stage === 'coarse') return 'coarse';
  if (s.stage === 'reduce') return `reduce:${s.pass}`;
  return s.stage === 'map' ? `map:${s.pass}:${s.part}/${s.parts}` : `${s.stage}:${s.part}/${s.parts}`;
}

export function parseStage(text: string): TwoLevelStage {
  const whole = (t: string | undefined) => (t !== undefined && /^[1-9]\d*$/.test(t) ? Number(t) : NaN);
  const [name, ...rest] = text.split(':');
  const part = /^(\d+)\/(\d+)$/.exec(rest.at(-1) ?? '');
  const [i, n] = [whole(part?.[1]), whole(part?.[2])];
  const parts = i <= n ? { part: i, parts: n } : null;
  if (name === 'coarse' && rest.length === 0) return { stage: 'coarse' };
  if (name === 'reduce' && rest.length === 1 && whole(rest[0]) > 0) return { stage: 'reduce', pass: whole(rest[0]) };
  if (name === 'partition' && rest.length === 1 && parts) return { stage: name, ...parts };
  if (name === 'cells' && rest.length === 1 && parts) return { stage: name, ...parts };
  if (name === 'map' && rest.length === 2 && whole(rest[0]) > 0 && parts) return { stage: 'map', pass: whole(rest[0]), ...parts };
  throw new UserError(`'${text}' is not a stage of the two-level plan (coarse, partition:I/N, cells:I/N, map:P:I/N, reduce:P)`);
}

/** What the checkpoint's state.json mirrors for a reader (the tests, a person): the files of
 *  each stage are what says it is done. */
interface State {
  fingerprint?: string;
  coarseDone?: boolean;
  /** points in each cell, once the partition of every group is complete */
  cellRows?: number[];
  /** refinement passes done (0 once the cells' codes are all there) */
  refined?: number;
  /** of the last assignment */
  inertia?: number;
}

/** Rows of the training set that one partition or map task takes: one input shard file's. */
interface Group {
  /** the group's training rows, in order */
  source: RowSource;
  /** position of its first row in the training set */
  start: number;
}

interface Job {
  training: RowSource;
  base: RowSource;
  subset: Uint32Array | null;
  groups: Group[];
  opts: TwoLevelOptions;
  plan: TwoLevelPlan;
  backend: ComputeBackend;
  checkpoint: Checkpoint<State>;
  signal?: AbortSignal;
  report: (phase: TwoLevelProgress['phase'], done: number, total: number, work?: [number, number], message?: string) => void;
  d: number;
  /** the block buffers of the groups' scratch files, read one group at a time */
  scratch: BlockScratch;
}

/** The groups: one per input file (the training rows among its rows), or one for a source that
 *  is not files. They depend on the input alone, so every run of the plan has the same. */
function groupsOf(base: RowSource, subset: Uint32Array | null): Group[] {
  const files = base.files ?? [base];
  const groups: Group[] = [];
  let first = 0, position = 0;
  for (const file of files) {
    const end = first + file.rows;
    if (!subset) groups.push({ source: file, start: first });
    else {
      let last = position;
      while (last < subset.length && subset[last] < end) last++;
      groups.push({ source: subsetSource(file, subset.subarray(position, last).map((r) => r - first)), start: position });
      position = last;
    }
    first = end;
  }
  return groups;
}

/** What a checkpoint folder of this build is keyed by: the input's identity, the options, the
 *  memory plan, the groups and the device (another device may round differently, so work is only
 *  resumed on the device that did it). */
export function twoLevelKey(base: RowSource, subset: Uint32Array | null, opts: TwoLevelOptions, device: string): Record<string, unknown> {
  const training = subset ? subsetSource(base, subset) : base;
  validate(opts);
  const plan = planTwoLevel(training.rows, training.cols, opts);
  const groups = groupsOf(base, subset).map((g) => g.source.rows);
  return {
    job: 'two-level k-means', version: 2, input: base.identity, rows: training.rows, d: training.cols, subset: subset ? training.identity : null,
    opts: { ...opts, memoryBytes: undefined }, plan, groups, device,
  };
}

/** The build's job over its checkpoint folder: 'open' empties a folder of another build's (the
 *  local run, and the plan's first task), 'attach' refuses one (any other task). */
async function openJob(base: RowSource, subset: Uint32Array | null, opts: TwoLevelOptions, backend: ComputeBackend, dir: string,
                       control: TwoLevelControl, mode: 'open' | 'attach'): Promise<Job> {
  const key = twoLevelKey(base, subset, opts, backend.device);
  const checkpoint = mode === 'open' ? await Checkpoint.open<State>(dir, key, {}) : await Checkpoint.attach<State>(dir, key);
  const report: Job['report'] = (phase, done, total, work, message) => control.onProgress?.({ phase, done, total, work, message });
  const training = subset ? subsetSource(base, subset) : base;
  return {
    training, base, subset, groups: groupsOf(base, subset), opts, plan: key.plan as TwoLevelPlan, backend, checkpoint,
    signal: control.signal, report, d: training.cols, scratch: blockScratch(),
  };
}

/**
 * Two-level k-means over `base` (or its rows `subset`, ascending), checkpointed in
 * `checkpointDir`: every stage of the plan in order, in this process. What each stage leaves in
 * the folder is what the next reads, as when the stages run as separate tasks (runTwoLevelStage),
 * so both give the same codebook to the bit.
 */
export async function twoLevelKMeans(base: RowSource, subset: Uint32Array | null, opts: TwoLevelOptions, backend: ComputeBackend,
                                     checkpointDir: string, control: TwoLevelControl = {}): Promise<TwoLevelResult> {
  const job = await openJob(base, subset, opts, backend, checkpointDir, control, 'open');
  const { checkpoint } = job;
  const resumedAt = checkpoint.resumed ? describeState(checkpoint.state, opts.refine) : null;
  if (!(await checkpoint.exists(COARSE_DONE))) await trainCoarse(job);
  const coarse = await checkpoint.readMatrix('coarse.npy');
  await partitionGroups(job, coarse, job.groups.map((_, g) => g));
  const cellRows = await cellRowsOf(job);
  if (!checkpoint.state.cellRows) await checkpoint.save({ ...checkpoint.state, cellRows: cellRows.total });
  // The codebook as the last finished stage left it: in memory from here on (read once: at
  // K = 500,000 it is 1.5 GB).
  let level = await finishedLevel(job, cellRows);
  if (!level) {
    await trainCells(job, cellRows, 0, coarse.rows);
    level = (await finishedLevel(job, cellRows))!;
    await checkpoint.save({ ...checkpoint.state, refined: 0, inertia: level.inertia });
  }
  if (level.pass < opts.refine) {
    const sums = new Float64Array(opts.k * job.d); // one K x d f64 table for every map and reduce
    for (let pass = level.pass + 1; pass <= opts.refine; pass++) {
      await mapGroups(job, level, coarse, pass, job.groups.map((_, g) => g), sums);
      level = await reduce(job, level, pass, sums);
    }
  }
  return result(job, level, coarse, resumedAt);
}

async function result(job: Job, level: Level, coarse: Matrix, resumedAt: string | null): Promise<TwoLevelResult> {
  const { fingerprint } = JSON.parse(await fs.readFile(job.checkpoint.file(COARSE_DONE), 'utf8')) as { fingerprint: string };
  return {
    centroids: level.codes,
    counts: Float64Array.from(level.counts),
    coarse: { centroids: coarse, assign: level.cells },
    inertia: level.inertia,
    fingerprint,
    plan: job.plan,
    resumedAt,
  };
}

/**
 * One task of the plan, run alone against the checkpoint folder the earlier stages filled: the
 * coarse level (it starts the folder over when it holds another build's work), the partition of
 * a part's groups, the k-means of a part's range of cells, a refinement pass's map over a part's
 * groups or its reduce. A task whose outputs are there already does nothing.
 */
export async function runTwoLevelStage(base: RowSource, subset: Uint32Array | null, opts: TwoLevelOptions, backend: ComputeBackend,
                                       checkpointDir: string, stage: TwoLevelStage, control: TwoLevelControl = {}): Promise<void> {
  const job = await openJob(base, subset, opts, backend, checkpointDir, control, stage.stage === 'coarse' ? 'open' : 'attach');
  if (stage.stage === 'coarse') {
    if (!(await job.checkpoint.exists(COARSE_DONE))) await trainCoarse(job);
    return;
  }
  // a part beyond the input files has none of them to partition or map
  if ((stage.stage === 'partition' || stage.stage === 'map') && stage.part > job.groups.length) return;
  if (!(await job.checkpoint.exists(COARSE_DONE))) throw new UserError(`${checkpointDir}: the coarse level is not done`);
  const coarse = await job.checkpoint.readMatrix('coarse.npy');
  const mine = (count: number) => Array.from({ length: count }, (_, i) => i).filter((i) => 'part' in stage && i % stage.parts === stage.part - 1);
  if (stage.stage === 'partition') return partitionGroups(job, coarse, mine(job.groups.length));
  const cellRows = await cellRowsOf(job);
  if (stage.stage === 'cells') {
    const { lo, hi } = cellRange(coarse.rows, stage.part, stage.parts);
    if (!(await finishedLevel(job, cellRows, false))) await trainCells(job, cellRows, lo, hi);
    return;
  }
  const done = (await finishedLevel(job, cellRows, false))?.pass ?? -1;
  if (done >= stage.pass) return;
  if (done !== stage.pass - 1) {
    throw new UserError(`${checkpointDir}: refinement pass ${stage.pass} needs ${stage.pass === 1 ? "every cell's codes" : `pass ${stage.pass - 1}`}, not all done`);
  }
  const level = (await finishedLevel(job, cellRows))!;
  const sums = new Float64Array(opts.k * job.d);
  if (stage.stage === 'map') return mapGroups(job, level, coarse, stage.pass, mine(job.groups.length), sums);
  await reduce(job, level, stage.pass, sums);
}

/** Cells [lo, hi) of part `part` of `parts`: contiguous ranges of near-equal counts. */
export function cellRange(cells: number, part: number, parts: number): { lo: number; hi: number } {
  return { lo: Math.floor(((part - 1) * cells) / parts), hi: Math.floor((part * cells) / parts) };
}

/** How far the plan in a checkpoint folder has got, from the files each stage leaves: what a
 *  launcher needs to submit only the missing tasks. `groups`: partitions done; `cells`: cells
 *  whose codes are there (null until every partition is); `level`: refinement passes done (-1
 *  before every cell's codes are there); `maps`: the next pass's maps done, per group. */
export interface TwoLevelDone {
  coarse: boolean;
  groups: boolean[];
  cells: boolean[] | null;
  level: number;
  maps: boolean[];
}

export async function twoLevelDone(base: RowSource, subset: Uint32Array | null, opts: TwoLevelOptions, device: string, checkpointDir: string): Promise<TwoLevelDone> {
  const key = twoLevelKey(base, subset, opts, device);
  const groups = groupsOf(base, subset);
  const none: TwoLevelDone = { coarse: false, groups: groups.map(() => false), cells: null, level: -1, maps: groups.map(() => false) };
  if ((await Checkpoint.savedKey(checkpointDir)) !== JSON.stringify(key)) return none;
  // only the device is read off the backend until a stage runs
  const job = await openJob(base, subset, opts, { device } as ComputeBackend, checkpointDir, {}, 'attach');
  const exists = (name: string) => job.checkpoint.exists(name);
  const done: TwoLevelDone = { ...none, coarse: await exists(COARSE_DONE) };
  done.groups = await Promise.all(groups.map((_, g) => exists(groupMarker(g))));
  if (!done.coarse || done.groups.includes(false)) return done;
  const cellRows = await cellRowsOf(job);
  done.level = (await finishedLevel(job, cellRows, false))?.pass ?? -1;
  const shares = proportionalShares(cellRows.total, opts.k);
  done.cells = done.level >= 0 ? cellRows.total.map(() => true) : await Promise.all(cellRows.total.map((_, c) => (shares[c] === 0 ? true : exists(fineFile(c)))));
  if (done.level >= 0 && done.level < opts.refine) done.maps = await Promise.all(groups.map((_, g) => exists(partialMarker(done.level + 1, g))));
  return done;
}

function validate(opts: TwoLevelOptions): void {
  const { k, coarse, refine, nprobe } = opts;
  if (!Number.isInteger(coarse) || coarse < 1) throw new UserError(`coarse cells must be a whole number >= 1, got ${coarse}`);
  if (coarse > k) throw new UserError(`coarse cells (${coarse}) cannot outnumber the codes (k=${k})`, { cli: `use --coarse ${k} or less`, vscode: 'leave the coarse cells at their default' });
  if (!Number.isInteger(refine) || refine < 0) throw new UserError(`refinement passes must be a whole number >= 0, got ${refine}`);
  if (!Number.isInteger(nprobe) || nprobe < 1 || nprobe > coarse) throw new UserError(`nprobe must be a whole number from 1 to the coarse cells (${coarse}), got ${nprobe}`);
}

function describeState(s: State, refine: number): string {
  if (s.refined !== undefined) return s.refined < refine ? `refinement pass ${s.refined + 1}` : 'the end (all phases done)';
  if (s.cellRows) return 'per-cell k-means';
  if (s.coarseDone) return 'partition';
  return 'coarse k-means';
}

// ---------------------------------------------------------------------------------------------
// The files each stage leaves in the checkpoint folder. A stage's marker is written last, after
// the files it vouches for are on disk.

const COARSE_DONE = 'coarse.json';
const pad = (n: number, width: number) => String(n).padStart(width, '0');
const groupFolder = (g: number) => `cells/group-${pad(g, 5)}`;
const groupMarker = (g: number) => `cells/group-${pad(g, 5)}.json`;
const cellFile = (g: number, cell: number) => `${groupFolder(g)}/cell-${pad(cell, 6)}.f16`;
const fineFile = (cell: number) => `fine/cell-${pad(cell, 6)}.npy`;
const fineStatsFile = (cell: number) => `fine/cell-${pad(cell, 6)}.json`;
const partialFile = (pass: number, g: number, what: 'ids.npy' | 'counts.npy' | 'sums.f64' | 'json') => `refine-${pass}/group-${pad(g, 5)}.${what}`;
const partialMarker = (pass: number, g: number) => partialFile(pass, g, 'json');
const levelMarker = (pass: number) => `level-${pass}.json`;

// ---------------------------------------------------------------------------------------------
// 1. Coarse level

async function trainCoarse(job: Job): Promise<void> {
  const { training, base, subset, opts, plan, backend, checkpoint, signal, report } = job;
  // The sample is gathered in a pass over ALL of the input, which also fingerprints it.
  const positions = sampleIndices(training.rows, plan.coarseSample, seededRandom(derivedSeed(opts.seed, 'coarse-sample')));
  const rows = subset ? positions.map((p) => subset[p]) : positions;
  const hash = createHash('sha256');
  const sample = await gatherRows(base, rows, plan.blockRows, signal, ({ start, matrix }) => {
    hash.update(new Uint8Array(matrix.data.buffer, matrix.data.byteOffset, matrix.data.byteLength));
    report('sample', start + matrix.rows, base.rows, undefined, `${plan.coarseSample} vectors for the coarse level`);
  });
  const result = await kmeans(sample, { k: opts.coarse, iterations: opts.iterations, lambda: opts.lambda, seed: derivedSeed(opts.seed, 'coarse'), tolerance: opts.tolerance }, backend, {
    signal,
    onProgress: (p) => p.phase === 'init'
      ? report('coarse', 0, opts.iterations, undefined, `${opts.coarse} cells, k-means++ round ${p.iteration}/${p.iterations}`)
      : report('coarse', p.iteration, p.iterations, undefined, `${opts.coarse} cells`),
  });
  const fingerprint = hash.digest('hex').slice(0, 16);
  await checkpoint.writeMatrix('coarse.npy', result.centroids);
  await writeFileAtomic(checkpoint.file(COARSE_DONE), JSON.stringify({ fingerprint }));
  await checkpoint.save({ fingerprint, coarseDone: true });
}

// ---------------------------------------------------------------------------------------------
// 2. Partition: every vector of a group to its cell's f16 scratch file of that group, in one pass

async function partitionGroups(job: Job, coarse: Matrix, groups: number[]): Promise<void> {
  const todo = [];
  for (const g of groups) if (!(await job.checkpoint.exists(groupMarker(g)))) todo.push(g);
  if (todo.length === 0) return;
  const handle = await job.backend.loadCodebook(coarse);
  // one set of buffers for every group
  const buffers = { grouped: new Float32Array(job.plan.blockRows * job.d), half: new Uint16Array(job.plan.blockRows * job.d) };
  try {
    for (const g of todo) await partitionGroup(job, handle, coarse.rows, g, buffers);
  } finally {
    handle.dispose();
  }
}

async function partitionGroup(job: Job, handle: CodebookHandle, cells: number, g: number, buffers: { grouped: Float32Array; half: Uint16Array }): Promise<void> {
  const { training, plan, backend, checkpoint, signal, report, d } = job;
  const group = job.groups[g]!;
  await checkpoint.remove(groupFolder(g)); // an interrupted pass starts over
  await fs.mkdir(checkpoint.file(groupFolder(g)), { recursive: true });
  const cellRows = new Array<number>(cells).fill(0);
  for await (const { start, matrix } of group.source.blocks(plan.blockRows, signal)) {
    const { ids } = await backend.nearest(handle, matrix, { signal });
    const order = countingSort(ids, cells);
    const grouped = buffers.grouped.subarray(0, matrix.rows * d);
    order.forEach((row, i) => grouped.set(matrix.data.subarray(row * d, (row + 1) * d), i * d));
    const bad = grouped.findIndex((v) => !(Math.abs(v) <= F16_MAX));
    if (bad >= 0) {
      throw new UserError(`vector ${group.start + start + order[Math.floor(bad / d)]} holds ${grouped[bad]}, beyond the f16 range (±${F16_MAX}) of the two-level scratch files`, {
        cli: 'scale the embeddings down, or use --method flat',
        vscode: 'set unicode2.method to flat',
      });
    }
    const half = f32ToF16(grouped, buffers.half.subarray(0, grouped.length));
    for (let i = 0; i < order.length;) {
      const cell = ids[order[i]];
      let j = i;
      while (j < order.length && ids[order[j]] === cell) j++;
      await fs.appendFile(checkpoint.file(cellFile(g, cell)), new Uint8Array(half.buffer, half.byteOffset + i * d * 2, (j - i) * d * 2));
      cellRows[cell] += j - i;
      i = j;
    }
    report('partition', group.start + start + matrix.rows, training.rows);
  }
  // On disk before the marker says the group is complete: a reboot must not leave a short cell
  // file that the marker vouches for.
  for (let cell = 0; cell < cells; cell++) {
    if (cellRows[cell] === 0) continue;
    const file = await fs.open(checkpoint.file(cellFile(g, cell)), 'r+');
    await file.datasync().finally(() => file.close());
  }
  await writeFileAtomic(checkpoint.file(groupMarker(g)), JSON.stringify({ cellRows }));
}

/** Row indices ordered by id (stable: ascending row within an id). */
function countingSort(ids: Int32Array, k: number): Int32Array {
  const start = new Int32Array(k + 1);
  for (let i = 0; i < ids.length; i++) start[ids[i] + 1]++;
  for (let c = 0; c < k; c++) start[c + 1] += start[c];
  const order = new Int32Array(ids.length);
  for (let i = 0; i < ids.length; i++) order[start[ids[i]]++] = i;
  return order;
}

/** Points per cell in each group and in all (every group's partition must be done). */
interface CellRows {
  byGroup: number[][];
  total: number[];
}

async function cellRowsOf(job: Job): Promise<CellRows> {
  const byGroup: number[][] = [];
  for (let g = 0; g < job.groups.length; g++) {
    const text = await fs.readFile(job.checkpoint.file(groupMarker(g)), 'utf8').catch(() => null);
    if (text === null) throw new UserError(`${job.checkpoint.dir}: the partition of input file ${g + 1} is not done`);
    byGroup.push((JSON.parse(text) as { cellRows: number[] }).cellRows);
  }
  const total = byGroup[0]!.map((_, c) => byGroup.reduce((n, rows) => n + rows[c]!, 0));
  return { byGroup, total };
}

/** A group's scratch files in cell order: its training vectors, grouped by cell. */
function groupScratch(job: Job, cellRows: CellRows, g: number): RowSource {
  const files: RawRows[] = cellRows.byGroup[g]!.flatMap((rows, cell) =>
    rows > 0 ? [{ file: job.checkpoint.file(cellFile(g, cell)), rows, dtype: 'float16' as const, dataOffset: 0 }] : []);
  return rawRowsSource(files, job.d, job.scratch);
}

// ---------------------------------------------------------------------------------------------
// 3. Per-cell k-means, each cell's share of K, over the cell's rows of every group in group order

async function trainCells(job: Job, cellRows: CellRows, lo: number, hi: number): Promise<void> {
  const { opts, plan, backend, checkpoint, signal, report } = job;
  const shares = proportionalShares(cellRows.total, opts.k);
  await fs.mkdir(checkpoint.file('fine'), { recursive: true });
  // ETA by distance work (points x codes), the cost of a cell's k-means.
  const work = cellRows.total.map((n, c) => (c >= lo && c < hi ? Math.min(n, shares[c] * POINTS_PER_CENTROID, plan.cellSample) * shares[c] : 0));
  const totalWork = work.reduce((a, b) => a + b, 0);
  let doneWork = 0;
  for (let cell = lo; cell < hi; cell++) {
    throwIfCancelled(signal);
    if (shares[cell] > 0 && !(await checkpoint.exists(fineFile(cell)))) {
      const points = await readCell(job, cellRows, cell, Math.min(shares[cell] * POINTS_PER_CENTROID, plan.cellSample));
      const result = await kmeans(points, {
        k: shares[cell], iterations: opts.iterations, lambda: opts.lambda, seed: derivedSeed(opts.seed, 'cell', cell), tolerance: opts.tolerance, initRounds: CELL_INIT_ROUNDS,
      }, backend, { signal });
      // its counts and inertia first: a cell is done once its centroids file exists
      await writeFileAtomic(checkpoint.file(fineStatsFile(cell)), JSON.stringify({ counts: Array.from(result.counts), inertia: result.inertia }));
      await checkpoint.writeMatrix(fineFile(cell), result.centroids);
    }
    doneWork += work[cell];
    report('cells', cell + 1 - lo, hi - lo, [doneWork, totalWork], `${shares[cell]} codes from ${cellRows.total[cell]} vectors`);
  }
}

/** Cell `cell`'s points as f32: all of them, or a seeded sample of `cap` when there are more. */
async function readCell(job: Job, cellRows: CellRows, cell: number, cap: number): Promise<Matrix> {
  const rows = cellRows.total[cell]!;
  const files: RawRows[] = cellRows.byGroup.flatMap((byCell, g) =>
    byCell[cell]! > 0 ? [{ file: job.checkpoint.file(cellFile(g, cell)), rows: byCell[cell]!, dtype: 'float16' as const, dataOffset: 0 }] : []);
  const source = rawRowsSource(files, job.d);
  const picked = rows <= cap ? Uint32Array.from({ length: rows }, (_, i) => i) : sampleIndices(rows, cap, seededRandom(derivedSeed(job.opts.seed, 'cell-sample', cell)));
  // Small read blocks: the plan gives the training sample the whole budget, so the read buffers
  // beside it must stay a small extra (2,048 rows of d = 768: 9 MB), not another budget's worth.
  return gatherRows(source, picked, Math.min(job.plan.blockRows, CELL_READ_ROWS), job.signal);
}

/** The codes after a stage: grouped by cell (`cells` = each code's cell, cell 0's first), with
 *  the counts and inertia of the assignment they were computed from; `pass` refinement passes done. */
interface Level {
  codes: Matrix;
  counts: Int32Array;
  cells: Int32Array;
  inertia: number;
  pass: number;
}

/** The last level the folder holds, read (null before every cell's codes are there); with
 *  `read` false, only which one (its codes left empty). */
async function finishedLevel(job: Job, cellRows: CellRows, read = true): Promise<Level | null> {
  const { checkpoint, opts } = job;
  for (let pass = opts.refine; pass >= 1; pass--) {
    if (!(await checkpoint.exists(levelMarker(pass)))) continue;
    const { inertia } = JSON.parse(await fs.readFile(checkpoint.file(levelMarker(pass)), 'utf8')) as { inertia: number };
    if (!read) return { codes: { rows: 0, cols: 0, data: new Float32Array(0) }, counts: new Int32Array(0), cells: new Int32Array(0), inertia, pass };
    return { codes: await checkpoint.readMatrix(`codes-${pass}.npy`), counts: await checkpoint.readInts(`counts-${pass}.npy`), cells: await checkpoint.readInts('code-cells.npy'), inertia, pass };
  }
  const shares = proportionalShares(cellRows.total, opts.k);
  for (let cell = 0; cell < shares.length; cell++) if (shares[cell] > 0 && !(await checkpoint.exists(fineFile(cell)))) return null;
  return read ? assembleCells(job, shares) : { codes: { rows: 0, cols: 0, data: new Float32Array(0) }, counts: new Int32Array(0), cells: new Int32Array(0), inertia: 0, pass: 0 };
}

/** Level 0: the cells' codes, cell 0's first. */
async function assembleCells(job: Job, shares: Int32Array): Promise<Level> {
  const { opts, checkpoint, d } = job;
  const codes = new Float32Array(opts.k * d);
  const cells = new Int32Array(opts.k);
  const counts = new Int32Array(opts.k);
  let inertia = 0;
  let at = 0;
  for (let cell = 0; cell < shares.length; cell++) {
    if (shares[cell] === 0) continue;
    const fine = await checkpoint.readMatrix(fineFile(cell));
    const stats = JSON.parse(await fs.readFile(checkpoint.file(fineStatsFile(cell)), 'utf8')) as { counts: number[]; inertia: number };
    codes.set(fine.data, at * d);
    counts.set(stats.counts, at);
    inertia += stats.inertia;
    cells.fill(cell, at, at + shares[cell]);
    at += shares[cell];
  }
  return { codes: { rows: opts.k, cols: d, data: codes }, counts, cells, inertia, pass: 0 };
}

// ---------------------------------------------------------------------------------------------
// 4. Refinement: passes through the coarse level (IVF), each a map over the groups (every vector
//    to its nearest code among its nprobe nearest cells; the group's sums and counts per code)
//    and a reduce (the groups' sums added in group order; every code to the mean of what it won,
//    regularized by lambda)

/** Rows of partial sums read at a time by the reduce. */
const REDUCE_ROWS = 1024;

/** Maps `groups` of refinement pass `pass` (from 1) over `level`; `sums` is a zeroed K x d table
 *  and is left zeroed. */
async function mapGroups(job: Job, level: Level, coarse: Matrix, pass: number, groups: number[], sums: Float64Array): Promise<void> {
  const todo = [];
  for (const g of groups) if (!(await job.checkpoint.exists(partialMarker(pass, g)))) todo.push(g);
  if (todo.length === 0) return;
  const cellRows = await cellRowsOf(job);
  await fs.mkdir(job.checkpoint.file(`refine-${pass}`), { recursive: true });
  const index = await job.backend.loadIvf(level.codes, { centroids: coarse, assign: level.cells });
  try {
    for (const g of todo) await mapGroup(job, index, groupScratch(job, cellRows, g), pass, g, sums);
  } finally {
    index.dispose();
  }
}

/** Streams a group's scratch files (grouped by cell, so that the vectors searched together probe
 *  mostly the same cells) through the IVF search; writes the group's partial sums and counts of
 *  the codes it touched, in code order. */
async function mapGroup(job: Job, index: IvfHandle, scratch: RowSource, pass: number, g: number, sums: Float64Array): Promise<void> {
  const { training, opts, plan, backend, checkpoint, signal, report, d } = job;
  const counts = new Int32Array(opts.k);
  let inertia = 0;
  const start = job.groups[g]!.start;
  for await (const { start: at, matrix: block } of scratch.blocks(plan.blockRows, signal)) {
    const { ids, distances } = await backend.nearestIvf(index, block, { nprobe: opts.nprobe, signal });
    for (let i = 0; i < block.rows; i++) {
      const so = ids[i] * d, xo = i * d;
      for (let j = 0; j < d; j++) sums[so + j] += block.data[xo + j];
      counts[ids[i]]++;
      inertia += distances[i];
    }
    report('refine', (pass - 1) * training.rows + start + at + block.rows, opts.refine * training.rows, undefined, `pass ${pass}/${opts.refine}`);
  }
  const touched = Int32Array.from(counts.keys()).filter((c) => counts[c] > 0);
  // the touched rows moved to the front (ascending, so never over one still to move), written
  // as one view, then the table zeroed up to the last row ever touched
  touched.forEach((c, i) => c !== i && sums.copyWithin(i * d, c * d, (c + 1) * d));
  await checkpoint.writeInts(partialFile(pass, g, 'ids.npy'), touched);
  await checkpoint.writeInts(partialFile(pass, g, 'counts.npy'), touched.map((c) => counts[c]));
  await writeFileAtomic(checkpoint.file(partialFile(pass, g, 'sums.f64')), new Uint8Array(sums.buffer, sums.byteOffset, touched.length * d * 8));
  await writeFileAtomic(checkpoint.file(partialMarker(pass, g)), JSON.stringify({ touched: touched.length, inertia }));
  sums.fill(0, 0, ((touched.at(-1) ?? -1) + 1) * d);
}

/** Refinement pass `pass`'s reduce: the groups' partial sums added into `sums` (zeroed, left
 *  zeroed) in group order, the codes updated, the next level written; the last one's files go. */
async function reduce(job: Job, level: Level, pass: number, sums: Float64Array): Promise<Level> {
  const { opts, checkpoint, d } = job;
  const counts = new Float64Array(opts.k);
  let inertia = 0;
  const chunk = new Float64Array(REDUCE_ROWS * d);
  for (let g = 0; g < job.groups.length; g++) {
    throwIfCancelled(job.signal);
    const text = await fs.readFile(checkpoint.file(partialMarker(pass, g)), 'utf8').catch(() => null);
    if (text === null) throw new UserError(`${checkpoint.dir}: refinement pass ${pass}'s map of input file ${g + 1} is not done`);
    inertia += (JSON.parse(text) as { inertia: number }).inertia;
    const ids = await checkpoint.readInts(partialFile(pass, g, 'ids.npy'));
    const groupCounts = await checkpoint.readInts(partialFile(pass, g, 'counts.npy'));
    const file = checkpoint.file(partialFile(pass, g, 'sums.f64'));
    const { handle } = await openRegularFile(file, 'partial sums');
    try {
      for (let i = 0; i < ids.length; i += REDUCE_ROWS) {
        const n = Math.min(REDUCE_ROWS, ids.length - i);
        await readExactly(handle, new Uint8Array(chunk.buffer, 0, n * d * 8), i * d * 8, file, 'partial sums');
        for (let r = 0; r < n; r++) {
          const so = ids[i + r] * d, co = r * d;
          for (let j = 0; j < d; j++) sums[so + j] += chunk[co + j];
          counts[ids[i + r]] += groupCounts[i + r];
        }
      }
    } finally {
      await handle.close();
    }
  }
  updateCentroids(level.codes, { sums, counts }, opts.lambda, level.codes.data);
  sums.fill(0);
  const next: Level = { codes: level.codes, counts: Int32Array.from(counts), cells: level.cells, inertia, pass };
  await checkpoint.writeMatrix(`codes-${pass}.npy`, next.codes);
  await checkpoint.writeInts(`counts-${pass}.npy`, next.counts);
  await checkpoint.writeInts('code-cells.npy', next.cells);
  await writeFileAtomic(checkpoint.file(levelMarker(pass)), JSON.stringify({ inertia }));
  await checkpoint.save({ ...checkpoint.state, refined: pass, inertia });
  for (const name of pass === 1 ? ['fine'] : [`codes-${pass - 1}.npy`, `counts-${pass - 1}.npy`, levelMarker(pass - 1)]) await checkpoint.remove(name);
  await checkpoint.remove(`refine-${pass}`);
  return next;
}

// Two-level k-means: the builder at the paper's scale (500,000 codes from millions of vectors).
// Flat k-means compares every vector with every code in every iteration; at N = 2,000,000,
// K = 500,000, d = 768 one pass is 1.5 PFLOP, hours on two cores. Two levels cost about
// N x (K / K1) x d per iteration instead:
//   1. coarse: k-means with K1 cells (default round(sqrt K)) on a seeded sample of at most
//      POINTS_PER_CENTROID points per cell;
//   2. partition: one streaming pass assigns every vector to its nearest cell and appends it, as
//      f16, to that cell's scratch file;
//   3. cells: every cell gets a share of K proportional to its size (the shares sum to K exactly,
//      and no cell gets more codes than it has points), and k-means with that many codes runs on
//      the cell's own points (at most POINTS_PER_CENTROID per code, a seeded sample beyond);
//   4. refine: passes in which every vector is reassigned through the coarse level (IVF: the
//      nearest code among the codes of its nprobe nearest cells) and every code becomes the mean
//      of the vectors it won, from whichever cell they came: codes at cell borders compete.
// The counts are those of the last assignment (the vectors each code is the mean of), as the
// inertia is: like FAISS, no extra pass re-assigns after the last update.
// The utilization-regularized update (kmeans.ts, lambda) runs at both levels and in refinement.
// The codes come out grouped by cell (cell 0's first); `coarse.assign` says each code's cell.
//
// Memory: the vectors are only ever streamed in blocks (never all in f32 at once); what stays is
// the codebook (K x d f32) and, during a refinement pass, its sums (K x d f64). planTwoLevel
// sizes the blocks and the training samples to the working-set budget, or says why it cannot.
//
// Checkpoints: after every phase, every cell and every refinement pass (checkpoint.ts). Every
// random choice is drawn from derivedSeed(seed, phase, cell), so a build that was killed and run
// again with the same arguments ends with the same bytes as one that never stopped.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { ComputeBackend, Matrix } from '../../../native-gpu/backend.js';
import type { CoarseLevel } from '../codebook/codebook.js';
import { writeFileAtomic } from '../io/atomic-write.js';
import { Checkpoint } from '../io/checkpoint.js';
import { gatherRows, rawRowsSource, subsetSource, type RawRows, type RowSource } from '../embed/embedding-source.js';
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

/** What the checkpoint records as done. */
interface State {
  fingerprint?: string;
  coarseDone?: boolean;
  /** points in each cell, once the partition pass is complete */
  cellRows?: number[];
  /** refinement passes done (0 once the cells are assembled): the codes are codes-<refined>.npy,
   *  counts-<refined>.npy their last assignment's counts, code-cells.npy each code's cell */
  refined?: number;
  /** of the last assignment */
  inertia?: number;
}

/**
 * Two-level k-means over `base` (or its rows `subset`, ascending), checkpointed in
 * `checkpointDir`. The checkpoint key holds the input's identity, the options, the memory plan
 * and the backend's device: another device may round differently, so a checkpoint is only
 * resumed on the device that wrote it.
 */
export async function twoLevelKMeans(base: RowSource, subset: Uint32Array | null, opts: TwoLevelOptions, backend: ComputeBackend,
                                     checkpointDir: string, control: TwoLevelControl = {}): Promise<TwoLevelResult> {
  const training = subset ? subsetSource(base, subset) : base;
  validate(opts);
  const d = training.cols;
  const plan = planTwoLevel(training.rows, d, opts);
  const key = { job: 'two-level k-means', version: 1, input: base.identity, rows: training.rows, d, subset: subset ? training.identity : null, opts: { ...opts, memoryBytes: undefined }, plan, device: backend.device };
  const checkpoint = await Checkpoint.open<State>(checkpointDir, key, {});
  const resumedAt = checkpoint.resumed ? describeState(checkpoint.state, opts.refine) : null;
  const report = (phase: TwoLevelProgress['phase'], done: number, total: number, work?: [number, number], message?: string) =>
    control.onProgress?.({ phase, done, total, work, message });
  const { signal } = control;
  const job: Job = { training, base, subset, opts, plan, backend, checkpoint, signal, report, d };

  if (!checkpoint.state.coarseDone) await trainCoarse(job);
  const coarse = await checkpoint.readMatrix('coarse.npy');
  if (!checkpoint.state.cellRows) await partition(job, coarse);
  // The codebook as the last finished phase left it: in memory when this run made it, else
  // from the checkpoint (read once: at K = 500,000 it is 1.5 GB).
  let level = checkpoint.state.refined === undefined ? await trainCells(job) : await savedLevel(checkpoint);
  if (checkpoint.state.refined! < opts.refine) {
    const sums = new Float64Array(opts.k * d); // one K x d f64 table for every pass
    for (let pass = checkpoint.state.refined!; pass < opts.refine; pass++) level = await refinePass(job, level, coarse, pass, sums);
  }
  return {
    centroids: level.codes,
    counts: Float64Array.from(level.counts),
    coarse: { centroids: coarse, assign: level.cells },
    inertia: checkpoint.state.inertia!,
    fingerprint: checkpoint.state.fingerprint!,
    plan,
    resumedAt,
  };
}

/** The codes after a phase: grouped by cell (`cells` = each code's cell), with the counts and
 *  inertia of the assignment they were computed from. */
interface Level {
  codes: Matrix;
  counts: Int32Array;
  cells: Int32Array;
}

async function savedLevel(checkpoint: Checkpoint<State>): Promise<Level> {
  const pass = checkpoint.state.refined!;
  return {
    codes: await checkpoint.readMatrix(`codes-${pass}.npy`),
    counts: await checkpoint.readInts(`counts-${pass}.npy`),
    cells: await checkpoint.readInts('code-cells.npy'),
  };
}

interface Job {
  training: RowSource;
  base: RowSource;
  subset: Uint32Array | null;
  opts: TwoLevelOptions;
  plan: TwoLevelPlan;
  backend: ComputeBackend;
  checkpoint: Checkpoint<State>;
  signal?: AbortSignal;
  report: (phase: TwoLevelProgress['phase'], done: number, total: number, work?: [number, number], message?: string) => void;
  d: number;
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
  await checkpoint.writeMatrix('coarse.npy', result.centroids);
  await checkpoint.save({ fingerprint: hash.digest('hex').slice(0, 16), coarseDone: true });
}

// ---------------------------------------------------------------------------------------------
// 2. Partition: every vector to its cell's f16 scratch file, in one pass

const cellFile = (cell: number) => `cells/cell-${String(cell).padStart(6, '0')}.f16`;
const fineFile = (cell: number) => `fine/cell-${String(cell).padStart(6, '0')}.npy`;
const fineStatsFile = (cell: number) => `fine/cell-${String(cell).padStart(6, '0')}.json`;

async function partition(job: Job, coarse: Matrix): Promise<void> {
  const { training, plan, backend, checkpoint, signal, report, d } = job;
  const cells = coarse.rows;
  await checkpoint.remove('cells'); // an interrupted pass starts over
  await fs.mkdir(checkpoint.file('cells'), { recursive: true });
  const cellRows = new Array<number>(cells).fill(0);
  const handle = await backend.loadCodebook(coarse);
  const groupedBuffer = new Float32Array(plan.blockRows * d);
  const halfBuffer = new Uint16Array(plan.blockRows * d);
  try {
    for await (const { start, matrix } of training.blocks(plan.blockRows, signal)) {
      const { ids } = await backend.nearest(handle, matrix, { signal });
      const order = countingSort(ids, cells);
      const grouped = groupedBuffer.subarray(0, matrix.rows * d);
      order.forEach((row, i) => grouped.set(matrix.data.subarray(row * d, (row + 1) * d), i * d));
      const bad = grouped.findIndex((v) => !(Math.abs(v) <= F16_MAX));
      if (bad >= 0) {
        throw new UserError(`vector ${start + order[Math.floor(bad / d)]} holds ${grouped[bad]}, beyond the f16 range (±${F16_MAX}) of the two-level scratch files`, {
          cli: 'scale the embeddings down, or use --method flat',
          vscode: 'set unicode2.method to flat',
        });
      }
      const half = f32ToF16(grouped, halfBuffer.subarray(0, grouped.length));
      for (let i = 0; i < order.length;) {
        const cell = ids[order[i]];
        let j = i;
        while (j < order.length && ids[order[j]] === cell) j++;
        await fs.appendFile(checkpoint.file(cellFile(cell)), new Uint8Array(half.buffer, half.byteOffset + i * d * 2, (j - i) * d * 2));
        cellRows[cell] += j - i;
        i = j;
      }
      report('partition', start + matrix.rows, training.rows);
    }
  } finally {
    handle.dispose();
  }
  // On disk before the state says the pass is complete: a reboot must not leave a short cell file
  // that the checkpoint vouches for.
  for (let cell = 0; cell < cells; cell++) {
    if (cellRows[cell] === 0) continue;
    const file = await fs.open(checkpoint.file(cellFile(cell)), 'r+');
    await file.datasync().finally(() => file.close());
  }
  await checkpoint.save({ ...checkpoint.state, cellRows });
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

/** The scratch files in cell order: every training vector once, grouped by cell. */
function scratchSource(job: Job): RowSource {
  const files: RawRows[] = job.checkpoint.state.cellRows!.flatMap((rows, cell) =>
    rows > 0 ? [{ file: job.checkpoint.file(cellFile(cell)), rows, dtype: 'float16' as const, dataOffset: 0 }] : []);
  return rawRowsSource(files, job.d);
}

// ---------------------------------------------------------------------------------------------
// 3. Per-cell k-means, each cell's share of K

async function trainCells(job: Job): Promise<Level> {
  const { opts, plan, backend, checkpoint, signal, report, d } = job;
  const cellRows = checkpoint.state.cellRows!;
  const shares = proportionalShares(cellRows, opts.k);
  await fs.mkdir(checkpoint.file('fine'), { recursive: true });
  // ETA by distance work (points x codes), the cost of a cell's k-means.
  const work = cellRows.map((n, c) => Math.min(n, shares[c] * POINTS_PER_CENTROID, plan.cellSample) * shares[c]);
  const totalWork = work.reduce((a, b) => a + b, 0);
  let doneWork = 0;
  for (let cell = 0; cell < cellRows.length; cell++) {
    throwIfCancelled(signal);
    if (shares[cell] > 0 && !(await checkpoint.exists(fineFile(cell)))) {
      const points = await readCell(job, cell, Math.min(shares[cell] * POINTS_PER_CENTROID, plan.cellSample));
      const result = await kmeans(points, {
        k: shares[cell], iterations: opts.iterations, lambda: opts.lambda, seed: derivedSeed(opts.seed, 'cell', cell), tolerance: opts.tolerance, initRounds: CELL_INIT_ROUNDS,
      }, backend, { signal });
      // its counts and inertia first: a cell is done once its centroids file exists
      await writeFileAtomic(checkpoint.file(fineStatsFile(cell)), JSON.stringify({ counts: Array.from(result.counts), inertia: result.inertia }));
      await checkpoint.writeMatrix(fineFile(cell), result.centroids);
    }
    doneWork += work[cell];
    report('cells', cell + 1, cellRows.length, [doneWork, totalWork], `${shares[cell]} codes from ${cellRows[cell]} vectors`);
  }

  // Assemble: codes grouped by cell, cell 0's first.
  const codes = new Float32Array(opts.k * d);
  const cells = new Int32Array(opts.k);
  const counts = new Int32Array(opts.k);
  let inertia = 0;
  let at = 0;
  for (let cell = 0; cell < cellRows.length; cell++) {
    if (shares[cell] === 0) continue;
    const fine = await checkpoint.readMatrix(fineFile(cell));
    const stats = JSON.parse(await fs.readFile(checkpoint.file(fineStatsFile(cell)), 'utf8')) as { counts: number[]; inertia: number };
    codes.set(fine.data, at * d);
    counts.set(stats.counts, at);
    inertia += stats.inertia;
    cells.fill(cell, at, at + shares[cell]);
    at += shares[cell];
  }
  const level = { codes: { rows: opts.k, cols: d, data: codes }, counts, cells };
  await checkpoint.writeMatrix('codes-0.npy', level.codes);
  await checkpoint.writeInts('counts-0.npy', counts);
  await checkpoint.writeInts('code-cells.npy', cells);
  await checkpoint.save({ ...checkpoint.state, refined: 0, inertia });
  await checkpoint.remove('fine');
  return level;
}

/** Cell `cell`'s points as f32: all of them, or a seeded sample of `cap` when there are more. */
async function readCell(job: Job, cell: number, cap: number): Promise<Matrix> {
  const rows = job.checkpoint.state.cellRows![cell];
  const source = rawRowsSource([{ file: job.checkpoint.file(cellFile(cell)), rows, dtype: 'float16', dataOffset: 0 }], job.d);
  const picked = rows <= cap ? Uint32Array.from({ length: rows }, (_, i) => i) : sampleIndices(rows, cap, seededRandom(derivedSeed(job.opts.seed, 'cell-sample', cell)));
  // Small read blocks: the plan gives the training sample the whole budget, so the read buffers
  // beside it must stay a small extra (2,048 rows of d = 768: 9 MB), not another budget's worth.
  return gatherRows(source, picked, Math.min(job.plan.blockRows, CELL_READ_ROWS), job.signal);
}

// ---------------------------------------------------------------------------------------------
// 4. Refinement: passes through the coarse level (IVF)

/** One refinement pass: every vector to its nearest code among its nprobe nearest cells, then
 *  every code to the mean of what it won (regularized by lambda). Updates in place. */
async function refinePass(job: Job, level: Level, coarse: Matrix, pass: number, sums: Float64Array): Promise<Level> {
  const { opts, checkpoint, d } = job;
  const { codes, cells } = level;
  sums.fill(0);
  const counts = new Float64Array(opts.k);
  let inertia = 0;
  await ivfPass(job, codes, { centroids: coarse, assign: cells }, pass, (block, ids, distances) => {
    for (let i = 0; i < block.rows; i++) {
      const so = ids[i] * d, xo = i * d;
      for (let j = 0; j < d; j++) sums[so + j] += block.data[xo + j];
      counts[ids[i]]++;
      inertia += distances[i];
    }
  });
  updateCentroids(codes, { sums, counts }, opts.lambda, codes.data);
  const next = { codes, counts: Int32Array.from(counts), cells };
  await checkpoint.writeMatrix(`codes-${pass + 1}.npy`, codes);
  await checkpoint.writeInts(`counts-${pass + 1}.npy`, next.counts);
  await checkpoint.save({ ...checkpoint.state, refined: pass + 1, inertia });
  await checkpoint.remove(`codes-${pass}.npy`);
  await checkpoint.remove(`counts-${pass}.npy`);
  return next;
}

/** Streams the scratch files (vectors grouped by cell, so that the vectors searched together
 *  probe mostly the same cells) through an IVF search over `codes`. */
async function ivfPass(job: Job, codes: Matrix, coarse: CoarseLevel, pass: number,
                       onBlock: (block: Matrix, ids: Int32Array, distances: Float32Array) => void): Promise<void> {
  const { training, opts, plan, backend, signal, report } = job;
  const index = await backend.loadIvf(codes, coarse);
  try {
    for await (const { start, matrix } of scratchSource(job).blocks(plan.blockRows, signal)) {
      const { ids, distances } = await backend.nearestIvf(index, matrix, { nprobe: opts.nprobe, signal });
      onBlock(matrix, ids, distances);
      report('refine', pass * training.rows + start + matrix.rows, opts.refine * training.rows, undefined, `pass ${pass + 1}/${opts.refine}`);
    }
  } finally {
    index.dispose();
  }
}

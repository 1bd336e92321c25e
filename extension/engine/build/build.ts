// Builds a frozen codebook: embeddings (from images through an encoder, or precomputed .npy) ->
// optional seeded subsample -> utilization-regularized k-means, flat or two-level -> .safetensors,
// written atomically so a cancelled or failed build leaves any previous codebook at `out`
// byte-identical. A build holds the lock of its output (output-lock.ts) from start to end: a
// second build to the same output is refused instead of sharing (and deleting) the first one's
// corpus and checkpoint folders.
//
// Methods: 'flat' is k-means over all vectors in memory (kmeans.ts); 'two-level' streams the
// vectors from disk and checkpoints every phase in `<out>.checkpoint/` (twolevel.ts), so an
// interrupted build run again with the same request resumes and ends with the same codebook;
// 'auto' picks two-level when one flat pass would cost more than FLAT_MAX_WORK multiply-adds or
// the vectors would not fit the memory budget in f32.
//
// Building from precomputed embeddings: pass the encoder that produced them (e.g. 'dct') and its
// descriptor is stored, so tokenize/decode can reopen it; pass EXTERNAL_ENCODER ('external') when
// they come from elsewhere, and the codebook records `{kind: 'onnx', id: 'external'}` with no
// patch/input size: searching it works, tokenizing images then needs an explicit encoder.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { CodebookData, ComputeBackend, Matrix, NearestResult } from '../../../native-gpu/backend.js';
import type { CodebookMeta, CoarseLevel } from '../codebook/codebook.js';
import { codebookFingerprint, inMemory, writeCodebook } from '../codebook/codebook.js';
import { corpusInputFingerprint, extractCorpus } from '../embed/corpus.js';
import { embedImages, imageAtRow, requireSomeImages, type SkippedImage } from '../embed/embed.js';
import { gatherRows, matrixSource, shardSource, subsetSource, type RowSource } from '../embed/embedding-source.js';
import { ENCODER_KINDS, EXTERNAL_ENCODER, openEncoder, type Encoder, type EncoderDescriptor, type EncoderOptions } from '../embed/encoders/index.js';
import { PhaseClock } from '../core/eta.js';
import { throwIfCancelled, UserError } from '../../../common/errors.js';
import { f16ToF32, f32ToF16 } from '../../../common/half.js';
import { calibrateNprobe, nprobeLadder, CALIBRATION_SAMPLE, CALIBRATION_TARGET, type NprobeCalibration } from '../search/search.js';
import { readEmbeddings } from '../io/formats/npy.js';
import { listImages } from '../embed/image.js';
import { DEFAULTS, type BuildMethod } from '../core/defaults.js';
import { withOutputLock } from '../io/output-lock.js';
import { stepsOf, type ProgressEvent } from '../core/progress.js';
import { kmeans } from './kmeans.js';
import { derivedSeed, sampleIndices, sampleRows, seededRandom } from '../core/sampling.js';
import { codeStats } from '../codebook/stats.js';
import { defaultCoarseCells, runTwoLevelStage, twoLevelKMeans, type TwoLevelOptions, type TwoLevelProgress, type TwoLevelStage } from './twolevel.js';
import { fewVectorsWarning } from './vectors-per-code.js';
import { embedShardCorpus, shardCorpusInputs } from './shard-corpus.js';
import { isShardOperand, listShards } from '../io/shard-list.js';

export type CodebookDtype = 'f32' | 'f16';

export interface BuildRequest {
  /** a folder or file of images, or data-set shards ('shards/{00000..00099}.tar', .parquet) */
  images?: string;
  /** parquet shards: the column of image bytes (default: shards.ts's choice) */
  imageColumn?: string;
  embeddings?: string;
  encoder: string;
  /** a model's precision and hidden layer (--precision, --layer) */
  encoderOptions?: EncoderOptions;
  k: number;
  iterations?: number;
  lambda?: number;
  seed?: number;
  /** use a seeded uniform random subset of this many vectors */
  sample?: number;
  /** k-means stops early when the relative inertia change falls below this (default: kmeans') */
  tolerance?: number;
  /** default DEFAULTS.method */
  method?: BuildMethod;
  /** two-level: coarse cells (default round(sqrt k)) */
  coarse?: number;
  /** two-level: refinement passes through the coarse level (default REFINE_PASSES) */
  refine?: number;
  /** two-level: coarse cells searched per vector in refinement (default REFINE_NPROBE) */
  nprobe?: number;
  /** working-set budget in MB (default defaultMemoryMB()) */
  memoryMB?: number;
  /** how frozen and trainable are stored (default f32) */
  dtype?: CodebookDtype;
  /** corpora of images up to this many f32 bytes are embedded in memory (default 256 MiB); larger
   *  ones go through the resumable on-disk corpus beside the output */
  inMemoryCorpusBytes?: number;
  out: string;
}

export interface BuildSummary {
  k: number;
  d: number;
  method: 'flat' | 'two-level';
  /** coarse cells K1 of a two-level build, else null */
  coarse: number | null;
  /** refinement passes and the cells each vector probed in them (two-level), else null */
  refine: number | null;
  nprobe: number | null;
  /** two-level: the IVF search's calibrated nprobe, recorded in the codebook (search.ts
   *  calibrateNprobe), its recall@1 and the held-out vectors it was measured on (calibrationSplit);
   *  null for flat builds (and two-level ones too small to hold any vector out) */
  calibration: { nprobe: number; recall: number; queries: number } | null;
  iterations: number;
  inertia: number;
  /** mean squared distance of the training vectors to their nearest code (exact search, on a
   *  seeded sample of MSE_SAMPLE of them, or all when there are fewer) */
  mse: number;
  utilization: number;
  perplexity: number;
  dead: number;
  seconds: number;
  /** seconds spent in each progress phase (embed, kmeans or the two-level phases, evaluate, write) */
  phaseSeconds: Record<string, number>;
  /** peak resident memory of this process so far, MB */
  peakRssMB: number;
  device: string;
  dtype: CodebookDtype;
  out: string;
  fingerprint: string;
  /** where an interrupted two-level build picked up again, else null */
  resumedAt: string | null;
  /** images that could not be read and were left out of the corpus */
  skipped: SkippedImage[];
  /** the vectors k-means trained on (recorded in the codebook as meta.trainingVectors) */
  vectors: number;
  /** fewer than MIN_VECTORS_PER_CODE of them per code: what that means for the numbers above, else null */
  warning: string | null;
}

export interface BuildProgress extends ProgressEvent {
  phase: 'embed' | 'kmeans' | TwoLevelProgress['phase'] | 'evaluate' | 'calibrate' | 'write';
}

export interface BuildControl {
  signal?: AbortSignal;
  onProgress?: (e: BuildProgress) => void;
}

/** Corpora up to this many f32 bytes are embedded in memory; larger ones go through the resumable
 *  on-disk corpus (f16 shards) so an interrupted extraction is not redone. */
const IN_MEMORY_CORPUS_BYTES = 256 * 2 ** 20;
/** 'auto' builds two-level above this many multiply-adds per flat pass (N x K x d): ~15 s a pass
 *  on two cores at the CPU backend's ~130 GFLOP/s, five minutes for 20 iterations. */
export const FLAT_MAX_WORK = 1e12;
/** Refinement passes of a two-level build, and the coarse cells each vector probes in them.
 *  Measured on embedding-like data, 100,000 x 768 -> 25,000 (BENCHMARKS.md): one pass lowers the
 *  MSE by 0.18% at nprobe 2, 0.36% at 4, 0.47% at 8, a second pass adds a third of that again;
 *  a pass at nprobe 4 costs about a third of the per-cell k-means. */
export const REFINE_PASSES = 1;
export const REFINE_NPROBE = 4;
/** Vectors the reported MSE is measured on (seeded sample; all when fewer). */
export const MSE_SAMPLE = 20_000;
/** Rows per block when the MSE sample is taken from vectors in memory (flat builds). */
const MSE_BATCH = 4096;
/** The default working-set budget: half of the machine's RAM. */
export const DEFAULT_MEMORY_SHARE = 0.5;

export function defaultMemoryMB(): number {
  return Math.floor((os.totalmem() * DEFAULT_MEMORY_SHARE) / 2 ** 20);
}

/** Peak resident set of this process so far, in MB. */
export function peakRssMB(): number {
  return Math.round(process.resourceUsage().maxRSS / 1024);
}

/** The method 'auto' stands for, given the training vectors. */
export function chooseMethod(method: BuildMethod, rows: number, d: number, k: number, memoryBytes: number): 'flat' | 'two-level' {
  if (method !== 'auto') return method;
  return rows * k * d > FLAT_MAX_WORK || rows * d * 4 > memoryBytes ? 'two-level' : 'flat';
}

export async function buildCodebook(req: BuildRequest, backend: ComputeBackend, control: BuildControl = {}): Promise<BuildSummary> {
  validateRequest(req);
  return withOutputLock(req.out, 'build', () => build(req, backend, control));
}

/** A build's settings, defaults filled in, and what every step of it reports to. */
interface BuildJob {
  req: BuildRequest;
  iterations: number;
  lambda: number;
  seed: number;
  tolerance: number;
  dtype: CodebookDtype;
  memoryBytes: number;
  backend: ComputeBackend;
  signal: AbortSignal | undefined;
  report: (e: BuildProgress & { work?: [number, number] }) => void;
}

/** A trained codebook, flat or two-level: what the evaluation, the file and the summary take. */
interface Trained {
  method: 'flat' | 'two-level';
  centroids: Matrix;
  counts: Float64Array;
  coarse?: CoarseLevel;
  inertia: number;
  iterations: number;
  corpusFingerprint: string;
  /** the vectors it was trained on, read blockRows at a time for the MSE */
  training: RowSource;
  blockRows: number;
  /** two-level: its refinement passes and nprobe, where it resumed, and the vectors held out of
   *  training to calibrate the IVF search on (null when too few to hold any out) */
  twoLevel: { refine: number; nprobe: number; resumedAt: string | null; heldOut: Matrix | null } | null;
}

function buildJob(req: BuildRequest, backend: ComputeBackend, control: BuildControl, clock: PhaseClock): BuildJob {
  return {
    req,
    iterations: req.iterations ?? DEFAULTS.iterations,
    lambda: req.lambda ?? DEFAULTS.lambda,
    seed: req.seed ?? DEFAULTS.seed,
    tolerance: req.tolerance ?? DEFAULTS.tolerance,
    dtype: req.dtype ?? 'f32',
    memoryBytes: (req.memoryMB ?? defaultMemoryMB()) * 2 ** 20,
    backend,
    signal: control.signal,
    // The clock hears every event, listened to or not: it also times the phases for the summary.
    report: ({ work, ...e }) => {
      const etaSeconds = clock.eta(e.phase, ...(work ?? [e.done, e.total]));
      control.onProgress?.({ ...e, etaSeconds });
    },
  };
}

async function build(req: BuildRequest, backend: ComputeBackend, control: BuildControl): Promise<BuildSummary> {
  const started = performance.now();
  const clock = new PhaseClock();
  const job = buildJob(req, backend, control, clock);
  const input = req.images
    ? await embeddingsFromImages(req, backend, { signal: control.signal, onProgress: job.report })
    : await embeddingsFromFiles(req.embeddings!, req.encoder, req.encoderOptions, backend);
  const { source } = input;
  const trainingRows = req.sample !== undefined && req.sample < source.rows ? req.sample : source.rows;
  if (req.k > trainingRows) {
    throw new UserError(`k=${req.k} is larger than the number of vectors (${trainingRows})`, {
      cli: `use --k ${trainingRows} or less`,
      vscode: `set unicode2.k to ${trainingRows} or less`,
    });
  }
  const method = chooseMethod(req.method ?? DEFAULTS.method, trainingRows, source.cols, req.k, job.memoryBytes);
  const trained = method === 'flat' ? await trainFlat(job, input, trainingRows) : await trainTwoLevel(job, source);
  throwIfCancelled(control.signal);
  const { mse, calibration } = await evaluate(job, trained);

  job.report({ phase: 'write', done: 0, total: 1 });
  const fingerprint = await writeTrained(job, input.encoder, trained, calibration);
  // A two-level build's checkpoint (or one an interrupted build of another kind left) is done with.
  await fs.rm(checkpointFolder(req.out), { recursive: true, force: true });
  await input.cleanUp();
  job.report({ phase: 'write', done: 1, total: 1 });

  const stats = codeStats(trained.counts);
  return {
    k: req.k,
    d: source.cols,
    method,
    coarse: trained.coarse?.centroids.rows ?? null,
    refine: trained.twoLevel?.refine ?? null,
    nprobe: trained.twoLevel?.nprobe ?? null,
    calibration: calibration && { nprobe: calibration.nprobe, recall: calibration.recall, queries: calibration.queries },
    iterations: trained.iterations,
    inertia: trained.inertia,
    mse,
    utilization: stats.utilization,
    perplexity: stats.perplexity,
    dead: stats.dead,
    seconds: (performance.now() - started) / 1000,
    phaseSeconds: clock.durations(),
    peakRssMB: peakRssMB(),
    device: backend.device,
    dtype: job.dtype,
    out: req.out,
    fingerprint,
    resumedAt: trained.twoLevel?.resumedAt ?? null,
    skipped: input.skipped,
    vectors: trained.training.rows,
    warning: fewVectorsWarning(req.k, trained.training.rows),
  };
}

/** Flat k-means over all the vectors in memory, or over a seeded sample of trainingRows of them. */
async function trainFlat(job: BuildJob, input: Input, trainingRows: number): Promise<Trained> {
  const { req, memoryBytes, seed, iterations } = job;
  const { source } = input;
  if (source.rows * source.cols * 4 > memoryBytes) {
    throw new UserError(`flat k-means holds all ${source.rows} vectors in memory (${Math.ceil((source.rows * source.cols * 4) / 2 ** 20)} MB as f32), more than the ${Math.floor(memoryBytes / 2 ** 20)} MB budget`, {
      cli: 'use --method two-level (or auto), or raise --memory',
      vscode: 'set unicode2.method to two-level or auto',
    });
  }
  const points = await input.load();
  // Same digest as a codebook's fingerprint (sha256 of the f32 bytes, 16 hex): ties the codebook
  // to the exact data it was built from.
  const corpusFingerprint = codebookFingerprint(points);
  const training = trainingRows < points.rows ? sampleRows(points, trainingRows, seed) : points;
  const result = await kmeans(training, { k: req.k, iterations, lambda: job.lambda, seed, tolerance: job.tolerance }, job.backend, {
    signal: job.signal,
    // done/total count iterations only, so that the ETA is a rate of iterations
    onProgress: (p) =>
      job.report({
        phase: 'kmeans',
        done: p.phase === 'init' ? 0 : p.iteration,
        total: p.phase === 'init' ? iterations : p.iterations,
        message: p.phase === 'init' ? `k-means++ initialization, round ${p.iteration}/${p.iterations}` : describeIteration(p.inertia, p.used, req.k),
      }),
  });
  const { centroids, counts, inertia } = result;
  return { method: 'flat', centroids, counts, inertia, iterations: result.iterations, corpusFingerprint, training: matrixSource(training), blockRows: MSE_BATCH, twoLevel: null };
}

/** A two-level build's training rows, the rows held out of training to calibrate its IVF search
 *  on (calibrationSplit), and its k-means options. */
function twoLevelSetup(job: BuildJob, source: RowSource): { subset: Uint32Array | null; held: Uint32Array; options: TwoLevelOptions } {
  const { req, memoryBytes, seed } = job;
  // at most an eighth of the memory budget as f32
  const { subset, held } = calibrationSplit(source.rows, req.k, req.sample, seed,
    Math.min(CALIBRATION_SAMPLE, Math.floor(memoryBytes / (8 * 4 * source.cols))));
  // the training gets the budget less the held-out rows' f32 bytes
  const heldBytes = held.length * source.cols * 4;
  const coarse = req.coarse ?? defaultCoarseCells(req.k);
  const options: TwoLevelOptions = {
    k: req.k, coarse, iterations: job.iterations, lambda: job.lambda, seed, tolerance: job.tolerance, memoryBytes: memoryBytes - heldBytes,
    refine: req.refine ?? REFINE_PASSES, nprobe: req.nprobe ?? Math.min(REFINE_NPROBE, coarse),
  };
  return { subset, held, options };
}

/** Two-level k-means streaming the vectors (checkpointed beside the output), with vectors held
 *  out of training for the IVF search's calibration. */
async function trainTwoLevel(job: BuildJob, source: RowSource): Promise<Trained> {
  const { req } = job;
  const { subset, held, options } = twoLevelSetup(job, source);
  // Gathered now, in a pass of their own while little else is held (at the end, the pass's
  // blocks would pile up on the refinement's garbage), and kept within the working set.
  const heldOut = held.length > 0 ? await gatherRows(source, held, Math.min(MSE_BATCH, source.rows), job.signal) : null;
  const result = await twoLevelKMeans(source, subset, options, job.backend, checkpointFolder(req.out), { signal: job.signal, onProgress: job.report });
  return {
    method: 'two-level',
    centroids: result.centroids,
    counts: result.counts,
    coarse: result.coarse,
    inertia: result.inertia,
    iterations: job.iterations,
    corpusFingerprint: result.fingerprint,
    training: subset ? subsetSource(source, subset) : source,
    blockRows: result.plan.blockRows,
    twoLevel: { refine: options.refine, nprobe: options.nprobe, resumedAt: result.resumedAt, heldOut },
  };
}

/** A two-level build over embedding files as its plan's tasks take it (build-slurm.ts): its
 *  input, training rows and k-means options, the same in every task. Other builds are refused:
 *  their input is not files every task can read (images are embedded by the build itself). */
export async function twoLevelBuildInput(req: BuildRequest, backend: ComputeBackend): Promise<{ source: RowSource; subset: Uint32Array | null; options: TwoLevelOptions }> {
  validateRequest(req);
  const remedy = { cli: 'embed the images first (unicode2 embed), then build from --embeddings with --method two-level', vscode: 'build from embeddings with unicode2.method two-level' };
  if (!req.embeddings) throw new UserError('a build runs as a plan of tasks from precomputed embeddings only', remedy);
  const { source } = await embeddingsFromFiles(req.embeddings, req.encoder, req.encoderOptions, backend);
  const job = buildJob(req, backend, {}, new PhaseClock());
  const trainingRows = req.sample !== undefined && req.sample < source.rows ? req.sample : source.rows;
  if (chooseMethod(req.method ?? DEFAULTS.method, trainingRows, source.cols, req.k, job.memoryBytes) !== 'two-level') {
    throw new UserError('a build runs as a plan of tasks with the two-level method only', remedy);
  }
  if (req.k > trainingRows) throw new UserError(`k=${req.k} is larger than the number of vectors (${trainingRows})`);
  const { subset, options } = twoLevelSetup(job, source);
  return { source, subset, options };
}

/** Runs one task of a two-level build's plan (twolevel.ts runTwoLevelStage) in the build's
 *  checkpoint folder; the plan's last task is the build itself (buildCodebook), which finds every
 *  stage done and evaluates and writes the codebook. */
export async function runBuildStage(req: BuildRequest, stage: TwoLevelStage, backend: ComputeBackend, control: BuildControl = {}): Promise<void> {
  const { source, subset, options } = await twoLevelBuildInput(req, backend);
  await runTwoLevelStage(source, subset, options, backend, checkpointFolder(req.out), stage, control);
}

/** The exact MSE on a sample of the training vectors and, two-level, the IVF search's calibrated
 *  nprobe: both against the codes and coarse centroids as they will be stored (f16 rounds). */
async function evaluate(job: BuildJob, trained: Trained): Promise<{ mse: number; calibration: NprobeCalibration | null }> {
  const { dtype, backend, signal, report } = job;
  const { centroids, coarse } = trained;
  const stored: CodebookData = dtype === 'f16' ? { rows: centroids.rows, cols: centroids.cols, half: f32ToF16(centroids.data) } : centroids;
  const mse = await sampledMse(trained.training, stored, job.seed, backend, trained.blockRows, signal, report);
  const heldOut = trained.twoLevel?.heldOut;
  if (!coarse || !heldOut) return { mse, calibration: null };
  const coarseStored: CoarseLevel = dtype === 'f16' ? { centroids: { ...coarse.centroids, data: f16ToF32(f32ToF16(coarse.centroids.data)) }, assign: coarse.assign } : coarse;
  return { mse, calibration: await calibrateBuild(heldOut, stored, coarseStored, backend, signal, report) };
}

/** Writes the codebook file, its trainable table starting as the frozen one; returns its fingerprint. */
async function writeTrained(job: BuildJob, encoder: EncoderDescriptor, trained: Trained, calibration: NprobeCalibration | null): Promise<string> {
  const { req } = job;
  const meta: CodebookMeta = {
    formatVersion: 1,
    encoder,
    k: req.k,
    d: trained.centroids.cols,
    lambda: job.lambda,
    iterations: trained.iterations,
    seed: job.seed,
    corpusFingerprint: trained.corpusFingerprint,
    atlas: ENCODER_KINDS[encoder.kind].atlas,
    createdAt: new Date().toISOString(),
    method: trained.method,
    trainingVectors: trained.training.rows,
    ...(trained.coarse && { coarse: trained.coarse.centroids.rows }),
    ...(calibration && { nprobe: calibration.nprobe, nprobeRecall: calibration.recall }),
  };
  // the same matrix is written twice (no K x d copy in memory)
  return writeCodebook(req.out, {
    frozen: trained.centroids,
    trainable: inMemory(trained.centroids),
    counts: trained.counts,
    coarse: trained.coarse,
    meta,
  }, { dtype: job.dtype });
}

/**
 * Mean squared distance of the training vectors to their nearest code by EXACT search, on a seeded
 * sample of MSE_SAMPLE of them (all when fewer), against the codebook as it will be stored
 * (`stored`: f16 rounds). The sample is searched block by block as the pass over the vectors
 * reaches it, so nothing but the codebook is held, and progress and cancel stay live at K = 500,000.
 */
async function sampledMse(training: RowSource, stored: CodebookData, seed: number, backend: ComputeBackend,
                          blockRows: number, signal: AbortSignal | undefined, report: (e: BuildProgress) => void): Promise<number> {
  const count = Math.min(MSE_SAMPLE, training.rows);
  const picked = sampleIndices(training.rows, count, seededRandom(derivedSeed(seed, 'mse')));
  const handle = await backend.loadCodebook(stored);
  try {
    const d = stored.cols;
    const rows = new Float32Array(Math.min(count, blockRows) * d);
    let total = 0;
    let next = 0;
    report({ phase: 'evaluate', done: 0, total: count, message: 'exact MSE on a sample' });
    for await (const { start, matrix } of training.blocks(blockRows, signal)) {
      let n = 0;
      for (; next < count && picked[next] < start + matrix.rows; next++, n++) {
        const r = picked[next] - start;
        rows.set(matrix.data.subarray(r * d, (r + 1) * d), n * d);
      }
      if (n === 0) continue;
      const { distances } = await backend.nearest(handle, { rows: n, cols: d, data: rows.subarray(0, n * d) }, { signal });
      for (const v of distances) total += v;
      report({ phase: 'evaluate', done: next, total: count, message: 'exact MSE on a sample' });
    }
    return total / count;
  } finally {
    handle.dispose();
  }
}

/**
 * A two-level build's training rows and the rows its IVF search is calibrated on, disjoint (seeded
 * draws): the rows --sample leaves out when there are any, else `most` rows (at most a tenth of
 * them, and never so many that fewer than K remain) held out of training. Training
 * vectors would flatter the search: each pulled its own code toward itself. Measured on
 * bench/embedding-data.ts's mixture, 20,000 x 32 -> 512 codes in 23 cells, nprobe 4: recall@1
 * 0.974 on training vectors, 0.935 on held-out ones (80,000 vectors: 0.964 and 0.948).
 * `subset`: the training rows (ascending), null for all of them.
 */
export function calibrationSplit(rows: number, k: number, sample: number | undefined, seed: number, most = CALIBRATION_SAMPLE): { subset: Uint32Array | null; held: Uint32Array } {
  const drawn = sample !== undefined && sample < rows ? sampleIndices(rows, sample, seededRandom(derivedSeed(seed, 'training-sample'))) : null;
  const left = drawn ? rows - drawn.length : Math.max(0, Math.min(most, Math.floor(rows / 10), rows - k));
  const heldPlaces = sampleIndices(drawn ? left : rows, Math.min(most, left), seededRandom(derivedSeed(seed, 'calibrate')));
  // heldPlaces index the rows outside `drawn` (with a sample) or all rows (without)
  const inDrawn = new Uint8Array(rows);
  if (drawn) for (const r of drawn) inDrawn[r] = 1;
  const outside = drawn ? Uint32Array.from({ length: left }) : null;
  if (outside) for (let r = 0, i = 0; r < rows; r++) if (!inDrawn[r]) outside[i++] = r;
  const held = outside ? heldPlaces.map((p) => outside[p]!) : heldPlaces;
  if (drawn || held.length === 0) return { subset: drawn, held };
  const isHeld = new Uint8Array(rows);
  for (const r of held) isHeld[r] = 1;
  const subset = new Uint32Array(rows - held.length);
  for (let r = 0, i = 0; r < rows; r++) if (!isHeld[r]) subset[i++] = r;
  return { subset, held };
}

/** The IVF search's calibrated nprobe on `queries`, the vectors held out of training
 *  (calibrationSplit), against the codebook and coarse level as stored. */
async function calibrateBuild(queries: Matrix, stored: CodebookData, coarse: CoarseLevel, backend: ComputeBackend,
                              signal: AbortSignal | undefined, report: (e: BuildProgress) => void): Promise<NprobeCalibration> {
  const rungs = nprobeLadder(coarse.centroids.rows).length;
  let done = 0;
  const message = `IVF nprobe for recall@1 ${CALIBRATION_TARGET} on ${queries.rows} held-out vectors`;
  report({ phase: 'calibrate', done, total: rungs, message });
  const handle = await backend.loadCodebook(stored);
  let truth: NearestResult;
  try {
    truth = await backend.nearest(handle, queries, { signal });
  } finally {
    handle.dispose();
  }
  return calibrateNprobe(stored, coarse, backend, queries, truth, {
    signal,
    onRung: (nprobe, recall) => report({ phase: 'calibrate', done: ++done, total: rungs, message: `${message}: nprobe ${nprobe}, recall@1 ${recall.toFixed(4)}` }),
  });
}

function validateRequest(req: BuildRequest): void {
  if (Boolean(req.images) === Boolean(req.embeddings)) {
    throw new UserError('give exactly one source: images or embeddings');
  }
  if (!Number.isInteger(req.k) || req.k < 1) throw new UserError(`k must be a whole number >= 1, got ${req.k}`);
  if (req.iterations !== undefined && (!Number.isInteger(req.iterations) || req.iterations < 1)) {
    throw new UserError(`iterations must be a whole number >= 1, got ${req.iterations}`);
  }
  if (req.lambda !== undefined && !(req.lambda >= 0 && Number.isFinite(req.lambda))) {
    throw new UserError(`lambda must be a finite number >= 0, got ${req.lambda}`);
  }
  if (req.sample !== undefined && (!Number.isInteger(req.sample) || req.sample < 1)) {
    throw new UserError(`sample must be a whole number >= 1, got ${req.sample}`);
  }
  if (req.method !== undefined && !['auto', 'flat', 'two-level'].includes(req.method)) {
    throw new UserError(`method must be auto, flat or two-level, got '${String(req.method)}'`);
  }
  if (req.dtype !== undefined && req.dtype !== 'f32' && req.dtype !== 'f16') throw new UserError(`dtype must be f32 or f16, got '${String(req.dtype)}'`);
  if (req.memoryMB !== undefined && !(Number.isInteger(req.memoryMB) && req.memoryMB >= 1)) {
    throw new UserError(`memory must be a whole number of MB >= 1, got ${req.memoryMB}`);
  }
  if (req.method === 'flat' && (req.coarse !== undefined || req.refine !== undefined || req.nprobe !== undefined)) {
    throw new UserError('coarse cells, refinement passes and nprobe apply to two-level builds only', {
      cli: 'drop --coarse, --refine and --nprobe, or use --method two-level',
      vscode: 'set unicode2.method to two-level or auto',
    });
  }
  if (req.images && req.encoder === EXTERNAL_ENCODER) {
    throw new UserError(`encoder '${EXTERNAL_ENCODER}' only applies to precomputed embeddings; name an encoder for images`);
  }
  if (req.imageColumn !== undefined && !(req.images && isShardOperand(req.images))) {
    throw new UserError('an image column applies to images in data-set shards (.tar, .parquet) only', { cli: 'drop --image-column', vscode: 'leave the image column empty' });
  }
}

function describeIteration(inertia: number | undefined, used: number | undefined, k: number): string | undefined {
  const parts: string[] = [];
  if (inertia !== undefined) parts.push(`inertia ${inertia.toPrecision(6)}`);
  if (used !== undefined) parts.push(`${used}/${k} codes used`);
  return parts.length ? parts.join(', ') : undefined;
}

/** The build's input: streamable, loadable whole (flat k-means), and what to remove afterwards. */
interface Input {
  source: RowSource;
  load(): Promise<Matrix>;
  encoder: EncoderDescriptor;
  skipped: SkippedImage[];
  cleanUp(): Promise<void>;
}

async function embeddingsFromImages(req: BuildRequest, backend: ComputeBackend, control: BuildControl): Promise<Input> {
  const source = req.images!;
  const shards = isShardOperand(source) ? listShards([source]) : null;
  const images = shards ? [] : await listImages(source);
  if (!shards && images.length === 0) throw new UserError(`no images found in ${source}`);
  const encoder = await openEncoder(req.encoder, backend, req.encoderOptions);
  try {
    const onProgress = stepsOf('embed', control.onProgress);
    if (shards) {
      // embedded into a corpus folder as a sharded embed writes it, then streamed from there
      const dir = corpusFolder(req.out, encoder.descriptor, shardCorpusInputs(shards, req.imageColumn));
      const corpus = await embedShardCorpus(encoder, shards, dir, { imageColumn: req.imageColumn, signal: control.signal, onProgress });
      return { ...corpus, encoder: encoder.descriptor, cleanUp: () => removeCorpusFolders(req.out) };
    }
    const limit = req.inMemoryCorpusBytes ?? IN_MEMORY_CORPUS_BYTES;
    const corpus =
      (await corpusBytes(encoder, images, limit)) <= limit
        ? await embedInMemory(encoder, images, { signal: control.signal, onProgress })
        : await embedOnDisk(encoder, images, req.out, { signal: control.signal, onProgress });
    return { ...corpus, encoder: encoder.descriptor };
  } finally {
    await encoder.dispose();
  }
}

/** The f32 bytes the corpus of `images` takes, exactly where that decides whether it fits in
 *  `limit`: photos keep their shapes, so between the fewest and the most tokens per image the
 *  image headers are read (no decode) to count them. Unreadable images count nothing (they are
 *  skipped). */
async function corpusBytes(encoder: Encoder, images: string[], limit: number): Promise<number> {
  const perToken = encoder.d * 4;
  const { min, max } = encoder.tokensPerImage;
  if (images.length * min * perToken > limit || images.length * max * perToken <= limit) return images.length * max * perToken;
  let tokens = 0;
  for (const image of images) tokens += await encoder.tokensOf(image).catch(() => 0);
  return tokens * perToken;
}

type EmbedControl = { signal?: AbortSignal; onProgress: (done: number, total: number) => void };

type Corpus = Omit<Input, 'encoder'>;

async function embedInMemory(encoder: Encoder, images: string[], control: EmbedControl): Promise<Corpus> {
  const { embeddings, images: kept, grids, skipped } = await embedImages(encoder, images, control);
  requireSomeImages(kept.length, skipped);
  // An ONNX encoder can overflow to Inf/NaN; k-means would silently spread them to every code.
  const bad = embeddings.data.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) {
    const image = kept[imageAtRow(grids, Math.floor(bad / embeddings.cols))];
    throw new UserError(`encoder '${encoder.descriptor.id}' produced a non-finite value for ${image}`);
  }
  return { source: matrixSource(embeddings), load: async () => embeddings, skipped, cleanUp: async () => undefined };
}

/** Where a two-level build into `out` keeps its checkpoint and scratch files. */
export function checkpointFolder(out: string): string {
  return `${path.resolve(out)}.checkpoint`;
}

/** The corpus folder of a build: beside the output, named by the fingerprint of its input
 *  (encoder + image list), so an interrupted build resumes only over the same input, and a build
 *  over other images starts a corpus of its own instead of training on the old one's vectors. */
export function corpusFolder(out: string, encoder: EncoderDescriptor, images: readonly string[]): string {
  return `${path.resolve(out)}.corpus-${corpusInputFingerprint(encoder, images)}`;
}

/** Large corpora: the resumable shard folder beside the output, streamed from there. Once the
 *  codebook is written it goes, and with it the corpus folders of this output's earlier,
 *  interrupted builds over other input (this build holds the output's lock, so no other job is
 *  using them). */
async function embedOnDisk(encoder: Encoder, images: string[], out: string, control: EmbedControl): Promise<Corpus> {
  const dir = corpusFolder(out, encoder.descriptor, images);
  const corpus = await extractCorpus(encoder, images, dir, control);
  requireSomeImages(corpus.vectors, corpus.skipped);
  return { source: await shardSource(dir), load: () => readEmbeddings(dir), skipped: corpus.skipped, cleanUp: () => removeCorpusFolders(out) };
}

/** Removes every corpus folder of the output `out` (this build's and earlier, interrupted ones'). */
async function removeCorpusFolders(out: string): Promise<void> {
  const prefix = `${path.basename(path.resolve(out))}.corpus-`;
  const parent = path.dirname(path.resolve(out));
  for (const name of await fs.readdir(parent)) {
    if (name.startsWith(prefix)) await fs.rm(path.join(parent, name), { recursive: true, force: true });
  }
}

async function embeddingsFromFiles(source: string, encoderSpec: string, options: EncoderOptions | undefined, backend: ComputeBackend): Promise<Input> {
  const rows = await shardSource(source);
  if (rows.rows === 0) throw new UserError(`${source} holds no vectors`);
  const input = { source: rows, load: () => readEmbeddings(source), skipped: [], cleanUp: async () => undefined };
  if (encoderSpec === EXTERNAL_ENCODER) {
    return { ...input, encoder: { kind: 'onnx', id: EXTERNAL_ENCODER, patch: 0, inputSize: [0, 0], d: rows.cols, resize: 'stretch' } };
  }
  const encoder = await openEncoder(encoderSpec, backend, options);
  try {
    if (encoder.d !== rows.cols) {
      throw new UserError(`embeddings in ${source} have d=${rows.cols} but encoder '${encoder.descriptor.id}' gives d=${encoder.d}`);
    }
    return { ...input, encoder: encoder.descriptor };
  } finally {
    await encoder.dispose();
  }
}

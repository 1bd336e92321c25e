// Builds a frozen codebook: embeddings (from images through an encoder, or precomputed .npy) ->
// optional seeded subsample -> utilization-regularized k-means -> .safetensors, written atomically
// so a cancelled or failed build leaves any previous codebook at `out` byte-identical.
//
// Building from precomputed embeddings: pass the encoder that produced them (e.g. 'dct') and its
// descriptor is stored, so tokenize/decode can reopen it; pass EXTERNAL_ENCODER ('external') when
// they come from elsewhere, and the codebook records `{kind: 'onnx', id: 'external'}` with no
// patch/input size: searching it works, tokenizing images then needs an explicit encoder.
import { promises as fs } from 'node:fs';
import type { ComputeBackend, Matrix } from '../../native-gpu/backend';
import type { CodebookMeta } from './codebook';
import { codebookFingerprint, writeCodebook } from './codebook';
import { extractCorpus } from './corpus';
import { embedImages, requireSomeImages, type SkippedImage } from './embed';
import { EXTERNAL_ENCODER, openEncoder, type Encoder, type EncoderDescriptor } from './encoders/index';
import { throwIfCancelled, UserError } from '../../common/errors';
import { readEmbeddings } from './formats/npy';
import { listImages } from './image';
import { DEFAULTS } from './defaults';
import { kmeans } from './kmeans';
import { sampleRows } from './sampling';
import { codeStats } from './stats';

export interface BuildRequest {
  images?: string;
  embeddings?: string;
  encoder: string;
  k: number;
  iterations?: number;
  lambda?: number;
  seed?: number;
  /** use a seeded uniform random subset of this many vectors */
  sample?: number;
  /** k-means stops early when the relative inertia change falls below this (default: kmeans') */
  tolerance?: number;
  out: string;
}

export interface BuildSummary {
  k: number;
  d: number;
  iterations: number;
  inertia: number;
  utilization: number;
  perplexity: number;
  dead: number;
  seconds: number;
  device: string;
  out: string;
  fingerprint: string;
  /** images that could not be read and were left out of the corpus */
  skipped: SkippedImage[];
}

export interface BuildProgress {
  phase: 'embed' | 'kmeans' | 'write';
  done: number;
  total: number;
  message?: string;
}

export interface BuildControl {
  signal?: AbortSignal;
  onProgress?: (e: BuildProgress) => void;
}

/** Corpora up to this many f32 bytes are embedded in memory; larger ones go through the resumable
 *  on-disk corpus (f16 shards) so an interrupted extraction is not redone. */
const IN_MEMORY_CORPUS_BYTES = 256 * 2 ** 20;

export async function buildCodebook(req: BuildRequest, backend: ComputeBackend, control: BuildControl = {}): Promise<BuildSummary> {
  const started = performance.now();
  validateRequest(req);
  const iterations = req.iterations ?? DEFAULTS.iterations;
  const lambda = req.lambda ?? DEFAULTS.lambda;
  const seed = req.seed ?? DEFAULTS.seed;

  const { points, encoder, skipped } = req.images
    ? await embeddingsFromImages(req.images, req.encoder, req.out, backend, control)
    : await embeddingsFromFiles(req.embeddings!, req.encoder, backend);
  // Same digest as a codebook's fingerprint (sha256 of the f32 bytes, 16 hex): ties the codebook
  // to the exact data it was built from.
  const corpusFingerprint = codebookFingerprint(points);
  const training = req.sample !== undefined && req.sample < points.rows ? sampleRows(points, req.sample, seed) : points;
  if (req.k > training.rows) {
    throw new UserError(`k=${req.k} is larger than the number of vectors (${training.rows}); use k <= ${training.rows}`);
  }

  const result = await kmeans(
    training,
    { k: req.k, iterations, lambda, seed, ...(req.tolerance !== undefined && { tolerance: req.tolerance }) },
    backend,
    {
      signal: control.signal,
      onProgress: (p) =>
        control.onProgress?.({
          phase: 'kmeans',
          done: p.iteration,
          total: p.iterations,
          message: p.phase === 'init' ? 'k-means++ initialization' : describeIteration(p.inertia, p.used, req.k),
        }),
    },
  );
  throwIfCancelled(control.signal);

  control.onProgress?.({ phase: 'write', done: 0, total: 1 });
  const meta: CodebookMeta = {
    formatVersion: 1,
    encoder,
    k: req.k,
    d: points.cols,
    lambda,
    iterations: result.iterations,
    seed,
    corpusFingerprint,
    // The DCT is exactly invertible, so its codewords already are pixel patches.
    atlas: encoder.kind === 'dct' ? 'dct' : 'none',
    createdAt: new Date().toISOString(),
  };
  const fingerprint = await writeCodebook(req.out, {
    frozen: result.centroids,
    trainable: { rows: result.centroids.rows, cols: result.centroids.cols, data: result.centroids.data.slice() },
    counts: result.counts,
    meta,
  });
  control.onProgress?.({ phase: 'write', done: 1, total: 1 });

  const stats = codeStats(result.counts);
  return {
    k: req.k,
    d: points.cols,
    iterations: result.iterations,
    inertia: result.inertia,
    utilization: stats.utilization,
    perplexity: stats.perplexity,
    dead: stats.dead,
    seconds: (performance.now() - started) / 1000,
    device: backend.device,
    out: req.out,
    fingerprint,
    skipped,
  };
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
  if (req.images && req.encoder === EXTERNAL_ENCODER) {
    throw new UserError(`encoder '${EXTERNAL_ENCODER}' only applies to precomputed embeddings; name an encoder for images`);
  }
}

function describeIteration(inertia: number | undefined, used: number | undefined, k: number): string | undefined {
  const parts: string[] = [];
  if (inertia !== undefined) parts.push(`inertia ${inertia.toPrecision(6)}`);
  if (used !== undefined) parts.push(`${used}/${k} codes used`);
  return parts.length ? parts.join(', ') : undefined;
}

async function embeddingsFromImages(
  source: string,
  encoderSpec: string,
  out: string,
  backend: ComputeBackend,
  control: BuildControl,
): Promise<{ points: Matrix; encoder: EncoderDescriptor; skipped: SkippedImage[] }> {
  const images = await listImages(source);
  if (images.length === 0) throw new UserError(`no images found in ${source}`);
  const encoder = await openEncoder(encoderSpec, backend);
  try {
    const onProgress = (done: number, total: number) => control.onProgress?.({ phase: 'embed', done, total });
    const bytes = images.length * encoder.grid[0] * encoder.grid[1] * encoder.d * 4;
    const corpus =
      bytes <= IN_MEMORY_CORPUS_BYTES
        ? await embedInMemory(encoder, images, { signal: control.signal, onProgress })
        : await embedOnDisk(encoder, images, `${out}.corpus`, { signal: control.signal, onProgress });
    return { ...corpus, encoder: encoder.descriptor };
  } finally {
    await encoder.dispose();
  }
}

type EmbedControl = { signal?: AbortSignal; onProgress: (done: number, total: number) => void };

type Corpus = { points: Matrix; skipped: SkippedImage[] };

async function embedInMemory(encoder: Encoder, images: string[], control: EmbedControl): Promise<Corpus> {
  const { embeddings, images: kept, skipped } = await embedImages(encoder, images, control);
  requireSomeImages(kept.length, skipped);
  // An ONNX encoder can overflow to Inf/NaN; k-means would silently spread them to every code.
  const bad = embeddings.data.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) {
    const image = kept[Math.floor(bad / embeddings.cols / (encoder.grid[0] * encoder.grid[1]))];
    throw new UserError(`encoder '${encoder.descriptor.id}' produced a non-finite value for ${image}`);
  }
  return { points: embeddings, skipped };
}

/** Large corpora: the resumable shard folder beside the output, removed once it has been read so
 *  only an interrupted build leaves it (to resume from). */
async function embedOnDisk(encoder: Encoder, images: string[], dir: string, control: EmbedControl): Promise<Corpus> {
  const corpus = await extractCorpus(encoder, images, dir, control);
  requireSomeImages(corpus.vectors, corpus.skipped);
  const points = await readEmbeddings(dir);
  await fs.rm(dir, { recursive: true, force: true });
  return { points, skipped: corpus.skipped };
}

async function embeddingsFromFiles(
  source: string,
  encoderSpec: string,
  backend: ComputeBackend,
): Promise<{ points: Matrix; encoder: EncoderDescriptor; skipped: SkippedImage[] }> {
  const points = await readEmbeddings(source);
  if (points.rows === 0) throw new UserError(`${source} holds no vectors`);
  if (encoderSpec === EXTERNAL_ENCODER) {
    return { points, encoder: { kind: 'onnx', id: EXTERNAL_ENCODER, patch: 0, inputSize: [0, 0], d: points.cols }, skipped: [] };
  }
  const encoder = await openEncoder(encoderSpec, backend);
  try {
    if (encoder.d !== points.cols) {
      throw new UserError(`embeddings in ${source} have d=${points.cols} but encoder '${encoder.descriptor.id}' gives d=${encoder.d}`);
    }
    return { points, encoder: encoder.descriptor, skipped: [] };
  } finally {
    await encoder.dispose();
  }
}

// Builds a frozen codebook: embeddings (from images through an encoder, or precomputed .npy) ->
// optional seeded subsample -> utilization-regularized k-means -> .safetensors, written atomically
// so a cancelled or failed build leaves any previous codebook at `out` byte-identical. A build
// holds the lock of its output (output-lock.ts) from start to end: a second build to the same
// output is refused instead of sharing (and deleting) the first one's corpus folder.
//
// Building from precomputed embeddings: pass the encoder that produced them (e.g. 'dct') and its
// descriptor is stored, so tokenize/decode can reopen it; pass EXTERNAL_ENCODER ('external') when
// they come from elsewhere, and the codebook records `{kind: 'onnx', id: 'external'}` with no
// patch/input size: searching it works, tokenizing images then needs an explicit encoder.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { ComputeBackend, Matrix } from '../../native-gpu/backend';
import type { CodebookMeta } from './codebook';
import { codebookFingerprint, inMemory, writeCodebook } from './codebook';
import { corpusInputFingerprint, extractCorpus } from './corpus';
import { embedImages, requireSomeImages, type SkippedImage } from './embed';
import { EXTERNAL_ENCODER, openEncoder, type Encoder, type EncoderDescriptor } from './encoders/index';
import { throwIfCancelled, UserError } from '../../common/errors';
import { readEmbeddings } from './formats/npy';
import { listImages } from './image';
import { DEFAULTS } from './defaults';
import { withOutputLock } from './output-lock';
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
  /** corpora of images up to this many f32 bytes are embedded in memory (default 256 MiB); larger
   *  ones go through the resumable on-disk corpus beside the output */
  inMemoryCorpusBytes?: number;
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
  validateRequest(req);
  return withOutputLock(req.out, 'build', () => build(req, backend, control));
}

async function build(req: BuildRequest, backend: ComputeBackend, control: BuildControl): Promise<BuildSummary> {
  const started = performance.now();
  const iterations = req.iterations ?? DEFAULTS.iterations;
  const lambda = req.lambda ?? DEFAULTS.lambda;
  const seed = req.seed ?? DEFAULTS.seed;

  const { points, encoder, skipped } = req.images
    ? await embeddingsFromImages(req, backend, control)
    : await embeddingsFromFiles(req.embeddings!, req.encoder, backend);
  // Same digest as a codebook's fingerprint (sha256 of the f32 bytes, 16 hex): ties the codebook
  // to the exact data it was built from.
  const corpusFingerprint = codebookFingerprint(points);
  const training = req.sample !== undefined && req.sample < points.rows ? sampleRows(points, req.sample, seed) : points;
  if (req.k > training.rows) {
    throw new UserError(`k=${req.k} is larger than the number of vectors (${training.rows})`, {
      cli: `use --k ${training.rows} or less`,
      vscode: `set unicode2.k to ${training.rows} or less`,
    });
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
    trainable: inMemory(result.centroids),
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
  req: BuildRequest,
  backend: ComputeBackend,
  control: BuildControl,
): Promise<{ points: Matrix; encoder: EncoderDescriptor; skipped: SkippedImage[] }> {
  const source = req.images!;
  const images = await listImages(source);
  if (images.length === 0) throw new UserError(`no images found in ${source}`);
  const encoder = await openEncoder(req.encoder, backend);
  try {
    const onProgress = (done: number, total: number) => control.onProgress?.({ phase: 'embed', done, total });
    const bytes = images.length * encoder.grid[0] * encoder.grid[1] * encoder.d * 4;
    const corpus =
      bytes <= (req.inMemoryCorpusBytes ?? IN_MEMORY_CORPUS_BYTES)
        ? await embedInMemory(encoder, images, { signal: control.signal, onProgress })
        : await embedOnDisk(encoder, images, req.out, { signal: control.signal, onProgress });
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

/** The corpus folder of a build: beside the output, named by the fingerprint of its input
 *  (encoder + image list), so an interrupted build resumes only over the same input, and a build
 *  over other images starts a corpus of its own instead of training on the old one's vectors. */
export function corpusFolder(out: string, encoder: EncoderDescriptor, images: readonly string[]): string {
  return `${path.resolve(out)}.corpus-${corpusInputFingerprint(encoder, images)}`;
}

/** Large corpora: the resumable shard folder beside the output. Once read, it goes, and with it
 *  the corpus folders of this output's earlier, interrupted builds over other input (this build
 *  holds the output's lock, so no other job is using them). */
async function embedOnDisk(encoder: Encoder, images: string[], out: string, control: EmbedControl): Promise<Corpus> {
  const dir = corpusFolder(out, encoder.descriptor, images);
  const corpus = await extractCorpus(encoder, images, dir, control);
  requireSomeImages(corpus.vectors, corpus.skipped);
  const points = await readEmbeddings(dir);
  const prefix = `${path.basename(path.resolve(out))}.corpus-`;
  for (const name of await fs.readdir(path.dirname(dir))) {
    if (name.startsWith(prefix)) await fs.rm(path.join(path.dirname(dir), name), { recursive: true, force: true });
  }
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

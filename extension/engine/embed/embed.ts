// Images -> patch embeddings in batches, shared by tokenize, build (small corpora kept in memory)
// and the CLI's `embed`. An image that cannot be read is skipped and reported, never fatal: one
// bad file in a folder of thousands must not lose the rest of the run.
//
// Images of one batch may have different grids (the DCT encoder keeps each photo's shape): their
// rows are stacked, image after image, into one [sum of L, d] block with each image's grid beside
// it. Search treats rows alike, so one block per batch serves any mix of shapes.
import type { Matrix } from '../../../native-gpu/backend.js';
import { imageGrid, type Encoder } from './encoders/index.js';
import { inputName, type ImageInput, type RgbImage } from './image.js';
import { stackRows } from '../core/sampling.js';
import * as os from 'node:os';
import { CancelledError, UserError, throwIfCancelled } from '../../../common/errors.js';
import { EncodePool, QUEUED_PER_WORKER, type EncodeReply } from './encode-pool.js';

export interface SkippedImage {
  path: string;
  reason: string;
}

export interface EncodedBatch {
  /** the images of this batch that could be read, in input order */
  images: string[];
  /** [gridH, gridW] of each of them */
  grids: [number, number][];
  /** [sum of gridH * gridW over the images, d], image-major, raster order within an image */
  embeddings: Matrix;
  /** [images, d'] each image's pooled embedding (BatchControl.pooled) */
  pooled?: Matrix;
}

/** The first row of each image of a batch in its embeddings, and one past the last. */
export function rowOffsets(grids: readonly [number, number][]): number[] {
  const offsets = [0];
  for (const [h, w] of grids) offsets.push(offsets[offsets.length - 1]! + h * w);
  return offsets;
}

/** The grid every one of `grids` has, or null when they differ (or there are none). */
export function commonGrid(grids: readonly (readonly [number, number])[]): [number, number] | null {
  const first = grids[0];
  return first && grids.every((g) => g[0] === first[0] && g[1] === first[1]) ? [first[0], first[1]] : null;
}

/** Which of the images laid out by `rowOffsets(grids)` row `row` belongs to. */
export function imageAtRow(grids: readonly [number, number][], row: number): number {
  const offsets = rowOffsets(grids);
  return offsets.findIndex((start, i) => row >= start && row < offsets[i + 1]!);
}

export interface BatchControl {
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
  /** decode (and encode, for the DCT on the CPU) in worker threads, overlapped with onBatch,
   *  when there is more than one batch (encode-pool.ts) */
  parallel?: boolean;
  /** also each image's pooled embedding (encoders with a pooled output: encodeWithPooled) */
  pooled?: boolean;
}

/** Refuses an encoder that gives no pooled image embedding, before any image is read. */
export function checkPooledOutput(encoder: Encoder): void {
  if (encoder.encodeWithPooled) return;
  throw new UserError(`encoder '${encoder.descriptor.id}' gives no pooled image embedding (a model output named image_embeds or pooler_output)`, { cli: 'leave out --pooled, or use a CLIP or SigLIP export whose vision model outputs one', vscode: 'use a CLIP or SigLIP export whose vision model outputs a pooled embedding' });
}

/** The tokens of decoded images, and their pooled embeddings when asked for. */
async function encodeBatch(encoder: Encoder, pixels: RgbImage[], control: BatchControl): Promise<{ embeddings: Matrix; pooled?: Matrix }> {
  if (!control.pooled) return { embeddings: await encoder.encode(pixels, { signal: control.signal }) };
  const { tokens, pooled } = await encoder.encodeWithPooled!(pixels, { signal: control.signal });
  return { embeddings: tokens, pooled };
}

/** Images per encoder call: large enough to amortize a GPU/ONNX dispatch, small enough that a
 *  batch of 384x384 inputs stays well under a hundred MB. */
export const IMAGE_BATCH = 8;

/** Images as a data-set shard streams them: read batch by batch, never listed whole. */
export type ImageStream = AsyncIterable<ImageInput>;

/** What the batch runners take: files and images in memory listed up front, or a stream. */
export type Images = readonly ImageInput[] | ImageStream;

/** `images` in batches of IMAGE_BATCH, in order. */
async function* batchesOf(images: Images): AsyncGenerator<ImageInput[]> {
  let batch: ImageInput[] = [];
  for await (const image of images) {
    batch.push(image);
    if (batch.length === IMAGE_BATCH) yield batch.splice(0);
  }
  if (batch.length > 0) yield batch;
}

/** The (done, total) progress of a run over `images`: a stream's total is not known, so only a
 *  list reports. */
function progressOf(images: Images, control: BatchControl): (done: number) => void {
  const total = Array.isArray(images) ? images.length : -1;
  return (done) => {
    if (total >= 0) control.onProgress?.(Math.min(done, total), total);
  };
}

/** Encodes `images` in batches and hands each batch to `onBatch`, in order. */
export async function forEachEncodedBatch(
  encoder: Encoder,
  images: Images,
  onBatch: (batch: EncodedBatch) => Promise<void> | void,
  control: BatchControl = {},
): Promise<{ skipped: SkippedImage[] }> {
  const listed = Array.isArray(images) ? (images as readonly ImageInput[]) : null;
  if (control.pooled) checkPooledOutput(encoder);
  if (control.parallel && (!listed || listed.length > IMAGE_BATCH)) return forEachInWorkers(encoder, images, onBatch, control);
  const skipped: SkippedImage[] = [];
  const progress = progressOf(images, control);
  let done = 0;
  progress(0);
  for await (const batch of batchesOf(images)) {
    throwIfCancelled(control.signal);
    const names: string[] = [];
    const pixels: RgbImage[] = [];
    for (const image of batch) {
      try {
        pixels.push(await encoder.load(image));
        names.push(inputName(image));
      } catch (err) {
        if (err instanceof CancelledError) throw err;
        skipped.push({ path: inputName(image), reason: err instanceof Error ? err.message : String(err) });
      }
    }
    if (pixels.length > 0) {
      await onBatch({ images: names, grids: pixels.map((img) => imageGrid(img, encoder.patch)), ...(await encodeBatch(encoder, pixels, control)) });
    }
    progress((done += batch.length));
  }
  return { skipped };
}

/** forEachEncodedBatch with decoding (and the DCT) in a pool of worker threads: same batches,
 *  same results, same order; the main thread searches one batch while the workers prepare the
 *  next ones (and, for a stream, reads the batches after those). */
async function forEachInWorkers(
  encoder: Encoder,
  images: Images,
  onBatch: (batch: EncodedBatch) => Promise<void> | void,
  control: BatchControl,
): Promise<{ skipped: SkippedImage[] }> {
  const { resize, dctPatch } = encoder.offload;
  const listed = Array.isArray(images) ? (images as readonly ImageInput[]) : null;
  const batches = batchesOf(images);
  const pool = new EncodePool(Math.min(os.availableParallelism(), listed ? Math.ceil(listed.length / IMAGE_BATCH) : Infinity));
  const depth = pool.size * QUEUED_PER_WORKER;
  const replies: Promise<EncodeReply>[] = [];
  const post = async (): Promise<void> => {
    const next = await batches.next();
    if (next.done) return;
    const reply = pool.submit(replies.length, { images: next.value, resize, ...(dctPatch && { dctPatch }) });
    reply.catch(() => undefined); // awaited in order below; a failure there is what reports it
    replies.push(reply);
  };
  const skipped: SkippedImage[] = [];
  const progress = progressOf(images, control);
  let done = 0;
  progress(0);
  try {
    for (let i = 0; i < depth; i++) await post();
    for (let i = 0; i < replies.length; i++) {
      throwIfCancelled(control.signal);
      const reply = await replies[i]!;
      await post();
      skipped.push(...reply.skipped);
      if (reply.images.length > 0) {
        const grids = reply.sizes.map(([height, width]) => imageGrid({ width, height }, encoder.patch));
        const encoded = dctPatch ? { embeddings: { rows: reply.data.length / encoder.d, cols: encoder.d, data: reply.data } } : await encodeBatch(encoder, pixelsOf(reply), control);
        await onBatch({ images: reply.images, grids, ...encoded });
      }
      progress((done += reply.images.length + reply.skipped.length));
    }
  } finally {
    await batches.return(undefined);
    await pool.close();
  }
  return { skipped };
}

/** A worker's reply of pixels (no dctPatch) as the images they are, for the encoder. */
function pixelsOf(reply: EncodeReply): RgbImage[] {
  let offset = 0;
  return reply.sizes.map(([height, width]) => {
    const data = reply.data.subarray(offset, offset + 3 * width * height);
    offset += data.length;
    return { data, width, height };
  });
}

/** All embeddings of `images` in one matrix (for corpora that fit in memory), with each image's
 *  grid: image i's rows follow image i - 1's. */
export async function embedImages(
  encoder: Encoder,
  images: Images,
  control: BatchControl = {},
): Promise<{ embeddings: Matrix; images: string[]; grids: [number, number][]; skipped: SkippedImage[] }> {
  const parts: Matrix[] = [];
  const kept: string[] = [];
  const grids: [number, number][] = [];
  const { skipped } = await forEachEncodedBatch(
    encoder,
    images,
    (batch) => {
      parts.push(batch.embeddings);
      kept.push(...batch.images);
      grids.push(...batch.grids);
    },
    control,
  );
  const embeddings = parts.length === 0 ? { rows: 0, cols: encoder.d, data: new Float32Array(0) } : parts.length === 1 ? parts[0]! : stackRows(parts);
  return { embeddings, images: kept, grids, skipped };
}

/** Throws when no image at all could be read: a run with nothing to work on is the user's error,
 *  and the (first) reason is what they need to see. */
export function requireSomeImages(kept: number, skipped: SkippedImage[]): void {
  if (kept > 0) return;
  const first = skipped[0];
  if (!first) throw new UserError('no images to work on');
  const reason = first.reason.includes(first.path) ? first.reason : `${first.path}: ${first.reason}`;
  throw new UserError(skipped.length === 1 ? reason : `none of the ${skipped.length} images could be read (first: ${reason})`);
}

// Images -> patch embeddings in batches, shared by tokenize, build (small corpora kept in memory)
// and the CLI's `embed`. An image that cannot be read is skipped and reported, never fatal: one
// bad file in a folder of thousands must not lose the rest of the run.
//
// Images of one batch may have different grids (the DCT encoder keeps each photo's shape): their
// rows are stacked, image after image, into one [sum of L, d] block with each image's grid beside
// it. Search treats rows alike, so one block per batch serves any mix of shapes.
import type { Matrix } from '../../../native-gpu/backend.js';
import { imageGrid, type Encoder } from './encoders/index.js';
import type { RgbImage } from './image.js';
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
}

/** The first row of each image of a batch in its embeddings, and one past the last. */
export function rowOffsets(grids: readonly [number, number][]): number[] {
  const offsets = [0];
  for (const [h, w] of grids) offsets.push(offsets[offsets.length - 1]! + h * w);
  return offsets;
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
}

/** Images per encoder call: large enough to amortize a GPU/ONNX dispatch, small enough that a
 *  batch of 384x384 inputs stays well under a hundred MB. */
export const IMAGE_BATCH = 8;

/** Encodes `images` in batches and hands each batch to `onBatch`, in order. */
export async function forEachEncodedBatch(
  encoder: Encoder,
  images: string[],
  onBatch: (batch: EncodedBatch) => Promise<void> | void,
  control: BatchControl = {},
): Promise<{ skipped: SkippedImage[] }> {
  if (control.parallel && images.length > IMAGE_BATCH) return forEachInWorkers(encoder, images, onBatch, control);
  const skipped: SkippedImage[] = [];
  control.onProgress?.(0, images.length);
  for (let start = 0; start < images.length; start += IMAGE_BATCH) {
    throwIfCancelled(control.signal);
    const paths: string[] = [];
    const pixels: RgbImage[] = [];
    for (const path of images.slice(start, start + IMAGE_BATCH)) {
      try {
        pixels.push(await encoder.load(path));
        paths.push(path);
      } catch (err) {
        if (err instanceof CancelledError) throw err;
        skipped.push({ path, reason: err instanceof Error ? err.message : String(err) });
      }
    }
    if (pixels.length > 0) {
      const embeddings = await encoder.encode(pixels, { signal: control.signal });
      await onBatch({ images: paths, grids: pixels.map((img) => imageGrid(img, encoder.patch)), embeddings });
    }
    control.onProgress?.(Math.min(start + IMAGE_BATCH, images.length), images.length);
  }
  return { skipped };
}

/** forEachEncodedBatch with decoding (and the DCT) in a pool of worker threads: same batches,
 *  same results, same order; the main thread searches one batch while the workers prepare the
 *  next ones. */
async function forEachInWorkers(
  encoder: Encoder,
  images: string[],
  onBatch: (batch: EncodedBatch) => Promise<void> | void,
  control: BatchControl,
): Promise<{ skipped: SkippedImage[] }> {
  const { resize, dctPatch } = encoder.offload;
  const batches: string[][] = [];
  for (let start = 0; start < images.length; start += IMAGE_BATCH) batches.push(images.slice(start, start + IMAGE_BATCH));
  const pool = new EncodePool(Math.min(os.availableParallelism(), batches.length));
  const depth = pool.size * QUEUED_PER_WORKER;
  const replies: Promise<EncodeReply>[] = [];
  const post = (i: number): void => {
    const reply = pool.submit(i, { paths: batches[i]!, resize, ...(dctPatch && { dctPatch }) });
    reply.catch(() => undefined); // awaited in order below; a failure there is what reports it
    replies[i] = reply;
  };
  const skipped: SkippedImage[] = [];
  control.onProgress?.(0, images.length);
  try {
    for (let i = 0; i < Math.min(depth, batches.length); i++) post(i);
    for (let i = 0; i < batches.length; i++) {
      throwIfCancelled(control.signal);
      const reply = await replies[i]!;
      if (i + depth < batches.length) post(i + depth);
      skipped.push(...reply.skipped);
      if (reply.images.length > 0) {
        const grids = reply.sizes.map(([height, width]) => imageGrid({ width, height }, encoder.patch));
        const embeddings = dctPatch ? { rows: reply.data.length / encoder.d, cols: encoder.d, data: reply.data } : await encoder.encode(pixelsOf(reply), { signal: control.signal });
        await onBatch({ images: reply.images, grids, embeddings });
      }
      control.onProgress?.(Math.min((i + 1) * IMAGE_BATCH, images.length), images.length);
    }
  } finally {
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
  images: string[],
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

// An embedding corpus on disk: the patch embeddings of a list of images as f16 .npy shards
// (shard-00000.npy, ...: readEmbeddings reads the folder in name order) plus manifest.json, which
// records the encoder, a fingerprint of the input (encoder + sorted image list), the shards, where
// each image's rows are, and the images that were skipped. Extraction resumes: each shard is
// written before the manifest that names it (both atomically), so after a crash or cancel the
// manifest only lists complete shards, and a re-run over the same input encodes only the images
// not listed yet. A folder holds the corpus of one input: a run over other images is refused, so
// no vector of an image outside the input ever reaches the corpus.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../io/atomic-write.js';
import { forEachEncodedBatch, imageAtRow, rowOffsets, type BatchControl, type EncodedBatch, type SkippedImage } from './embed.js';
import { stackRows } from '../core/sampling.js';
import { validateEncoderDescriptor, type Encoder, type EncoderDescriptor } from './encoders/index.js';
import { onFile, readJsonFile } from '../io/files.js';
import { MAX_JSON_BYTES } from '../core/limits.js';
import { CancelledError, UserError } from '../../../common/errors.js';
import { writeNpy } from '../io/formats/npy.js';
import { f32ToF16 } from '../../../common/half.js';

export const MANIFEST = 'manifest.json';
/** Shards of about this size: big enough for few files, small enough to write often. */
export const SHARD_BYTES = 64 * 1024 * 1024;
const F16_MAX = 65504;

export interface CorpusShard {
  /** file name inside the corpus folder */
  file: string;
  rows: number;
}

export interface CorpusImage {
  /** the image path as given */
  path: string;
  shard: number;
  /** first row of this image inside its shard */
  row: number;
  rows: number;
  /** [gridH, gridW]: its rows in raster order (absent in manifests of older versions) */
  grid?: [number, number];
}

export interface CorpusManifest {
  formatVersion: 1;
  encoder: EncoderDescriptor;
  /** corpusInputFingerprint of the encoder and images this corpus is of */
  inputs: string;
  d: number;
  dtype: 'float16';
  shards: CorpusShard[];
  images: CorpusImage[];
  skipped: SkippedImage[];
}

export interface CorpusResult {
  /** vectors in the whole corpus, this run's and earlier runs' */
  vectors: number;
  d: number;
  /** full paths of all shards, in order */
  shards: string[];
  skipped: SkippedImage[];
}

function shardName(index: number): string {
  return `shard-${String(index).padStart(5, '0')}.npy`;
}

function sameEncoder(a: EncoderDescriptor, b: EncoderDescriptor): boolean {
  return a.kind === b.kind && a.id === b.id && a.d === b.d && a.patch === b.patch && a.inputSize.join('x') === b.inputSize.join('x') && a.resize === b.resize;
}

/** Fingerprint of what a corpus is of: the encoder and the sorted list of image paths (16 hex
 *  digits of a sha256). */
export function corpusInputFingerprint(encoder: EncoderDescriptor, images: readonly string[]): string {
  const hash = createHash('sha256').update(JSON.stringify(encoder));
  for (const image of [...images].sort()) hash.update('\n').update(image);
  return hash.digest('hex').slice(0, 16);
}

async function readManifest(outDir: string, encoder: Encoder, inputs: string): Promise<CorpusManifest | null> {
  const file = path.join(outDir, MANIFEST);
  if (!(await fs.stat(file).catch(() => null))) return null;
  const manifest = (await readJsonFile(file, 'corpus manifest', MAX_JSON_BYTES)) as CorpusManifest;
  const valid =
    typeof manifest === 'object' && manifest !== null && manifest.formatVersion === 1 && typeof manifest.inputs === 'string' &&
    Array.isArray(manifest.shards) && Array.isArray(manifest.images) && Array.isArray(manifest.skipped);
  if (!valid) throw new UserError(`${file}: not a corpus manifest this version understands; delete the corpus folder to start over`);
  manifest.encoder = validateEncoderDescriptor(manifest.encoder, file);
  if (!sameEncoder(manifest.encoder, encoder.descriptor)) {
    throw new UserError(`${outDir} holds a corpus made with encoder '${manifest.encoder.id}', not '${encoder.descriptor.id}'; use another folder`);
  }
  if (manifest.inputs !== inputs) {
    throw new UserError(`${outDir} holds the corpus of other images (input fingerprint ${manifest.inputs}, not ${inputs}); use another folder`);
  }
  for (const shard of manifest.shards) {
    await fs.stat(path.join(outDir, shard.file)).catch(() => {
      throw new UserError(`${outDir}: shard ${shard.file} named in ${MANIFEST} is missing; delete the corpus folder to start over`);
    });
  }
  return manifest;
}

/** Shard files a crash left behind before their manifest was written: readEmbeddings would
 *  read them as part of the corpus, so they go. */
async function removeUnlisted(outDir: string, manifest: CorpusManifest): Promise<void> {
  const listed = new Set(manifest.shards.map((s) => s.file));
  for (const name of await fs.readdir(outDir)) {
    if (/^shard-\d+\.npy$/.test(name) && !listed.has(name)) await fs.rm(path.join(outDir, name), { force: true });
  }
}

export interface CorpusControl extends BatchControl {
  /** target shard size in bytes (default SHARD_BYTES); a shard holds whole encoder batches (so it
   *  may pass the target by one batch) */
  shardBytes?: number;
}

/** The corpus folder made or resumed: its manifest (a new one, or the one a run over the same
 *  input left) and the images it does not hold yet. */
async function openCorpus(encoder: Encoder, images: string[], outDir: string): Promise<{ manifest: CorpusManifest; pending: string[] }> {
  await onFile(outDir, 'create the corpus folder', () => fs.mkdir(outDir, { recursive: true }));
  const inputs = corpusInputFingerprint(encoder.descriptor, images);
  const manifest: CorpusManifest = (await readManifest(outDir, encoder, inputs)) ?? {
    formatVersion: 1,
    encoder: encoder.descriptor,
    inputs,
    d: encoder.d,
    dtype: 'float16',
    shards: [],
    images: [],
    skipped: [],
  };
  await removeUnlisted(outDir, manifest);

  const done = new Set(manifest.images.map((i) => i.path));
  const pending = images.filter((i) => !done.has(i));
  // Images skipped earlier are tried again (the file may have been fixed); the rest stay listed.
  const retried = new Set(pending);
  manifest.skipped = manifest.skipped.filter((s) => !retried.has(s.path));
  return { manifest, pending };
}

/** The next shard, of `batches`, then the manifest naming it (and its images' rows). */
async function writeShard(outDir: string, manifest: CorpusManifest, batches: EncodedBatch[], encoder: Encoder): Promise<void> {
  const d = encoder.d;
  const index = manifest.shards.length;
  const file = shardName(index);
  const { rows, data: values } = stackRows(batches.map((b) => b.embeddings));
  const images = batches.flatMap((b) => b.images);
  const grids = batches.flatMap((b) => b.grids);
  // f16 tops out at 65504: a larger activation would be stored as Inf and poison k-means later.
  const bad = values.findIndex((v) => !(Math.abs(v) <= F16_MAX));
  if (bad >= 0) {
    const image = images[imageAtRow(grids, Math.floor(bad / d))];
    throw new UserError(`${image}: encoder '${encoder.descriptor.id}' produced a value (${values[bad]}) that f16 cannot store`);
  }
  const offsets = rowOffsets(grids);
  const entries: CorpusImage[] = images.map((image, i) => ({ path: image, shard: index, row: offsets[i]!, rows: offsets[i + 1]! - offsets[i]!, grid: grids[i]! }));
  await writeNpy(path.join(outDir, file), { dtype: 'float16', shape: [rows, d], data: f32ToF16(values) });
  manifest.shards.push({ file, rows });
  manifest.images.push(...entries);
  await writeFileAtomic(path.join(outDir, MANIFEST), JSON.stringify(manifest, null, 1));
}

export async function extractCorpus(encoder: Encoder, images: string[], outDir: string, control: CorpusControl = {}): Promise<CorpusResult> {
  const { manifest, pending } = await openCorpus(encoder, images, outDir);
  const d = encoder.d;
  const rowsPerShard = Math.max(1, Math.floor((control.shardBytes ?? SHARD_BYTES) / (2 * d)));
  let buffer: EncodedBatch[] = [];
  let buffered = 0; // rows

  const flush = async (): Promise<void> => {
    if (buffered === 0) return;
    await writeShard(outDir, manifest, buffer, encoder);
    buffer = [];
    buffered = 0;
  };

  let skipped: SkippedImage[] = [];
  const already = images.length - pending.length;
  try {
    ({ skipped } = await forEachEncodedBatch(
      encoder,
      pending,
      async (batch) => {
        buffer.push(batch);
        buffered += batch.embeddings.rows;
        if (buffered >= rowsPerShard) await flush();
      },
      { signal: control.signal, onProgress: (n, total) => control.onProgress?.(already + n, already + total) },
    ));
  } catch (err) {
    // Keep what was encoded before a cancel, so the next run resumes after it.
    if (err instanceof CancelledError) await flush();
    throw err;
  }
  await flush();
  manifest.skipped.push(...skipped);
  await writeFileAtomic(path.join(outDir, MANIFEST), JSON.stringify(manifest, null, 1));

  return {
    vectors: manifest.shards.reduce((n, s) => n + s.rows, 0),
    d,
    shards: manifest.shards.map((s) => path.join(outDir, s.file)),
    skipped: manifest.skipped,
  };
}

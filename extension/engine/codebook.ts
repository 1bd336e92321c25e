// The UniCode² codebook cascade stored as .safetensors, loadable in PyTorch with
// safetensors.torch.load_file:
//   frozen         [K, d]   F32 or F16   the indexing codebook (cluster centres in encoder space)
//   trainable      [K, d']  F32 or F16   each token's task embedding; the atlas (pixel patches in
//                                        DCT space) for this extension's atlas decoder
//   counts         [K]      I64          tokens assigned to each code when it was built (optional)
//   coarse         [K1, d]  F32 or F16   coarse level for IVF search (optional)
//   coarse_assign  [K]      I64          each code's coarse cell (optional, with coarse)
// __metadata__ maps each CodebookMeta field to its JSON encoding (safetensors metadata values must
// be strings), e.g. "k" -> "1024", "encoder" -> "{\"kind\":\"dct\",...}".
import { createHash } from 'node:crypto';
import type { Matrix } from '../../native-gpu/backend';
import { validateEncoderDescriptor, type EncoderDescriptor } from './encoders/index';
import { UserError } from '../../common/errors';
import { readSafetensors, writeSafetensors, type Tensor } from './formats/safetensors';
import { f16ToF32, f32ToF16 } from '../../common/half';

export const CODEBOOK_FORMAT_VERSION = 1;
const ATLAS_KINDS: readonly CodebookMeta['atlas'][] = ['dct', 'refined', 'none'];

export interface CodebookMeta {
  formatVersion: 1;
  encoder: EncoderDescriptor;
  k: number;
  d: number;
  lambda: number;
  iterations: number;
  seed: number;
  corpusFingerprint: string;
  /** what trainable holds: 'dct' = initialized from frozen (DCT encoder: frozen rows are pixel
   *  patches in DCT space), 'refined' = mean pixel patches fitted by refineAtlas, 'none' = not an
   *  atlas yet (ONNX encoders before refine) */
  atlas: 'dct' | 'refined' | 'none';
  createdAt: string;
  [extra: string]: unknown;
}

export interface CoarseLevel {
  /** [K1 x d] coarse centroids */
  centroids: Matrix;
  /** each code's coarse cell, in [0, K1) */
  assign: Int32Array;
}

export interface Codebook {
  frozen: Matrix;
  trainable: Matrix;
  counts: Float64Array | null;
  coarse?: CoarseLevel;
  meta: CodebookMeta;
  /** sha256 of frozen as little-endian f32 bytes (values as stored), first 16 hex digits */
  fingerprint: string;
}

export function codebookFingerprint(frozen: Matrix): string {
  const bytes = new Uint8Array(frozen.data.buffer, frozen.data.byteOffset, frozen.data.byteLength);
  return createHash('sha256').update(bytes).digest('hex').slice(0, 16);
}

function fail(file: string, problem: string): never {
  throw new UserError(`${file}: ${problem}`);
}

function checkFinite(file: string, name: string, m: Matrix): void {
  for (let i = 0; i < m.data.length; i++) {
    if (!Number.isFinite(m.data[i])) fail(file, `tensor '${name}' row ${Math.floor(i / m.cols)} holds a non-finite value (${m.data[i]})`);
  }
}

/** Consistency of a codebook in memory; the same rules guard reading and writing. */
function validate(file: string, cb: Omit<Codebook, 'fingerprint'>): void {
  const { frozen, trainable, counts, coarse, meta } = cb;
  if (meta.formatVersion !== CODEBOOK_FORMAT_VERSION) fail(file, `codebook format version ${String(meta.formatVersion)} is not supported (expected ${CODEBOOK_FORMAT_VERSION})`);
  validateEncoderDescriptor(meta.encoder, `${file}: metadata 'encoder'`);
  if (meta.encoder.d !== meta.d) fail(file, `the encoder gives d = ${meta.encoder.d} but the codebook has d = ${meta.d}`);
  if (frozen.rows !== meta.k || frozen.cols !== meta.d) {
    fail(file, `tensor 'frozen' is [${frozen.rows}, ${frozen.cols}] but the metadata says k = ${meta.k}, d = ${meta.d}`);
  }
  if (trainable.rows !== meta.k) fail(file, `tensor 'trainable' has ${trainable.rows} rows, expected k = ${meta.k}`);
  if (counts && counts.length !== meta.k) fail(file, `tensor 'counts' has ${counts.length} entries, expected k = ${meta.k}`);
  if (coarse) {
    if (coarse.centroids.cols !== meta.d) fail(file, `tensor 'coarse' has d = ${coarse.centroids.cols}, expected ${meta.d}`);
    if (coarse.assign.length !== meta.k) fail(file, `tensor 'coarse_assign' has ${coarse.assign.length} entries, expected k = ${meta.k}`);
    const k1 = coarse.centroids.rows;
    if (coarse.assign.some((c) => c < 0 || c >= k1)) fail(file, `tensor 'coarse_assign' holds a cell outside [0, ${k1})`);
  }
  checkFinite(file, 'frozen', frozen);
  checkFinite(file, 'trainable', trainable);
  if (coarse) checkFinite(file, 'coarse', coarse.centroids);
}

function floatTensor(m: Matrix, dtype: 'f32' | 'f16'): Tensor {
  return dtype === 'f16'
    ? { dtype: 'F16', shape: [m.rows, m.cols], data: f32ToF16(m.data) }
    : { dtype: 'F32', shape: [m.rows, m.cols], data: m.data };
}

/** What a matrix becomes once stored in the given dtype (f16 rounds). */
function asStored(m: Matrix, dtype: 'f32' | 'f16'): Matrix {
  return dtype === 'f16' ? { rows: m.rows, cols: m.cols, data: f16ToF32(f32ToF16(m.data)) } : m;
}

/** Writes a codebook atomically; returns its fingerprint (of frozen as stored, so f16 files
 *  give the fingerprint that reading them back gives). */
export async function writeCodebook(file: string, cb: Omit<Codebook, 'fingerprint'>, opts: { dtype?: 'f32' | 'f16' } = {}): Promise<string> {
  validate(file, cb);
  const dtype = opts.dtype ?? 'f32';
  const tensors: Record<string, Tensor> = {
    frozen: floatTensor(cb.frozen, dtype),
    trainable: floatTensor(cb.trainable, dtype),
  };
  // Counts are integers; int64 is what PyTorch code expects for counts and indices.
  if (cb.counts) tensors.counts = { dtype: 'I64', shape: [cb.meta.k], data: BigInt64Array.from(cb.counts, (c) => BigInt(Math.round(c))) };
  if (cb.coarse) {
    tensors.coarse = floatTensor(cb.coarse.centroids, dtype);
    tensors.coarse_assign = { dtype: 'I64', shape: [cb.meta.k], data: BigInt64Array.from(cb.coarse.assign, (c) => BigInt(c)) };
  }
  const metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(cb.meta)) if (value !== undefined) metadata[key] = JSON.stringify(value);
  await writeSafetensors(file, tensors, metadata);
  return codebookFingerprint(asStored(cb.frozen, dtype));
}

function matrixOf(file: string, name: string, t: Tensor | undefined): Matrix {
  if (!t) fail(file, `missing tensor '${name}'`);
  if (t.shape.length !== 2) fail(file, `tensor '${name}' must be 2-D, found shape [${t.shape.join(', ')}]`);
  if (t.dtype !== 'F32' && t.dtype !== 'F16') fail(file, `tensor '${name}' must be F32 or F16, found ${t.dtype}`);
  const data = t.dtype === 'F16' ? f16ToF32(t.data as Uint16Array) : (t.data as Float32Array);
  return { rows: t.shape[0], cols: t.shape[1], data };
}

/** Integer vectors (counts, cell ids) as numbers, from I64 as written or from other tools' I32/F64. */
function integersOf(file: string, name: string, t: Tensor): Float64Array {
  if (t.shape.length !== 1) fail(file, `tensor '${name}' must be 1-D, found shape [${t.shape.join(', ')}]`);
  if (t.dtype === 'I64') return Float64Array.from(t.data as BigInt64Array, Number);
  if (t.dtype === 'F16') fail(file, `tensor '${name}' has dtype F16, expected I64`);
  return Float64Array.from(t.data as Int32Array | Float64Array | Float32Array);
}

function parseMeta(file: string, metadata: Record<string, string>): CodebookMeta {
  if (!('formatVersion' in metadata)) fail(file, 'not a UniCode² codebook (its safetensors metadata has no formatVersion)');
  const meta: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(metadata)) {
    try {
      meta[key] = JSON.parse(value);
    } catch {
      meta[key] = value; // a plain string added by other tools
    }
  }
  for (const key of ['k', 'd'] as const) {
    if (!Number.isSafeInteger(meta[key])) fail(file, `metadata '${key}' must be an integer, found ${JSON.stringify(metadata[key])}`);
  }
  if (!ATLAS_KINDS.includes(meta.atlas as CodebookMeta['atlas'])) {
    fail(file, `metadata 'atlas' must be one of ${ATLAS_KINDS.join(', ')}, found ${JSON.stringify(metadata.atlas)}`);
  }
  return meta as CodebookMeta;
}

export async function readCodebook(file: string): Promise<Codebook> {
  const { tensors, metadata } = await readSafetensors(file);
  const meta = parseMeta(file, metadata);
  const frozen = matrixOf(file, 'frozen', tensors.frozen);
  // A codebook saved without its trainable half starts from frozen, as the cascade prescribes.
  const trainable = tensors.trainable ? matrixOf(file, 'trainable', tensors.trainable) : { ...frozen, data: frozen.data.slice() };
  const counts = tensors.counts ? integersOf(file, 'counts', tensors.counts) : null;
  let coarse: CoarseLevel | undefined;
  if (tensors.coarse || tensors.coarse_assign) {
    if (!tensors.coarse || !tensors.coarse_assign) fail(file, `tensors 'coarse' and 'coarse_assign' must come together`);
    coarse = { centroids: matrixOf(file, 'coarse', tensors.coarse), assign: Int32Array.from(integersOf(file, 'coarse_assign', tensors.coarse_assign)) };
  }
  const cb = { frozen, trainable, counts, coarse, meta };
  validate(file, cb);
  return { ...cb, fingerprint: codebookFingerprint(frozen) };
}

// The UniCode² codebook cascade stored as .safetensors, loadable in PyTorch with
// safetensors.torch.load_file:
//   frozen         [K, d]   F32 or F16   the indexing codebook (cluster centres in encoder space)
//   trainable      [K, d']  F32 or F16   each token's task embedding; the atlas (pixel patches in
//                                        DCT space) for this extension's atlas decoder
//   counts         [K]      I64          tokens assigned to each code when it was built (optional)
//   coarse         [K1, d]  F32 or F16   coarse level for IVF search (optional)
//   coarse_assign  [K]      I64          each code's coarse cell (optional, with coarse)
//   projector      [d', c]  F32 or F16   maps trainable rows to a diffusion decoder's conditioning
//                                        width c (optional; see diffusion/decoder.ts)
// __metadata__ maps each CodebookMeta field to its JSON encoding (safetensors metadata values must
// be strings), e.g. "k" -> "1024", "encoder" -> "{\"kind\":\"dct\",...}".
//
// Reading is bounded by what a job needs, not by the file: the header first, then only frozen,
// counts and the coarse level, each straight into its typed array; frozen stays f16 when stored
// as f16; trainable is read from the file the first time something asks for it (a decoder), so a
// 500,000 x 1152 f16 file (2.3 GB with both tables) is searched holding 1.15 GB.
import { createHash } from 'node:crypto';
import type { CodebookData, Matrix } from '../../../native-gpu/backend.js';
import { isHalf, valueCount } from '../../../native-gpu/tables.js';
import { validateEncoderDescriptor, type EncoderDescriptor } from '../embed/encoders/index.js';
import { UserError } from '../../../common/errors.js';
import { readSafetensorsIndex, readTensors, writeSafetensors, type SafetensorsIndex, type Tensor } from '../io/formats/safetensors.js';
import { f16ToF32, f32ToF16 } from '../../../common/half.js';

export const CODEBOOK_FORMAT_VERSION = 1;
const ATLAS_KINDS: readonly CodebookMeta['atlas'][] = ['dct', 'refined', 'none', 'trained'];

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
   *  atlas yet (ONNX encoders before refine; trainable is frozen's copy), 'trained' = task
   *  embeddings imported from a training run that started them from frozen (import-trainable.ts) */
  atlas: 'dct' | 'refined' | 'none' | 'trained';
  createdAt: string;
  /** codebooks with a coarse level: the IVF search's calibrated nprobe (engine/search/search.ts
   *  calibrateNprobe), and the recall@1 it reached on its calibration sample */
  nprobe?: number;
  nprobeRecall?: number;
  [extra: string]: unknown;
}

export interface CoarseLevel {
  /** [K1 x d] coarse centroids */
  centroids: Matrix;
  /** each code's coarse cell, in [0, K1) */
  assign: Int32Array;
}

/** Whether trainable's rows are pixel patches (DCT space) the atlas decoder can draw. */
export function hasPixelAtlas(meta: CodebookMeta): boolean {
  return meta.atlas === 'dct' || meta.atlas === 'refined';
}

/** Whether trainable row k started as frozen row k (so their distance is how far it moved): a
 *  refined atlas was fitted from images instead. */
export function trainableStartsAsFrozen(meta: CodebookMeta): boolean {
  return meta.atlas !== 'refined';
}

/** A [rows x cols] table whose values may still be in the file: `load()` reads them once (f16
 *  stays f16) and every later call returns the same arrays. */
export interface LazyTable {
  readonly rows: number;
  readonly cols: number;
  load(): Promise<CodebookData>;
}

/** A table already in memory, as a LazyTable. */
export function inMemory(table: CodebookData): LazyTable {
  return { rows: table.rows, cols: table.cols, load: async () => table };
}

export interface Codebook {
  /** the indexing codebook [K x d] as stored: an f16 file gives a HalfMatrix */
  frozen: CodebookData;
  /** [K x d'], read only when asked for (decoders, refine) */
  trainable: LazyTable;
  counts: Float64Array | null;
  coarse?: CoarseLevel;
  /** [d' x c]: trainable rows times this are a diffusion decoder's encoder_hidden_states */
  projector?: Matrix;
  meta: CodebookMeta;
  /** sha256 of frozen's bytes as stored (little-endian f32, or f16 for f16 files), first 16 hex digits */
  fingerprint: string;
}

/** Bytes hashed per update: one update call refuses 2 GiB or more. */
const HASH_PIECE = 1 << 30;

/** sha256 of a table's bytes as they are stored, first 16 hex digits. For f32 tables this is the
 *  fingerprint every earlier version computed; an f16 table is hashed as its f16 bytes (no f32
 *  copy needed). */
export function codebookFingerprint(table: CodebookData): string {
  const values = isHalf(table) ? table.half : table.data;
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const hash = createHash('sha256');
  for (let i = 0; i < bytes.length; i += HASH_PIECE) hash.update(bytes.subarray(i, i + HASH_PIECE));
  return hash.digest('hex').slice(0, 16);
}

function fail(file: string, problem: string): never {
  throw new UserError(`${file}: ${problem}`);
}

/** 32-bit words tested per call of nonFiniteHalves / nonFiniteFloats. */
const FINITE_BLOCK = 1 << 16;

/**
 * Whether any of the 32-bit words holds an all-ones exponent field (infinity or NaN), a word at a
 * time with no branch per value: with the word shifted right by one and masked to its exponent
 * field(s) (one f32, or two f16 halves), adding the field's lowest bit carries into the bit above
 * it only when the field is all ones, never across fields and never out of 31 bits (V8 keeps it
 * in int32 arithmetic; constants, not parameters, for the same reason: measured 2-3x faster).
 * ~5x faster than a per-value test: opening a codebook checks it in a small part of its reading time.
 */
function nonFiniteHalves(words: Int32Array): boolean {
  let seen = 0;
  for (let i = 0; i < words.length; i++) seen |= ((words[i] >>> 1) & 0x3e003e00) + 0x02000200;
  return (seen & 0x40004000) !== 0;
}

function nonFiniteFloats(words: Int32Array): boolean {
  let seen = 0;
  for (let i = 0; i < words.length; i++) seen |= ((words[i] >>> 1) & 0x3fc00000) + 0x00400000;
  return (seen & 0x40000000) !== 0;
}

/** Refuses a table holding NaN or an infinity, naming the first row that does. */
export function checkFinite(file: string, name: string, table: CodebookData): void {
  const half = isHalf(table), values = half ? table.half : table.data;
  const check = (from: number, to: number): void => {
    for (let i = from; i < to; i++) {
      const v = half ? f16ToF32(table.half.subarray(i, i + 1))[0] : table.data[i];
      if (!Number.isFinite(v)) fail(file, `tensor '${name}' row ${Math.floor(i / table.cols)} holds a non-finite value (${v})`);
    }
  };
  // the values from `lead` on as whole aligned 32-bit words; the (at most two) halves outside
  // them are looked at one by one, and so is a block that holds a non-finite value
  const lead = values.byteOffset % 4 === 0 ? 0 : 1, perWord = half ? 2 : 1;
  const words = new Int32Array(values.buffer, values.byteOffset + lead * values.BYTES_PER_ELEMENT, (values.byteLength - lead * values.BYTES_PER_ELEMENT) >> 2);
  const nonFinite = half ? nonFiniteHalves : nonFiniteFloats;
  check(0, lead);
  for (let w = 0; w < words.length; w += FINITE_BLOCK) {
    if (nonFinite(words.subarray(w, w + FINITE_BLOCK))) check(lead + w * perWord, Math.min(values.length, lead + (w + FINITE_BLOCK) * perWord));
  }
  check(lead + words.length * perWord, values.length);
}

/** Consistency of a codebook in memory; the same rules guard reading and writing. Trainable's
 *  values are checked when they are loaded. */
function validate(file: string, cb: Omit<Codebook, 'fingerprint'>): void {
  const { frozen, trainable, counts, coarse, projector, meta } = cb;
  if (meta.formatVersion !== CODEBOOK_FORMAT_VERSION) fail(file, `codebook format version ${String(meta.formatVersion)} is not supported (expected ${CODEBOOK_FORMAT_VERSION})`);
  validateEncoderDescriptor(meta.encoder, `${file}: metadata 'encoder'`);
  if (meta.encoder.d !== meta.d) fail(file, `the encoder gives d = ${meta.encoder.d} but the codebook has d = ${meta.d}`);
  if (frozen.rows !== meta.k || frozen.cols !== meta.d) {
    fail(file, `tensor 'frozen' is [${frozen.rows}, ${frozen.cols}] but the metadata says k = ${meta.k}, d = ${meta.d}`);
  }
  if (valueCount(frozen) !== frozen.rows * frozen.cols) throw new Error(`frozen holds ${valueCount(frozen)} values for ${frozen.rows} x ${frozen.cols}`);
  if (trainable.rows !== meta.k) fail(file, `tensor 'trainable' has ${trainable.rows} rows, expected k = ${meta.k}`);
  if (counts && counts.length !== meta.k) fail(file, `tensor 'counts' has ${counts.length} entries, expected k = ${meta.k}`);
  if (coarse) {
    if (coarse.centroids.cols !== meta.d) fail(file, `tensor 'coarse' has d = ${coarse.centroids.cols}, expected ${meta.d}`);
    if (coarse.assign.length !== meta.k) fail(file, `tensor 'coarse_assign' has ${coarse.assign.length} entries, expected k = ${meta.k}`);
    const k1 = coarse.centroids.rows;
    if (coarse.assign.some((c) => c < 0 || c >= k1)) fail(file, `tensor 'coarse_assign' holds a cell outside [0, ${k1})`);
  }
  if (projector && projector.rows !== trainable.cols) {
    fail(file, `tensor 'projector' is [${projector.rows}, ${projector.cols}] but the trainable rows have ${trainable.cols} values (expected [${trainable.cols}, c])`);
  }
  checkFinite(file, 'frozen', frozen);
  if (coarse) checkFinite(file, 'coarse', coarse.centroids);
  if (projector) checkFinite(file, 'projector', projector);
}

function floatTensor(table: CodebookData, dtype: 'f32' | 'f16'): Tensor {
  const shape = [table.rows, table.cols];
  if (dtype === 'f16') return { dtype: 'F16', shape, data: isHalf(table) ? table.half : f32ToF16(table.data) };
  return { dtype: 'F32', shape, data: isHalf(table) ? f16ToF32(table.half) : table.data };
}

/** Writes a codebook atomically; returns its fingerprint (of frozen as stored, so it is the
 *  fingerprint reading the file back gives). dtype: default the frozen table's own (f16 stays f16). */
export async function writeCodebook(file: string, cb: Omit<Codebook, 'fingerprint'>, opts: { dtype?: 'f32' | 'f16' } = {}): Promise<string> {
  validate(file, cb);
  const trainable = await cb.trainable.load();
  checkFinite(file, 'trainable', trainable);
  const dtype = opts.dtype ?? (isHalf(cb.frozen) ? 'f16' : 'f32');
  const tensors: Record<string, Tensor> = {
    frozen: floatTensor(cb.frozen, dtype),
    trainable: floatTensor(trainable, dtype),
  };
  // Counts are integers; int64 is what PyTorch code expects for counts and indices.
  if (cb.counts) tensors.counts = { dtype: 'I64', shape: [cb.meta.k], data: BigInt64Array.from(cb.counts, (c) => BigInt(Math.round(c))) };
  if (cb.coarse) {
    tensors.coarse = floatTensor(cb.coarse.centroids, dtype);
    tensors.coarse_assign = { dtype: 'I64', shape: [cb.meta.k], data: BigInt64Array.from(cb.coarse.assign, (c) => BigInt(c)) };
  }
  if (cb.projector) tensors.projector = floatTensor(cb.projector, dtype);
  const metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(cb.meta)) if (value !== undefined) metadata[key] = JSON.stringify(value);
  await writeSafetensors(file, tensors, metadata);
  const stored = tensors.frozen;
  return codebookFingerprint(stored.dtype === 'F16' ? { rows: cb.meta.k, cols: cb.meta.d, half: stored.data as Uint16Array } : { rows: cb.meta.k, cols: cb.meta.d, data: stored.data as Float32Array });
}

function checkTableShape(file: string, name: string, info: { dtype: string; shape: number[] } | undefined): [number, number] {
  if (!info) fail(file, `missing tensor '${name}'`);
  if (info.shape.length !== 2) fail(file, `tensor '${name}' must be 2-D, found shape [${info.shape.join(', ')}]`);
  if (info.dtype !== 'F32' && info.dtype !== 'F16') fail(file, `tensor '${name}' must be F32 or F16, found ${info.dtype}`);
  return [info.shape[0], info.shape[1]];
}

/** A 2-D float tensor as a table: F16 stays raw halves, F32 is used as read. */
function tableOf(file: string, name: string, t: Tensor | undefined): CodebookData {
  const [rows, cols] = checkTableShape(file, name, t);
  return t!.dtype === 'F16' ? { rows, cols, half: t!.data as Uint16Array } : { rows, cols, data: t!.data as Float32Array };
}

/** A table left in the file until first asked for; its values are checked then. */
function lazyTable(header: SafetensorsIndex, name: string): LazyTable {
  const [rows, cols] = checkTableShape(header.file, name, header.tensors.get(name));
  let loading: Promise<CodebookData> | null = null;
  const load = async (): Promise<CodebookData> => {
    const table = tableOf(header.file, name, (await readTensors(header, [name]))[name]);
    checkFinite(header.file, name, table);
    return table;
  };
  return {
    rows,
    cols,
    load() {
      loading ??= load().catch((err: unknown) => {
        loading = null;
        throw err;
      });
      return loading;
    },
  };
}

/** A codebook saved without its trainable half starts it from frozen, as the cascade prescribes:
 *  a copy (refining T must never move C), made when first asked for. */
function copyOf(frozen: CodebookData): LazyTable {
  let copy: CodebookData | null = null;
  return {
    rows: frozen.rows,
    cols: frozen.cols,
    load: async () => (copy ??= isHalf(frozen) ? { ...frozen, half: frozen.half.slice() } : { ...frozen, data: frozen.data.slice() }),
  };
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
  if (meta.nprobe !== undefined && !(Number.isSafeInteger(meta.nprobe) && (meta.nprobe as number) >= 1)) {
    fail(file, `metadata 'nprobe' must be a whole number of at least 1, found ${JSON.stringify(metadata.nprobe)}`);
  }
  if (!ATLAS_KINDS.includes(meta.atlas as CodebookMeta['atlas'])) {
    fail(file, `metadata 'atlas' must be one of ${ATLAS_KINDS.join(', ')}, found ${JSON.stringify(metadata.atlas)}`);
  }
  return meta as CodebookMeta;
}

/** Reads a codebook: frozen, counts and the coarse level now, trainable when first asked for. */
export async function readCodebook(file: string): Promise<Codebook> {
  const header = await readSafetensorsIndex(file);
  const meta = parseMeta(file, header.metadata);
  const present = (name: string) => header.tensors.has(name);
  if (present('coarse') !== present('coarse_assign')) fail(file, `tensors 'coarse' and 'coarse_assign' must come together`);
  checkTableShape(file, 'frozen', header.tensors.get('frozen'));
  const tensors = await readTensors(header, ['frozen', 'counts', 'coarse', 'coarse_assign', 'projector'].filter(present));
  const frozen = tableOf(file, 'frozen', tensors.frozen);
  const trainable = present('trainable') ? lazyTable(header, 'trainable') : copyOf(frozen);
  const counts = tensors.counts ? integersOf(file, 'counts', tensors.counts) : null;
  let coarse: CoarseLevel | undefined;
  if (tensors.coarse) {
    const centroids = tableOf(file, 'coarse', tensors.coarse);
    coarse = {
      centroids: isHalf(centroids) ? { rows: centroids.rows, cols: centroids.cols, data: f16ToF32(centroids.half) } : centroids,
      assign: Int32Array.from(integersOf(file, 'coarse_assign', tensors.coarse_assign!)),
    };
  }
  let projector: Matrix | undefined;
  if (tensors.projector) {
    const p = tableOf(file, 'projector', tensors.projector);
    projector = isHalf(p) ? { rows: p.rows, cols: p.cols, data: f16ToF32(p.half) } : p;
  }
  // The encoder as this version names it (older files' DCT descriptors read as 'dct:<size>:square').
  const encoder = validateEncoderDescriptor(meta.encoder, `${file}: metadata 'encoder'`);
  const cb = { frozen, trainable, counts, coarse, projector, meta: { ...meta, encoder } };
  validate(file, cb);
  return withLazyFingerprint(cb);
}

/**
 * The codebook with its fingerprint hashed when first read, then kept: a search needs none, and
 * hashing is a pass over every byte of frozen (~0.6 s per GB here). It cannot go stale: it hashes
 * the frozen values in memory, the ones every search uses, and nothing writes into frozen once it
 * is read (refining moves trainable only); a changed file on disk is a new readCodebook.
 */
function withLazyFingerprint(cb: Omit<Codebook, 'fingerprint'>): Codebook {
  const { frozen } = cb;
  let fingerprint: string | undefined;
  return Object.defineProperty(cb, 'fingerprint', {
    get: () => (fingerprint ??= codebookFingerprint(frozen)),
    enumerable: true,
  }) as Codebook;
}

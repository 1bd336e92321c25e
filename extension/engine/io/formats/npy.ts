// NumPy .npy files, read and written the way numpy.save/numpy.load do: magic "\x93NUMPY", version
// 1.0 (u16 header length) or 2.0 (u32), a Python-dict header {'descr', 'fortran_order', 'shape'}
// padded with spaces to a 64-byte boundary and ended by '\n', then the raw little-endian data.
// Only C-order little-endian arrays of the dtypes below are accepted; anything else is a UserError
// rather than a silent misread.
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import type { Matrix } from '../../../../native-gpu/backend.js';
import { expandBraces, hasBraces } from '../shard-list.js';
import { holdsShardManifest, readShardManifest, SHARD_MANIFEST } from '../shard-job.js';
import { writeFileAtomic } from '../atomic-write.js';
import { onFile, openRegularFile, readExactly } from '../files.js';
import { UserError } from '../../../../common/errors.js';
import { f16ToF32 } from '../../../../common/half.js';

export type NpyDtype = 'float32' | 'float16' | 'float64' | 'int32' | 'int64' | 'uint8';
export type NpyData = Float32Array | Uint16Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;

export interface NpyArray {
  shape: number[];
  dtype: NpyDtype;
  /** float16 arrays carry raw IEEE half bits */
  data: NpyData;
}

export interface NpyHeader {
  shape: number[];
  dtype: NpyDtype;
  /** byte offset of the data in the file */
  dataOffset: number;
  /** bytes of data the shape and dtype announce (the file holds at least this many after the header) */
  dataBytes: number;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const ALIGN = 64;

interface DtypeInfo {
  descr: string;
  bytes: number;
  make(buffer: ArrayBuffer, offset: number, length: number): NpyData;
  matches(data: NpyData): boolean;
}

const DTYPES: Record<NpyDtype, DtypeInfo> = {
  float32: { descr: '<f4', bytes: 4, make: (b, o, n) => new Float32Array(b, o, n), matches: (d) => d instanceof Float32Array },
  float16: { descr: '<f2', bytes: 2, make: (b, o, n) => new Uint16Array(b, o, n), matches: (d) => d instanceof Uint16Array },
  float64: { descr: '<f8', bytes: 8, make: (b, o, n) => new Float64Array(b, o, n), matches: (d) => d instanceof Float64Array },
  int32: { descr: '<i4', bytes: 4, make: (b, o, n) => new Int32Array(b, o, n), matches: (d) => d instanceof Int32Array },
  int64: { descr: '<i8', bytes: 8, make: (b, o, n) => new BigInt64Array(b, o, n), matches: (d) => d instanceof BigInt64Array },
  uint8: { descr: '|u1', bytes: 1, make: (b, o, n) => new Uint8Array(b, o, n), matches: (d) => d instanceof Uint8Array },
};

// '<u1' and '|u1' are the same thing; NumPy writes '|u1'.
const BY_DESCR = new Map<string, NpyDtype>([
  ...Object.entries(DTYPES).map(([dtype, info]) => [info.descr, dtype as NpyDtype] as const),
  ['<u1', 'uint8'],
]);

function product(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Largest header accepted (NumPy itself refuses headers above 10,000 bytes unless told to). */
export const MAX_NPY_HEADER = 2 ** 20;
/** Bytes read first: the header of almost every file fits. */
const FIRST_READ = 4096;

/** Where the header text sits and where the data starts, from the first 12 bytes (or all of a
 *  shorter file). The header length is bounded before anything is read or allocated for it. */
function npyLayout(bytes: Uint8Array, fileSize: number, name: string): { headerStart: number; dataOffset: number } {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new UserError(`${name}: not a NumPy .npy file (missing the \\x93NUMPY magic)`);
  }
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLength: number;
  let headerStart: number;
  if (major === 1) {
    headerLength = view.getUint16(8, true);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    // 3.0 only differs by allowing utf-8 in the header, which the fields read here never use.
    if (bytes.length < 12) throw new UserError(`${name}: truncated .npy header`);
    headerLength = view.getUint32(8, true);
    headerStart = 12;
  } else {
    throw new UserError(`${name}: unsupported .npy format version ${major}.${bytes[7]} (expected 1.0, 2.0 or 3.0)`);
  }
  if (headerLength > MAX_NPY_HEADER) {
    throw new UserError(`${name}: .npy header length ${headerLength} exceeds the limit of ${MAX_NPY_HEADER} bytes`);
  }
  const dataOffset = headerStart + headerLength;
  if (dataOffset > fileSize) throw new UserError(`${name}: truncated .npy header (${headerLength} bytes announced, the file has ${fileSize})`);
  return { headerStart, dataOffset };
}

/**
 * Parses the header of an .npy file of `fileSize` bytes from its first bytes (at least the whole
 * header). The data the header announces (shape x itemsize) must fit in the file: a header can
 * never make a reader allocate more than the file holds.
 */
export function parseNpyHeader(bytes: Uint8Array, fileSize: number, name: string): NpyHeader {
  const { headerStart, dataOffset } = npyLayout(bytes, fileSize, name);
  if (bytes.length < dataOffset) throw new UserError(`${name}: truncated .npy header`);
  const header = new TextDecoder().decode(bytes.subarray(headerStart, dataOffset));

  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new UserError(`${name}: malformed .npy header ${JSON.stringify(header.trim().slice(0, 200))}`);
  }
  if (descr.startsWith('>')) {
    throw new UserError(`${name}: big-endian data ('${descr}') is not supported; save it little-endian (a.astype('<${descr.slice(1)}'))`);
  }
  const dtype = BY_DESCR.get(descr);
  if (!dtype) {
    throw new UserError(`${name}: unsupported dtype '${descr.slice(0, 40)}' (expected one of ${[...BY_DESCR.keys()].join(', ')})`);
  }
  if (fortran === 'True') {
    throw new UserError(`${name}: Fortran-order arrays are not supported; save it with np.ascontiguousarray first`);
  }
  const dims = shapeText.split(',').map((s) => s.trim());
  if (dims.at(-1) === '') dims.pop(); // "(3,)": a 1-tuple's trailing comma
  const shape = dims.map((s) => {
    // Decimal digits only (Python 2 wrote longs as "3L"): Number() would also take "0x10" or "1e3".
    if (!/^\d+L?$/.test(s)) throw new UserError(`${name}: bad shape (${shapeText.slice(0, 80)}) in .npy header`);
    return Number(s.replace(/L$/, ''));
  });
  const available = fileSize - dataOffset;
  const itemsize = DTYPES[dtype].bytes;
  // Multiplied one dimension at a time, stopping as soon as the product outgrows the file, so the
  // arithmetic never leaves the exact integers (a 0 anywhere makes the array empty).
  let count = shape.includes(0) ? 0 : 1;
  for (const n of count === 0 ? [] : shape) {
    count *= n;
    if (count * itemsize > available) break;
  }
  if (count * itemsize > available) {
    throw new UserError(`${name}: truncated .npy file (shape (${shape.join(', ')}) of ${descr} needs more than the ${available} data bytes the file has)`);
  }
  return { shape, dtype, dataOffset, dataBytes: count * itemsize };
}

/** The header of an open .npy file: a first bounded read, and a second one only if the header
 *  says it is longer (and within MAX_NPY_HEADER and the file). */
async function readHeaderOf(handle: FileHandle, size: number, file: string): Promise<NpyHeader> {
  const first = new Uint8Array(Math.min(size, FIRST_READ));
  await readExactly(handle, first, 0, file, '.npy file');
  const { dataOffset } = npyLayout(first, size, file);
  if (dataOffset <= first.length) return parseNpyHeader(first, size, file);
  const whole = new Uint8Array(dataOffset);
  await readExactly(handle, whole, 0, file, '.npy file');
  return parseNpyHeader(whole, size, file);
}

/** Reads only the header (shape, dtype) of an .npy file. */
export async function readNpyHeader(file: string): Promise<NpyHeader> {
  const { handle, size } = await openRegularFile(file, 'a .npy file');
  try {
    return await readHeaderOf(handle, size, file);
  } finally {
    await handle.close();
  }
}

/** The typed array over `length` bytes at `offset` of `bytes`: a view when the offset is aligned
 *  to the element size (typed arrays require it), else a copy. */
function typedData(dtype: NpyDtype, bytes: Uint8Array, offset: number, length: number): NpyData {
  const info = DTYPES[dtype];
  const start = bytes.byteOffset + offset;
  if (start % info.bytes === 0) return info.make(bytes.buffer as ArrayBuffer, start, length / info.bytes);
  return info.make(bytes.buffer.slice(start, start + length) as ArrayBuffer, 0, length / info.bytes);
}

/** Decodes a whole .npy file already in memory (a view of its bytes where alignment allows). */
export function decodeNpy(bytes: Uint8Array, name = '.npy data'): NpyArray {
  const { shape, dtype, dataOffset, dataBytes } = parseNpyHeader(bytes, bytes.length, name);
  return { shape, dtype, data: typedData(dtype, bytes, dataOffset, dataBytes) };
}

/** Reads an .npy file: the header first, then exactly the data it announces, into one buffer. */
export async function readNpy(file: string): Promise<NpyArray> {
  const { handle, size } = await openRegularFile(file, 'a .npy file');
  try {
    const { shape, dtype, dataOffset, dataBytes } = await readHeaderOf(handle, size, file);
    const bytes = new Uint8Array(dataBytes);
    await readExactly(handle, bytes, dataOffset, file, '.npy file');
    return { shape, dtype, data: typedData(dtype, bytes, 0, dataBytes) };
  } finally {
    await handle.close();
  }
}

/** An .npy file as two parts, its header and a view of the data (no copy of the data). */
export function encodeNpyParts(a: NpyArray): [Uint8Array, Uint8Array] {
  const info = DTYPES[a.dtype];
  if (!info) throw new UserError(`cannot write .npy: unsupported dtype '${String(a.dtype)}'`);
  if (!info.matches(a.data)) throw new Error(`encodeNpy: a ${a.data.constructor.name} cannot hold ${a.dtype} data`);
  if (product(a.shape) !== a.data.length) {
    throw new Error(`encodeNpy: shape (${a.shape.join(', ')}) holds ${product(a.shape)} values, data has ${a.data.length}`);
  }
  return [encodeNpyHeader(a.shape, a.dtype), new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength)];
}

/** The bytes before the data of an .npy file (magic, version, padded header): for writers that
 *  stream the data after it. */
export function encodeNpyHeader(shapeDims: number[], dtype: NpyDtype): Uint8Array {
  const info = DTYPES[dtype];
  if (!info) throw new UserError(`cannot write .npy: unsupported dtype '${String(dtype)}'`);
  // Python's tuple repr: a 1-tuple keeps its trailing comma.
  const shape = shapeDims.length === 1 ? `(${shapeDims[0]},)` : `(${shapeDims.join(', ')})`;
  const dict = `{'descr': '${info.descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  // Version 1.0 unless the header does not fit its u16 length (NumPy does the same).
  const v1Total = Math.ceil((10 + dict.length + 1) / ALIGN) * ALIGN;
  const major = v1Total - 10 <= 0xffff ? 1 : 2;
  const prefix = major === 1 ? 10 : 12;
  const total = Math.ceil((prefix + dict.length + 1) / ALIGN) * ALIGN;
  const header = dict + ' '.repeat(total - prefix - dict.length - 1) + '\n';

  const head = new Uint8Array(total);
  head.set(MAGIC, 0);
  head[6] = major;
  head[7] = 0;
  const view = new DataView(head.buffer);
  if (major === 1) view.setUint16(8, total - prefix, true);
  else view.setUint32(8, total - prefix, true);
  head.set(new TextEncoder().encode(header), prefix);
  return head;
}

/** An .npy file's bytes in one array. */
export function encodeNpy(a: NpyArray): Uint8Array {
  const [head, data] = encodeNpyParts(a);
  const out = new Uint8Array(head.length + data.length);
  out.set(head, 0);
  out.set(data, head.length);
  return out;
}

export async function writeNpy(file: string, a: NpyArray): Promise<void> {
  await writeFileAtomic(file, encodeNpyParts(a));
}

/** The .npy files of a folder in name order (of a sharded embed's folder or its manifest.json:
 *  the shards' files, in the list's order, every shard done), the files a brace pattern names
 *  ('emb/{0..9}.npy', in its order), or the one file given. */
async function embeddingFiles(fileOrDir: string): Promise<string[]> {
  if (hasBraces(fileOrDir)) return expandBraces(fileOrDir);
  if (path.basename(fileOrDir) === SHARD_MANIFEST) return manifestFiles(fileOrDir);
  const stat = await onFile(fileOrDir, 'read embeddings', () => fs.stat(fileOrDir));
  if (!stat.isDirectory()) return [fileOrDir];
  if (await holdsShardManifest(fileOrDir)) return manifestFiles(fileOrDir);
  const names = (await onFile(fileOrDir, 'list the folder', () => fs.readdir(fileOrDir))).filter((n) => n.toLowerCase().endsWith('.npy')).sort();
  if (names.length === 0) throw new UserError(`${fileOrDir}: folder holds no .npy files`);
  return names.map((n) => path.join(fileOrDir, n));
}

async function manifestFiles(fileOrDir: string): Promise<string[]> {
  const { manifest, outputs } = await readShardManifest(fileOrDir);
  if (manifest.job !== 'embed') throw new UserError(`${fileOrDir}: the outputs of a sharded ${manifest.job} job, not embeddings (a sharded embed's folder holds them)`);
  return outputs.flatMap((files) => files.filter((f) => f.toLowerCase().endsWith('.npy')));
}

/** One shard of an embedding set: its file, header and identity on disk. */
export interface EmbeddingShard {
  file: string;
  header: NpyHeader & { dtype: EmbeddingDtype };
  rows: number;
  /** bytes and modification time, so a resumed job can tell the file has not changed */
  size: number;
  mtimeMs: number;
}

export type EmbeddingDtype = 'float32' | 'float16' | 'float64';

/** Bytes per value of each embedding dtype. */
export const EMBEDDING_DTYPE_BYTES: Record<EmbeddingDtype, number> = { float32: 4, float16: 2, float64: 8 };

/** The shards of an embedding set ([N x d] floats: one .npy, or a folder of them concatenated in
 *  name order) from their headers alone: every shard must be a 2-D float array of the same d. */
export async function scanEmbeddingShards(fileOrDir: string): Promise<{ shards: EmbeddingShard[]; rows: number; d: number }> {
  const files = await embeddingFiles(fileOrDir);
  const shards: EmbeddingShard[] = [];
  let d = -1;
  let rows = 0;
  // One file open at a time: a folder of thousands of shards must not run out of descriptors.
  for (const file of files) {
    const { handle, size, mtimeMs } = await openRegularFile(file, 'a .npy file');
    let h: NpyHeader;
    try {
      h = await readHeaderOf(handle, size, file);
    } finally {
      await handle.close();
    }
    if (h.shape.length !== 2) {
      throw new UserError(`${file}: expected a 2-D array [N, d] of embeddings, found shape (${h.shape.join(', ')})`);
    }
    if (h.dtype !== 'float32' && h.dtype !== 'float16' && h.dtype !== 'float64') {
      throw new UserError(`${file}: expected float embeddings (f2, f4 or f8), found ${h.dtype}`);
    }
    if (d >= 0 && h.shape[1] !== d) {
      throw new UserError(`${file}: has d = ${h.shape[1]} but ${files[0]} has d = ${d}; all shards must share d`);
    }
    d = h.shape[1]!;
    rows += h.shape[0]!;
    shards.push({ file, header: h as EmbeddingShard['header'], rows: h.shape[0]!, size, mtimeMs });
  }
  return { shards, rows, d };
}

/** Raw little-endian embedding values (as read from a shard) -> f32 in `out` (default: a new
 *  array), refusing NaN and Inf: one would silently poison a k-means centroid, so it is an error
 *  naming the file and row. `firstRow` is the shard row of the first value, for the message. */
export function embeddingValues(bytes: Uint8Array, dtype: EmbeddingDtype, d: number, file: string, firstRow: number,
                                out: Float32Array = new Float32Array(bytes.byteLength / EMBEDDING_DTYPE_BYTES[dtype])): Float32Array {
  const size = EMBEDDING_DTYPE_BYTES[dtype];
  // A typed view needs an offset aligned to its element size; a misaligned slice is copied once.
  const raw = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  const n = raw.byteLength / size;
  if (dtype === 'float16') f16ToF32(new Uint16Array(raw.buffer, raw.byteOffset, n), out);
  else out.set(dtype === 'float32' ? new Float32Array(raw.buffer, raw.byteOffset, n) : new Float64Array(raw.buffer, raw.byteOffset, n));
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(out[i])) {
      throw new UserError(`${file}: row ${firstRow + Math.floor(i / d)} holds a non-finite value (${out[i]}); embeddings must be finite`);
    }
  }
  return out;
}

/**
 * Embedding vectors [N x d] as f32, from one .npy or a folder of .npy shards concatenated in name
 * order (scanEmbeddingShards). f16 and f64 are converted; every value must be finite.
 */
export async function readEmbeddings(fileOrDir: string): Promise<Matrix> {
  const { shards, rows, d } = await scanEmbeddingShards(fileOrDir);
  const data = new Float32Array(rows * d);
  let offset = 0;
  for (const { file, header } of shards) {
    const a = await readNpy(file);
    const count = header.shape[0]! * d;
    if (a.dtype !== header.dtype || a.data.length !== count) throw new UserError(`${file}: changed while it was being read; try again`);
    embeddingValues(new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength), header.dtype, d, file, 0, data.subarray(offset, offset + count));
    offset += count;
  }
  return { rows, cols: d, data };
}

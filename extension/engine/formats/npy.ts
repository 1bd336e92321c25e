// NumPy .npy files, read and written the way numpy.save/numpy.load do: magic "\x93NUMPY", version
// 1.0 (u16 header length) or 2.0 (u32), a Python-dict header {'descr', 'fortran_order', 'shape'}
// padded with spaces to a 64-byte boundary and ended by '\n', then the raw little-endian data.
// Only C-order little-endian arrays of the dtypes below are accepted; anything else is a UserError
// rather than a silent misread.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Matrix } from '../../../native-gpu/backend';
import { writeFileAtomic } from '../atomic-write';
import { UserError } from '../../../common/errors';
import { f16ToF32 } from '../../../common/half';

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
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const ALIGN = 64;

interface DtypeInfo {
  descr: string;
  bytes: number;
  make(buffer: ArrayBuffer): NpyData;
  matches(data: NpyData): boolean;
}

const DTYPES: Record<NpyDtype, DtypeInfo> = {
  float32: { descr: '<f4', bytes: 4, make: (b) => new Float32Array(b), matches: (d) => d instanceof Float32Array },
  float16: { descr: '<f2', bytes: 2, make: (b) => new Uint16Array(b), matches: (d) => d instanceof Uint16Array },
  float64: { descr: '<f8', bytes: 8, make: (b) => new Float64Array(b), matches: (d) => d instanceof Float64Array },
  int32: { descr: '<i4', bytes: 4, make: (b) => new Int32Array(b), matches: (d) => d instanceof Int32Array },
  int64: { descr: '<i8', bytes: 8, make: (b) => new BigInt64Array(b), matches: (d) => d instanceof BigInt64Array },
  uint8: { descr: '|u1', bytes: 1, make: (b) => new Uint8Array(b), matches: (d) => d instanceof Uint8Array },
};

// '<u1' and '|u1' are the same thing; NumPy writes '|u1'.
const BY_DESCR = new Map<string, NpyDtype>([
  ...Object.entries(DTYPES).map(([dtype, info]) => [info.descr, dtype as NpyDtype] as const),
  ['<u1', 'uint8'],
]);

function product(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Parses the header of an .npy file from its first bytes (at least the whole header). */
function parseHeader(bytes: Uint8Array, name: string): NpyHeader {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new UserError(`${name}: not a NumPy .npy file (missing the \\x93NUMPY magic)`);
  }
  const major = bytes[6];
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
  const dataOffset = headerStart + headerLength;
  if (bytes.length < dataOffset) throw new UserError(`${name}: truncated .npy header`);
  const header = new TextDecoder().decode(bytes.subarray(headerStart, dataOffset));

  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new UserError(`${name}: malformed .npy header ${JSON.stringify(header.trim())}`);
  }
  if (descr.startsWith('>')) {
    throw new UserError(`${name}: big-endian data ('${descr}') is not supported; save it little-endian (a.astype('<${descr.slice(1)}'))`);
  }
  const dtype = BY_DESCR.get(descr);
  if (!dtype) {
    throw new UserError(`${name}: unsupported dtype '${descr}' (expected one of ${[...BY_DESCR.keys()].join(', ')})`);
  }
  if (fortran === 'True') {
    throw new UserError(`${name}: Fortran-order arrays are not supported; save it with np.ascontiguousarray first`);
  }
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => {
      const n = Number(s.replace(/L$/, '')); // Python 2 wrote longs as "3L"
      if (!Number.isSafeInteger(n) || n < 0) throw new UserError(`${name}: bad shape (${shapeText}) in .npy header`);
      return n;
    });
  return { shape, dtype, dataOffset };
}

/** Reads only the header (shape, dtype) of an .npy file. */
export async function readNpyHeader(file: string): Promise<NpyHeader> {
  const handle = await openForRead(file);
  try {
    // The header is almost always within the first 4 KiB; read more only if it says so.
    let bytes = new Uint8Array(4096);
    let { bytesRead } = await handle.read(bytes, 0, bytes.length, 0);
    bytes = bytes.subarray(0, bytesRead);
    if (bytesRead >= 12) {
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const needed = bytes[6] === 1 ? 10 + view.getUint16(8, true) : 12 + view.getUint32(8, true);
      if (needed > bytes.length && bytes[6] <= 3) {
        const full = new Uint8Array(needed);
        ({ bytesRead } = await handle.read(full, 0, needed, 0));
        bytes = full.subarray(0, bytesRead);
      }
    }
    return parseHeader(bytes, file);
  } finally {
    await handle.close();
  }
}

async function openForRead(file: string) {
  try {
    return await fs.open(file, 'r');
  } catch (err) {
    throw new UserError(`${file}: cannot open (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

/** Decodes a whole .npy file already in memory. */
export function decodeNpy(bytes: Uint8Array, name = '.npy data'): NpyArray {
  const { shape, dtype, dataOffset } = parseHeader(bytes, name);
  const info = DTYPES[dtype];
  const byteLength = product(shape) * info.bytes;
  if (bytes.length - dataOffset < byteLength) {
    throw new UserError(`${name}: truncated .npy file (shape (${shape.join(', ')}) needs ${byteLength} data bytes, found ${bytes.length - dataOffset})`);
  }
  // Copy into a fresh buffer: typed arrays need an offset aligned to their element size.
  const start = bytes.byteOffset + dataOffset;
  const data = info.make(bytes.buffer.slice(start, start + byteLength) as ArrayBuffer);
  return { shape, dtype, data };
}

export async function readNpy(file: string): Promise<NpyArray> {
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(file);
  } catch (err) {
    throw new UserError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return decodeNpy(bytes, file);
}

export function encodeNpy(a: NpyArray): Uint8Array {
  const info = DTYPES[a.dtype];
  if (!info) throw new UserError(`cannot write .npy: unsupported dtype '${String(a.dtype)}'`);
  if (!info.matches(a.data)) throw new Error(`encodeNpy: a ${a.data.constructor.name} cannot hold ${a.dtype} data`);
  if (product(a.shape) !== a.data.length) {
    throw new Error(`encodeNpy: shape (${a.shape.join(', ')}) holds ${product(a.shape)} values, data has ${a.data.length}`);
  }
  // Python's tuple repr: a 1-tuple keeps its trailing comma.
  const shape = a.shape.length === 1 ? `(${a.shape[0]},)` : `(${a.shape.join(', ')})`;
  const dict = `{'descr': '${info.descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  // Version 1.0 unless the header does not fit its u16 length (NumPy does the same).
  const v1Total = Math.ceil((10 + dict.length + 1) / ALIGN) * ALIGN;
  const major = v1Total - 10 <= 0xffff ? 1 : 2;
  const prefix = major === 1 ? 10 : 12;
  const total = Math.ceil((prefix + dict.length + 1) / ALIGN) * ALIGN;
  const header = dict + ' '.repeat(total - prefix - dict.length - 1) + '\n';

  const out = new Uint8Array(total + a.data.byteLength);
  out.set(MAGIC, 0);
  out[6] = major;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, total - prefix, true);
  else view.setUint32(8, total - prefix, true);
  out.set(new TextEncoder().encode(header), prefix);
  out.set(new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength), total);
  return out;
}

export async function writeNpy(file: string, a: NpyArray): Promise<void> {
  await writeFileAtomic(file, encodeNpy(a));
}

/** The .npy files of a folder in name order, or the one file given. */
async function embeddingFiles(fileOrDir: string): Promise<string[]> {
  let stat;
  try {
    stat = await fs.stat(fileOrDir);
  } catch {
    throw new UserError(`${fileOrDir}: no such file or folder`);
  }
  if (!stat.isDirectory()) return [fileOrDir];
  const names = (await fs.readdir(fileOrDir)).filter((n) => n.toLowerCase().endsWith('.npy')).sort();
  if (names.length === 0) throw new UserError(`${fileOrDir}: folder holds no .npy files`);
  return names.map((n) => path.join(fileOrDir, n));
}

function toFloat32(a: NpyArray): Float32Array {
  switch (a.dtype) {
    case 'float32':
      return a.data as Float32Array;
    case 'float16':
      return f16ToF32(a.data as Uint16Array);
    case 'float64':
      return Float32Array.from(a.data as Float64Array);
    default:
      throw new Error(`toFloat32: ${a.dtype}`);
  }
}

/**
 * Embedding vectors [N x d] as f32, from one .npy or a folder of .npy shards concatenated in name
 * order. f16 and f64 are converted. Every shard must be a 2-D float array of the same d, and every
 * value finite: a NaN or Inf would silently poison a k-means centroid, so it is an error naming
 * the file and row.
 */
export async function readEmbeddings(fileOrDir: string): Promise<Matrix> {
  const files = await embeddingFiles(fileOrDir);
  const headers = await Promise.all(files.map(readNpyHeader));
  let d = -1;
  let rows = 0;
  headers.forEach((h, i) => {
    if (h.shape.length !== 2) {
      throw new UserError(`${files[i]}: expected a 2-D array [N, d] of embeddings, found shape (${h.shape.join(', ')})`);
    }
    if (h.dtype !== 'float32' && h.dtype !== 'float16' && h.dtype !== 'float64') {
      throw new UserError(`${files[i]}: expected float embeddings (f2, f4 or f8), found ${h.dtype}`);
    }
    if (d >= 0 && h.shape[1] !== d) {
      throw new UserError(`${files[i]}: has d = ${h.shape[1]} but ${files[0]} has d = ${d}; all shards must share d`);
    }
    d = h.shape[1];
    rows += h.shape[0];
  });

  const data = new Float32Array(rows * d);
  let offset = 0;
  for (const file of files) {
    const values = toFloat32(await readNpy(file));
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i])) {
        throw new UserError(`${file}: row ${Math.floor(i / d)} holds a non-finite value (${values[i]}); embeddings must be finite`);
      }
    }
    data.set(values, offset);
    offset += values.length;
  }
  return { rows, cols: d, data };
}

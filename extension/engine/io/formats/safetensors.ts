// The safetensors format (as specified by huggingface/safetensors and read by
// safetensors.torch.load_file): an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON
// {"<name>": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
// padded with spaces to a multiple of 8, then the data buffer. Offsets are relative to the data
// buffer; tensors must tile it exactly, with no holes or overlaps (the reference loader checks).
import { writeFileAtomic } from '../atomic-write.js';
import { openRegularFile, readExactly } from '../files.js';
import { UserError } from '../../../../common/errors.js';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'F64' | 'I32' | 'I64';
export type TensorData = Float32Array | Uint16Array | Float64Array | Int32Array | BigInt64Array;

export interface Tensor {
  dtype: SafetensorsDtype;
  shape: number[];
  /** F16 tensors carry raw IEEE half bits, BF16 tensors raw bfloat16 bits (PyTorch checkpoints) */
  data: TensorData;
}

export interface SafetensorsFile {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

interface DtypeInfo {
  bytes: number;
  make(buffer: ArrayBuffer): TensorData;
  matches(data: TensorData): boolean;
}

const DTYPES: Record<SafetensorsDtype, DtypeInfo> = {
  F64: { bytes: 8, make: (b) => new Float64Array(b), matches: (d) => d instanceof Float64Array },
  I64: { bytes: 8, make: (b) => new BigInt64Array(b), matches: (d) => d instanceof BigInt64Array },
  F32: { bytes: 4, make: (b) => new Float32Array(b), matches: (d) => d instanceof Float32Array },
  I32: { bytes: 4, make: (b) => new Int32Array(b), matches: (d) => d instanceof Int32Array },
  F16: { bytes: 2, make: (b) => new Uint16Array(b), matches: (d) => d instanceof Uint16Array },
  BF16: { bytes: 2, make: (b) => new Uint16Array(b), matches: (d) => d instanceof Uint16Array },
};

/** The reference implementation's limit on the JSON header. */
export const MAX_SAFETENSORS_HEADER = 100_000_000;

export interface HeaderEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

function elementCount(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export interface SafetensorsHeader {
  /** tensors by name; offsets relative to the data buffer, which they tile exactly */
  entries: Map<string, HeaderEntry>;
  metadata: Record<string, string>;
}

/**
 * Parses a safetensors JSON header for a data buffer of `dataLength` bytes. Every tensor's
 * shape x dtype size must equal its byte range, and the ranges must tile the buffer: a header
 * can never make a reader allocate more than the file holds.
 */
export function parseSafetensorsHeader(json: string, dataLength: number, name: string): SafetensorsHeader {
  let header: unknown;
  try {
    header = JSON.parse(json);
  } catch {
    throw new UserError(`${name}: not a safetensors file (its header is not JSON)`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new UserError(`${name}: not a safetensors file (its header is not a JSON object)`);
  }
  const entries = new Map<string, HeaderEntry>();
  let metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(header as Record<string, unknown>)) {
    if (key === '__metadata__') {
      const ok = typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string');
      if (!ok) throw new UserError(`${name}: __metadata__ must map strings to strings`);
      metadata = value as Record<string, string>;
      continue;
    }
    const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof v?.dtype !== 'string' || !(v.dtype in DTYPES)) {
      throw new UserError(`${name}: tensor '${key}' has dtype ${JSON.stringify(v?.dtype)}; supported: ${Object.keys(DTYPES).join(', ')}`);
    }
    const shape = v.shape;
    const offsets = v.data_offsets;
    const isCount = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0;
    if (!Array.isArray(shape) || !shape.every(isCount) || !Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
      throw new UserError(`${name}: tensor '${key}' has a malformed shape or data_offsets`);
    }
    const dtype = v.dtype as SafetensorsDtype;
    const [begin, end] = offsets as [number, number];
    if (begin > end || end > dataLength || end - begin !== elementCount(shape) * DTYPES[dtype].bytes) {
      throw new UserError(`${name}: tensor '${key}' (${dtype} [${shape.join(', ')}]) does not match its data_offsets [${begin}, ${end}] in a ${dataLength}-byte buffer`);
    }
    entries.set(key, { dtype, shape, begin, end });
  }
  // Tensors must tile the data buffer exactly, as the reference loader requires.
  let cursor = 0;
  for (const [key, e] of [...entries].sort((a, b) => a[1].begin - b[1].begin)) {
    if (e.begin !== cursor) throw new UserError(`${name}: tensor '${key}' starts at byte ${e.begin}, expected ${cursor} (holes or overlaps in the data buffer)`);
    cursor = e.end;
  }
  if (cursor !== dataLength) throw new UserError(`${name}: data buffer is ${dataLength} bytes but the tensors cover ${cursor}`);
  return { entries, metadata };
}

/** Where one tensor is: its dtype, shape and absolute byte range in the file. */
export interface TensorInfo {
  dtype: SafetensorsDtype;
  shape: number[];
  /** absolute file offsets [begin, end) */
  begin: number;
  end: number;
}

/** A safetensors file's header as read from disk: what each tensor is and where its bytes lie,
 *  no tensor data read yet. */
export interface SafetensorsIndex {
  file: string;
  metadata: Record<string, string>;
  tensors: Map<string, TensorInfo>;
  /** size and modification time when the header was read: tensors read later must come from the
   *  same file, not one rewritten meanwhile */
  stamp: { size: number; mtimeMs: number };
}

const WHAT = 'a safetensors file';

/** Reads the header only: a codebook of several GB can then be read tensor by tensor. */
export async function readSafetensorsIndex(file: string): Promise<SafetensorsIndex> {
  const { handle, size, mtimeMs } = await openRegularFile(file, WHAT);
  try {
    if (size < 8) throw new UserError(`${file}: not a safetensors file (${size} bytes, shorter than its 8-byte header length)`);
    const prefix = new Uint8Array(8);
    await readExactly(handle, prefix, 0, file, WHAT);
    const announced = new DataView(prefix.buffer).getBigUint64(0, true);
    if (announced > BigInt(Math.min(MAX_SAFETENSORS_HEADER, size - 8))) {
      throw new UserError(`${file}: not a safetensors file (header length ${announced} does not fit a ${size}-byte file)`);
    }
    const headerLength = Number(announced);
    const headerBytes = new Uint8Array(headerLength);
    await readExactly(handle, headerBytes, 8, file, WHAT);
    const dataStart = 8 + headerLength;
    const { entries, metadata } = parseSafetensorsHeader(new TextDecoder().decode(headerBytes), size - dataStart, file);
    const tensors = new Map<string, TensorInfo>();
    for (const [name, e] of entries) tensors.set(name, { dtype: e.dtype, shape: e.shape, begin: dataStart + e.begin, end: dataStart + e.end });
    return { file, metadata, tensors, stamp: { size, mtimeMs } };
  } finally {
    await handle.close();
  }
}

/**
 * Reads the named tensors of a file whose header was read before, each straight into its own
 * typed array (no buffer of the whole file). Refuses a file that changed since its header was read.
 */
export async function readTensors(index: SafetensorsIndex, names: string[]): Promise<Record<string, Tensor>> {
  const { file } = index;
  const { handle, size, mtimeMs } = await openRegularFile(file, WHAT);
  try {
    if (size !== index.stamp.size || mtimeMs !== index.stamp.mtimeMs) {
      throw new UserError(`${file}: the file changed on disk since it was opened; open it again`);
    }
    const tensors: Record<string, Tensor> = {};
    for (const name of names) {
      const info = index.tensors.get(name);
      if (!info) throw new Error(`${file}: no tensor '${name}'`);
      const buffer = new ArrayBuffer(info.end - info.begin);
      await readExactly(handle, new Uint8Array(buffer), info.begin, file, WHAT);
      tensors[name] = { dtype: info.dtype, shape: info.shape, data: DTYPES[info.dtype].make(buffer) };
    }
    return tensors;
  } finally {
    await handle.close();
  }
}

/** Reads a whole safetensors file, tensor by tensor. */
export async function readSafetensors(file: string): Promise<SafetensorsFile> {
  const index = await readSafetensorsIndex(file);
  return { tensors: await readTensors(index, [...index.tensors.keys()]), metadata: index.metadata };
}

/** A safetensors file as parts: its header, then a view of each tensor's data (no copies). */
export function encodeSafetensorsParts(tensors: Record<string, Tensor>, metadata: Record<string, string> = {}): Uint8Array[] {
  // Widest dtype first, then by name (what the Python writer does): every tensor then starts at
  // an offset aligned to its element size, so readers can map it without copying.
  const names = Object.keys(tensors).sort((a, b) => DTYPES[tensors[b].dtype].bytes - DTYPES[tensors[a].dtype].bytes || (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    if (!DTYPES[t.dtype].matches(t.data)) throw new Error(`encodeSafetensors: tensor '${name}' data does not match dtype ${t.dtype}`);
    if (elementCount(t.shape) !== t.data.length) {
      throw new Error(`encodeSafetensors: tensor '${name}' shape [${t.shape.join(', ')}] holds ${elementCount(t.shape)} values, data has ${t.data.length}`);
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLength = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + headerLength);
  new DataView(head.buffer).setBigUint64(0, BigInt(headerLength), true);
  head.set(json, 8);
  head.fill(0x20, 8 + json.length); // space padding, allowed by the spec
  return [head, ...names.map((name) => {
    const d = tensors[name].data;
    return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  })];
}

/** A safetensors file's bytes in one array. */
export function encodeSafetensors(tensors: Record<string, Tensor>, metadata: Record<string, string> = {}): Uint8Array {
  const parts = encodeSafetensorsParts(tensors, metadata);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export async function writeSafetensors(file: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): Promise<void> {
  await writeFileAtomic(file, encodeSafetensorsParts(tensors, metadata));
}

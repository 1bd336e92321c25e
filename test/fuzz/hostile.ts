// Builders of hostile files for the fuzz tier: .npy files with any header, PNGs of any size
// (including a real decompression bomb, its IDAT deflated as a stream so the test never holds the
// pixels), FIFOs, and sparse files that claim a size without taking the disk.
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { crc32, createDeflate, deflateSync } from 'node:zlib';

const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];

/** An .npy file with the given header text; `headerLength` overrides the length field (lying). */
export function npyBytes(header: string, opts: { major?: 1 | 2 | 3; headerLength?: number; data?: Uint8Array } = {}): Uint8Array {
  const major = opts.major ?? 1;
  const prefix = major === 1 ? 10 : 12;
  const text = new TextEncoder().encode(header);
  const out = new Uint8Array(prefix + text.length + (opts.data?.length ?? 0));
  out.set(NPY_MAGIC, 0);
  out[6] = major;
  const view = new DataView(out.buffer);
  const length = opts.headerLength ?? text.length;
  if (major === 1) view.setUint16(8, length, true);
  else view.setUint32(8, length, true);
  out.set(text, prefix);
  if (opts.data) out.set(opts.data, prefix + text.length);
  return out;
}

/** The dict of an .npy header, padded like NumPy pads it. */
export function npyHeader(descr: string, shape: string, pad = 64): string {
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  return dict + ' '.repeat(Math.max(0, pad - 11 - dict.length)) + '\n';
}

function pngChunk(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([Buffer.from(type), body])));
  return Buffer.concat([head, Buffer.from(type), body, crc]);
}

function ihdr(width: number, height: number, colourType: number): Buffer {
  const body = Buffer.alloc(13);
  body.writeUInt32BE(width, 0);
  body.writeUInt32BE(height, 4);
  body.set([8, colourType, 0, 0, 0], 8);
  return pngChunk('IHDR', body);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A valid 8-bit greyscale PNG of width x height pixels, every pixel `value`. */
export function greyPng(width: number, height: number, value = 128): Buffer {
  const rows = Buffer.alloc((width + 1) * height, value);
  for (let y = 0; y < height; y++) rows[y * (width + 1)] = 0; // filter type: none
  return Buffer.concat([PNG_SIGNATURE, ihdr(width, height, 0), pngChunk('IDAT', deflateSync(rows)), pngChunk('IEND', Buffer.alloc(0))]);
}

/** A valid black greyscale PNG of width x height written to `file`, its pixel data deflated as a
 *  stream: a 16000 x 16000 bomb (256 MB of pixels) is a ~250 KB file made in about a second. */
export async function writeBombPng(file: string, width: number, height: number): Promise<void> {
  const deflate = createDeflate({ level: 9 });
  const parts: Buffer[] = [];
  deflate.on('data', (c: Buffer) => parts.push(c));
  const rowsPerWrite = 256;
  const block = Buffer.alloc((width + 1) * rowsPerWrite); // zeros: filter none, black
  for (let y = 0; y < height; y += rowsPerWrite) {
    const rows = Math.min(rowsPerWrite, height - y);
    if (!deflate.write(block.subarray(0, rows * (width + 1)))) await new Promise((r) => deflate.once('drain', r));
  }
  const done = new Promise((r) => deflate.on('end', r));
  deflate.end();
  await done;
  await fs.writeFile(file, Buffer.concat([PNG_SIGNATURE, ihdr(width, height, 0), pngChunk('IDAT', Buffer.concat(parts)), pngChunk('IEND', Buffer.alloc(0))]));
}

export function mkfifo(file: string): void {
  execFileSync('mkfifo', [file]);
}

/** A file that claims `bytes` bytes without using the disk (a hole). */
export async function sparseFile(file: string, bytes: number, start = ''): Promise<void> {
  await fs.writeFile(file, start);
  await fs.truncate(file, bytes);
}

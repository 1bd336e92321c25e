// A codebook uploaded to the GPU: rows padded to a multiple of 4 (vec4 loads; zero padding does not
// change dot products), split into chunks that each fit one storage binding, plus the squared row
// norms (computed on the host in f64 from the values the GPU will see). f16 codebooks stay f16 on
// the GPU, two halves per u32, unpacked in WGSL: no adapter feature is needed.
import type { CodebookData, CodebookHandle } from '../backend.js';
import { rowsF32 } from '../tables.js';
import { REMEDIES, UserError } from '../../common/errors.js';
import { STORAGE, writeAligned } from './buffers.js';
import type { Runtime } from './runtime.js';

export interface CodeChunk {
  buffer: GPUBuffer;
  /** global index of the chunk's first code */
  base: number;
  rows: number;
}

/** rows uploaded per queue.writeBuffer call, so no single staging copy is huge */
const UPLOAD_ROWS_BYTES = 64 * 1024 ** 2;

export class GpuCodebook implements CodebookHandle {
  readonly k: number;
  readonly d: number;
  /** d rounded up to a multiple of 4 */
  readonly dPad: number;
  readonly half: boolean;
  readonly chunks: CodeChunk[] = [];
  readonly norms: GPUBuffer;
  /** kept (not copied) for the exact distances of winners and for the CPU fallback */
  readonly source: CodebookData;
  private disposed = false;

  constructor(rt: Runtime, source: CodebookData) {
    this.k = source.rows;
    this.d = source.cols;
    if (this.k < 1 || this.d < 1) throw new UserError(`the codebook is empty (${this.k} x ${this.d}); expected at least one code of at least one dimension`);
    const values = 'half' in source ? source.half.length : source.data.length;
    if (values !== this.k * this.d) throw new Error(`codebook data has ${values} values for ${this.k} x ${this.d}`);
    this.source = source;
    this.half = 'half' in source;
    this.dPad = Math.ceil(this.d / 4) * 4;
    // Chunks are sized by f32 rows even for f16 codebooks, so the k-means sums (f32, one row per
    // code) can use the same chunking.
    const rowsPerChunk = Math.floor(rt.chunkBytes / (this.dPad * 4));
    if (rowsPerChunk < 1) throw new UserError(`codebook rows of ${this.d} dimensions do not fit one GPU buffer (${rt.chunkBytes} bytes)`, REMEDIES.useCpu);
    if (this.k * 4 > rt.device.limits.maxStorageBufferBindingSize) throw new UserError(`a codebook of ${this.k} codes is too large for this GPU's buffers`, REMEDIES.useCpu);

    const device = rt.device;
    const norms = new Float32Array(this.k);
    try {
      for (let base = 0; base < this.k; base += rowsPerChunk) {
        const rows = Math.min(rowsPerChunk, this.k - base);
        const bytesPerRow = this.dPad * (this.half ? 2 : 4);
        const buffer = device.createBuffer({ label: `codebook[${base}..${base + rows})`, size: rows * bytesPerRow, usage: STORAGE });
        this.chunks.push({ buffer, base, rows });
        const step = Math.max(1, Math.floor(UPLOAD_ROWS_BYTES / bytesPerRow));
        for (let r0 = 0; r0 < rows; r0 += step) {
          const n = Math.min(step, rows - r0);
          const padded = this.rowsPadded(base + r0, n);
          writeAligned(device, buffer, r0 * bytesPerRow, padded);
          this.accumulateNorms(base + r0, n, norms);
        }
      }
      this.norms = device.createBuffer({ label: 'codebook norms', size: Math.max(16, this.k * 4), usage: STORAGE });
      writeAligned(device, this.norms, 0, norms);
    } catch (err) {
      this.dispose();
      throw err;
    }
  }

  /** rows [r0, r0+n) in upload layout (dPad columns), a view when no padding is needed */
  private rowsPadded(r0: number, n: number): Float32Array | Uint16Array {
    const { d, dPad } = this;
    const src = 'half' in this.source ? this.source.half : this.source.data;
    const rows = src.subarray(r0 * d, (r0 + n) * d);
    if (d === dPad) return rows;
    const out = 'half' in this.source ? new Uint16Array(n * dPad) : new Float32Array(n * dPad);
    for (let r = 0; r < n; r++) out.set(rows.subarray(r * d, (r + 1) * d), r * dPad);
    return out;
  }

  private accumulateNorms(r0: number, n: number, norms: Float32Array): void {
    const rows = this.rowsF32(r0, n);
    const d = this.d;
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let j = r * d, end = j + d; j < end; j++) s += rows[j] * rows[j];
      norms[r0 + r] = s;
    }
  }

  /** rows [r0, r0+n) as f32 values, d columns */
  rowsF32(r0: number, n: number): Float32Array {
    return rowsF32(this.source, r0, n);
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const chunk of this.chunks) chunk.buffer.destroy();
    this.chunks.length = 0;
    (this.norms as GPUBuffer | undefined)?.destroy();
  }
}

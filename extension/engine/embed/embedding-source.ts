// Where a build's training vectors come from, read block by block so that no job ever needs all of
// them in f32 at once: .npy shards on disk (the corpus's f16 shards or a folder of the user's own),
// a matrix already in memory, or a seeded subset of either. Blocks come in row order; a block
// never spans two shards, so it may be shorter than asked for.
import { createHash } from 'node:crypto';
import type { Matrix } from '../../../native-gpu/backend.js';
import { throwIfCancelled } from '../../../common/errors.js';
import { openRegularFile, readExactly } from '../io/files.js';
import { EMBEDDING_DTYPE_BYTES, embeddingValues, scanEmbeddingShards, type EmbeddingDtype } from '../io/formats/npy.js';

export interface RowBlock {
  /** index of the block's first row in the source */
  start: number;
  /** the rows, row-major f32 [rows x cols] */
  matrix: Matrix;
}

export interface RowSource {
  readonly rows: number;
  readonly cols: number;
  /** What the rows are, for checkpoint keys: the shards' names, sizes and modification times, or
   *  a digest of the values. Equal identities mean the same rows. */
  readonly identity: string;
  /** The rows in order, in blocks of at most `blockRows`. A block's matrix is only valid until the
   *  next block is asked for: its buffer is reused, so a pass leaves no garbage per block. */
  blocks(blockRows: number, signal?: AbortSignal): AsyncGenerator<RowBlock>;
  /** true when a block's buffer is the pass's own scratch (not a view of data held elsewhere), so
   *  that the consumer may overwrite it: subsetSource then drops rows in place instead of copying */
  readonly scratchBlocks?: boolean;
  /** the source file by file (a folder of shards): the two-level build's groups of rows */
  readonly files?: readonly RowSource[];
}

/** The embeddings in one .npy or a folder of shards (f16, f32 or f64), read on demand. */
export async function shardSource(fileOrDir: string): Promise<RowSource> {
  const { shards, rows, d } = await scanEmbeddingShards(fileOrDir);
  const raw = shards.map(({ file, header, rows }) => ({ file, rows, dtype: header.dtype, dataOffset: header.dataOffset }));
  // the files are read one after another (a two-level build's groups): one set of buffers for all
  const filesScratch = blockScratch();
  return {
    rows,
    cols: d,
    identity: JSON.stringify(shards.map((s) => [s.file, s.size, s.mtimeMs])),
    blocks: (blockRows, signal) => shardBlocks(raw, d, blockRows, signal, blockScratch()),
    scratchBlocks: true,
    files: raw.map((f) => rawRowsSource([f], d, filesScratch)),
  };
}

/** A file of raw rows (no header): the f16 scratch files a job writes for itself. */
export interface RawRows {
  file: string;
  rows: number;
  dtype: EmbeddingDtype;
  /** byte offset of the first row */
  dataOffset: number;
}

/** Block buffers that sources read one at a time may share (grown to the largest block asked
 *  for, never shrunk): passes over many small sources one after another then leave no buffers
 *  behind for the collector, which V8 reclaims too late to keep a memory budget. */
export interface BlockScratch {
  bytes: Uint8Array;
  values: Float32Array;
}

export const blockScratch = (): BlockScratch => ({ bytes: new Uint8Array(0), values: new Float32Array(0) });

/** Files of raw rows, concatenated in the order given; `scratch`: buffers shared with other
 *  sources (never read at the same time as this one). */
export function rawRowsSource(files: RawRows[], d: number, scratch?: BlockScratch): RowSource {
  return {
    rows: files.reduce((n, f) => n + f.rows, 0),
    cols: d,
    identity: JSON.stringify(files.map((f) => [f.file, f.rows, f.dtype])),
    blocks: (blockRows, signal) => shardBlocks(files, d, blockRows, signal, scratch ?? blockScratch()),
    scratchBlocks: true,
  };
}

async function* shardBlocks(files: RawRows[], d: number, blockRows: number, signal: AbortSignal | undefined, scratch: BlockScratch): AsyncGenerator<RowBlock> {
  // One read buffer and one f32 buffer for the whole pass, sized for its largest block.
  const largest = Math.min(blockRows, Math.max(0, ...files.map((f) => f.rows)));
  const bytes = largest * d * Math.max(...files.map((f) => EMBEDDING_DTYPE_BYTES[f.dtype]));
  if (scratch.bytes.length < bytes) scratch.bytes = new Uint8Array(bytes);
  if (scratch.values.length < largest * d) scratch.values = new Float32Array(largest * d);
  const { bytes: buffer, values } = scratch;
  let start = 0;
  for (const { file, rows, dtype, dataOffset } of files) {
    const rowBytes = d * EMBEDDING_DTYPE_BYTES[dtype];
    const { handle } = await openRegularFile(file, 'embeddings');
    try {
      for (let row = 0; row < rows; row += blockRows) {
        throwIfCancelled(signal);
        const count = Math.min(blockRows, rows - row);
        const bytes = buffer.subarray(0, count * rowBytes);
        await readExactly(handle, bytes, dataOffset + row * rowBytes, file, 'embeddings');
        yield { start: start + row, matrix: { rows: count, cols: d, data: embeddingValues(bytes, dtype, d, file, row, values.subarray(0, count * d)) } };
      }
    } finally {
      await handle.close();
    }
    start += rows;
  }
}

/** A matrix already in memory (a small image corpus): blocks are views, nothing is copied. */
export function matrixSource(m: Matrix): RowSource {
  const bytes = new Uint8Array(m.data.buffer, m.data.byteOffset, m.data.byteLength);
  return {
    rows: m.rows,
    cols: m.cols,
    identity: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
    async *blocks(blockRows, signal) {
      for (let row = 0; row < m.rows; row += blockRows) {
        throwIfCancelled(signal);
        const count = Math.min(blockRows, m.rows - row);
        yield { start: row, matrix: { rows: count, cols: m.cols, data: m.data.subarray(row * m.cols, (row + count) * m.cols) } };
      }
    },
  };
}

/** The rows of `base` at `indices` (ascending, distinct), in that order: a seeded training
 *  subset. Streaming it reads all of `base` once. A block of `base` that keeps at least half its
 *  rows, arriving while no copied block is being filled, has them moved forward in its own buffer
 *  when that is scratch (a build holding a few rows out of training needs no extra block buffer,
 *  which measured +10-20 MB peak RSS at a 100 MB budget); otherwise rows are copied into blocks of
 *  `blockRows`, so a sparse subset still gives full blocks. */
export function subsetSource(base: RowSource, indices: Uint32Array): RowSource {
  return {
    rows: indices.length,
    cols: base.cols,
    identity: `${base.identity} rows:${createHash('sha256').update(new Uint8Array(indices.buffer, indices.byteOffset, indices.byteLength)).digest('hex')}`,
    async *blocks(blockRows, signal) {
      const d = base.cols;
      let out: Float32Array | null = null;
      let filled = 0;
      let next = 0; // position in indices
      for await (const { start, matrix } of base.blocks(blockRows, signal)) {
        const end = start + matrix.rows;
        let last = next;
        while (last < indices.length && indices[last] < end) last++;
        const kept = last - next;
        if (base.scratchBlocks && filled === 0 && kept > 0 && 2 * kept >= matrix.rows) {
          // indices[next + i] - start >= i: every row moves forward, never over one still to move
          for (let i = 0; i < kept; i++) {
            const r = indices[next + i] - start;
            if (r !== i) matrix.data.copyWithin(i * d, r * d, (r + 1) * d);
          }
          yield { start: next, matrix: { rows: kept, cols: d, data: matrix.data.subarray(0, kept * d) } };
          next = last;
          continue;
        }
        out ??= new Float32Array(blockRows * d);
        for (; next < indices.length && indices[next] < end; next++) {
          const r = indices[next] - start;
          out.set(matrix.data.subarray(r * d, (r + 1) * d), filled * d);
          if (++filled === blockRows) {
            yield { start: next + 1 - filled, matrix: { rows: filled, cols: d, data: out } };
            filled = 0;
          }
        }
      }
      if (filled > 0) yield { start: indices.length - filled, matrix: { rows: filled, cols: d, data: out!.subarray(0, filled * d) } };
    },
  };
}

/** The rows at `indices` (ascending, distinct) in one matrix, in one pass over the source;
 *  `onBlock` sees every block of the pass (to fingerprint the data on the way). */
export async function gatherRows(source: RowSource, indices: ArrayLike<number>, blockRows: number, signal?: AbortSignal,
                                 onBlock?: (block: RowBlock) => void): Promise<Matrix> {
  const d = source.cols;
  const data = new Float32Array(indices.length * d);
  let next = 0;
  for await (const block of source.blocks(blockRows, signal)) {
    onBlock?.(block);
    const end = block.start + block.matrix.rows;
    for (; next < indices.length && indices[next] < end; next++) {
      const r = indices[next] - block.start;
      data.set(block.matrix.data.subarray(r * d, (r + 1) * d), next * d);
    }
  }
  return { rows: indices.length, cols: d, data };
}

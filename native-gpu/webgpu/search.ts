// Drives the nearest-code kernels: queries go up in batches that fit one binding; for each batch,
// one nearest dispatch per codebook chunk writes partial minima for its splits, one merge dispatch
// reduces them across splits and chunks on the GPU, and only the winning ids come back.
import type { Matrix, RunControl } from '../backend.js';
import { UserError, throwIfCancelled } from '../../common/errors.js';
import { grid2d, run, type DispatchSpec, type RunSpec } from './program.js';
import { mergeProgram, nearestParams, nearestProgram, tileRows } from './kernels/nearest.js';
import type { GpuCodebook } from './gpu-codebook.js';
import type { Runtime } from './runtime.js';

/** One uploaded batch of query rows, handed to a caller that wants to reuse it (k-means sums). */
export interface QueryBatch {
  /** index of the batch's first row in the whole query matrix */
  start: number;
  rows: number;
  /** rows x dPad f32 on the GPU, valid only during the callback */
  buffer: GPUBuffer;
  /** nearest code of each row of the batch */
  ids: Int32Array;
}

const BEST_BYTES = 8; // struct Best { score: f32, index: u32 }

export function checkQueries(cb: GpuCodebook, queries: Matrix): void {
  if (queries.cols !== cb.d) {
    throw new UserError(`the vectors have ${queries.cols} dimensions but the codebook has ${cb.d}; use embeddings from the encoder the codebook was built with`);
  }
  if (queries.data.length !== queries.rows * queries.cols) throw new Error(`query matrix has ${queries.data.length} values for ${queries.rows} x ${queries.cols}`);
}

/** How one chunk of `rows` codes is cut into splits (workgroup columns) for a batch of queries. */
function splitChunk(rt: Runtime, chunkRows: number, queryTiles: number): { codesPerSplit: number; splits: number } {
  const tileCodes = tileRows(rt.tile).codes;
  const wanted = Math.max(1, Math.ceil(rt.targetWorkgroups / queryTiles));
  let codesPerSplit = Math.max(tileCodes, Math.ceil(chunkRows / wanted / tileCodes) * tileCodes);
  // Workgroup counts per dimension are limited (65535 everywhere).
  const maxSplits = rt.device.limits.maxComputeWorkgroupsPerDimension;
  if (Math.ceil(chunkRows / codesPerSplit) > maxSplits) codesPerSplit = Math.ceil(chunkRows / maxSplits / tileCodes) * tileCodes;
  return { codesPerSplit, splits: Math.ceil(chunkRows / codesPerSplit) };
}

export async function searchNearestIds(
  rt: Runtime,
  cb: GpuCodebook,
  queries: Matrix,
  control?: RunControl,
  onBatch?: (batch: QueryBatch) => Promise<void> | void,
): Promise<Int32Array> {
  if (cb.isDisposed) throw new Error('the codebook handle was disposed');
  checkQueries(cb, queries);
  const { dPad, d } = cb;
  const n = queries.rows;
  const ids = new Int32Array(n);
  const maxY = rt.device.limits.maxComputeWorkgroupsPerDimension;
  const batchRows = Math.max(1, Math.min(Math.floor(rt.batchBytes / (dPad * 4)), maxY * tileRows(rt.tile).queries));
  for (let start = 0; start < n; start += batchRows) {
    throwIfCancelled(control?.signal);
    const rows = Math.min(batchRows, n - start);
    const batch = queries.data.subarray(start * d, (start + rows) * d);
    const spec = batchSpec(rt, cb, d === dPad ? batch : padRows(batch, rows, d, dPad), rows);
    await run(rt, spec, async ([result], held) => {
      const best = new Uint32Array(result);
      for (let i = 0; i < rows; i++) {
        const index = best[2 * i + 1];
        if (index >= cb.k) throw new Error(`nearest: the GPU returned code ${index} for query ${start + i} (K = ${cb.k})`);
        ids[start + i] = index;
      }
      await onBatch?.({ start, rows, buffer: held.inputs[0], ids: ids.subarray(start, start + rows) });
    });
  }
  return ids;
}

/** One batch of `rows` padded queries: a nearest dispatch per codebook chunk writes the partial
 *  minima of its splits, then one merge dispatch reduces them to one Best per query. */
function batchSpec(rt: Runtime, cb: GpuCodebook, queries: Float32Array, rows: number): RunSpec {
  const queryTiles = Math.ceil(rows / tileRows(rt.tile).queries);
  const plan = cb.chunks.map((chunk) => ({ chunk, ...splitChunk(rt, chunk.rows, queryTiles) }));
  const slots = plan.reduce((s, p) => s + p.splits, 0);
  // At most (chunks x targetWorkgroups / queryTiles) slots of one query tile each: megabytes.
  if (slots * rows * BEST_BYTES > rt.device.limits.maxStorageBufferBindingSize) {
    throw new Error(`nearest: ${slots} partial minima for ${rows} queries do not fit one binding`);
  }
  const nearest = nearestProgram(rt.tile, cb.half);
  let slotBase = 0;
  const dispatches = plan.map(({ chunk, codesPerSplit, splits }): DispatchSpec => {
    const uniform = nearestParams({ queryRows: rows, codeRows: chunk.rows, codeBase: chunk.base, dVec: cb.dPad / 4, codesPerSplit, slotBase, slotStride: rows });
    slotBase += splits;
    return { program: nearest, bindings: [{ input: 0 }, chunk.buffer, cb.norms, { output: 0 }, { uniform }], workgroups: [splits, queryTiles] };
  });
  const [gx, gy] = grid2d(Math.ceil(rows / 64), rt.device.limits.maxComputeWorkgroupsPerDimension);
  const mergeUniform = new Uint32Array([rows, slots, rows, gx * 64]);
  dispatches.push({ program: mergeProgram(), bindings: [{ output: 0 }, { output: 1 }, { uniform: mergeUniform }], workgroups: [gx, gy] });
  return {
    inputs: [queries],
    outputs: [{ bytes: slots * rows * BEST_BYTES, scratch: true }, { bytes: rows * BEST_BYTES }],
    dispatches,
  };
}

function padRows(data: Float32Array, rows: number, d: number, dPad: number): Float32Array {
  const out = new Float32Array(rows * dPad);
  for (let r = 0; r < rows; r++) out.set(data.subarray(r * d, (r + 1) * d), r * dPad);
  return out;
}

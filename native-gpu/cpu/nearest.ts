// Exact nearest-code search on the CPU through onnxruntime.
//
// argmin_k ||q - c_k||^2 = argmin_k (||c_k||^2 - 2 q.c_k): one graph,
//   Gemm(queries, chunk, transB=1, alpha=-2, C=chunkNorms) -> ArgMin(axis=1) and ReduceMin(axis=1),
// run once per (query batch, codebook chunk). Both the codebook chunk and the queries are graph
// INPUTS of a single session, not initializers: measured on 2 cores (K=16384, d=768, Q=729), baking
// a chunk in as an initializer runs ~10% faster (onnxruntime pre-packs a constant Gemm B) but
// costs ~0.6 s of session creation and a second full copy per 16K-row chunk, paid again on every
// k-means iteration, which reloads the codebook. As inputs, the chunk tensors are views of one
// Float32Array, created once at load, and nothing is copied.
//
// Memory stays bounded for any K and any number of queries: each run materializes one
// [QUERY_BATCH x chunkRows] score block (at most 1,024 x 16,384 floats = 64 MB), never a Q x K
// matrix. The batch is fixed rather than sized to fill 64 MB: for a small codebook the score
// block then stays small, and ArgMin/ReduceMin reread it while it is still in cache. Measured on
// 2 cores, N = 200,000, K = 4,096, d = 768: 4,096-row batches 10.4 s, 2,048 10.1 s, 1,024 9.9 s,
// 512 9.6 s (medians of 3); smaller batches repack the codebook (Gemm's B) more often, so 1,024.
import * as os from 'node:os';
import type * as ort from 'onnxruntime-node';
import { onnxruntime } from '../onnxruntime.js';
import type { CodebookData, CodebookHandle, Matrix, RunControl } from '../backend.js';
import { GraphBuilder, float } from './onnx-graph.js';
import { f16ToF32 } from '../../common/half.js';
import { UserError, throwIfCancelled } from '../../common/errors.js';

/** codebook rows per Gemm; a chunk of 16384 x 1152 f32 is 75 MB */
export const CHUNK_ROWS = 16384;
/** queries per run, whatever the codebook size (see the header) */
const QUERY_BATCH = 1024;

export class CpuCodebook implements CodebookHandle {
  readonly k: number;
  readonly d: number;
  /** row-major f32 codes, kept to compute exact distances of the winners */
  readonly codes: Float32Array;
  readonly chunks: { start: number; rows: number; codes: ort.Tensor; norms: ort.Tensor }[] = [];
  private disposed = false;

  constructor(data: CodebookData) {
    this.k = data.rows;
    this.d = data.cols;
    if (this.k < 1 || this.d < 1) throw new UserError(`the codebook is empty (${this.k} x ${this.d}); expected at least one code of at least one dimension`);
    this.codes = 'half' in data ? f16ToF32(data.half) : data.data;
    if (this.codes.length !== this.k * this.d) {
      throw new Error(`codebook data has ${this.codes.length} values for ${this.k} x ${this.d}`);
    }
    const norms = rowSquaredNorms(this.codes, this.k, this.d);
    const { Tensor } = onnxruntime();
    for (let start = 0; start < this.k; start += CHUNK_ROWS) {
      const rows = Math.min(CHUNK_ROWS, this.k - start);
      this.chunks.push({
        start,
        rows,
        codes: new Tensor('float32', this.codes.subarray(start * this.d, (start + rows) * this.d), [rows, this.d]),
        norms: new Tensor('float32', norms.subarray(start, start + rows), [rows]),
      });
    }
  }

  /** code `id` as a view into the codebook */
  row(id: number): Float32Array {
    return this.codes.subarray(id * this.d, (id + 1) * this.d);
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  dispose(): void {
    this.disposed = true;
    this.chunks.length = 0;
  }
}

function rowSquaredNorms(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = r * cols, end = j + cols; j < end; j++) s += m[j] * m[j];
    out[r] = s;
  }
  return out;
}

export async function createSearchSession(threads = os.availableParallelism()): Promise<ort.InferenceSession> {
  const g = new GraphBuilder('nearest_code');
  g.input('queries', 'float32', ['Q', 'D']);
  g.input('codes', 'float32', ['K', 'D']);
  g.input('norms', 'float32', ['K']);
  g.node('Gemm', ['queries', 'codes', 'norms'], ['scores'], { transB: 1, alpha: float(-2) });
  g.node('ArgMin', ['scores'], ['ids'], { axis: 1, keepdims: 0 }); // first index on ties
  g.node('ReduceMin', ['scores'], ['best'], { axes: [1], keepdims: 0 });
  g.output('ids', 'int64', ['Q']);
  g.output('best', 'float32', ['Q']);
  return onnxruntime().InferenceSession.create(g.toModel(), {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
}

/** The nearest code of every query (ids only: callers add exact distances as they need them). */
export async function searchNearestIds(session: ort.InferenceSession, cb: CpuCodebook, queries: Matrix,
                                       control?: RunControl): Promise<Int32Array> {
  return (await searchNearest(session, cb, queries, control)).ids;
}

/** The nearest code of every query and its search score ||c||^2 - 2 q.c (the squared distance
 *  less ||q||^2): IVF search (ivf.ts) compares these across the cells a query probes. */
export async function searchNearest(session: ort.InferenceSession, cb: CpuCodebook, queries: Matrix,
                                    control?: RunControl): Promise<{ ids: Int32Array; scores: Float32Array }> {
  if (cb.isDisposed) throw new Error('the codebook handle was disposed');
  if (queries.cols !== cb.d) {
    throw new UserError(`the vectors have ${queries.cols} dimensions but the codebook has ${cb.d}; use embeddings from the encoder the codebook was built with`);
  }
  const n = queries.rows;
  const ids = new Int32Array(n);
  const scores = new Float32Array(n).fill(Infinity);
  for (let q0 = 0; q0 < n; q0 += QUERY_BATCH) {
    const rows = Math.min(QUERY_BATCH, n - q0);
    const qTensor = new (onnxruntime().Tensor)('float32', queries.data.subarray(q0 * cb.d, (q0 + rows) * cb.d), [rows, cb.d]);
    // Chunks go in ascending code order and only a strictly lower score replaces the best so far,
    // so ties resolve to the lowest code index, as ArgMin does within a chunk.
    for (const chunk of cb.chunks) {
      throwIfCancelled(control?.signal);
      const out = await session.run({ queries: qTensor, codes: chunk.codes, norms: chunk.norms });
      const chunkIds = out.ids.data as BigInt64Array;
      const best = out.best.data as Float32Array;
      for (let i = 0; i < rows; i++) {
        if (best[i] < scores[q0 + i]) {
          scores[q0 + i] = best[i];
          ids[q0 + i] = chunk.start + Number(chunkIds[i]);
        }
      }
    }
  }
  return { ids, scores };
}

// Exact nearest-code search on the CPU through onnxruntime, two ways to the same ids:
//
// - f32 GEMM: argmin_k ||q - c_k||^2 = argmin_k (||c_k||^2 - 2 q.c_k), one graph
//     Gemm(queries, chunk, transB=1, alpha=-2, C=chunkNorms) -> ArgMin(axis=1) and ReduceMin(axis=1)
//   run once per (codebook chunk, query batch). Codebook chunk and queries are graph INPUTS of one
//   session shared by every codebook: no session to build, nothing copied, so a codebook that is
//   searched once (a k-means step on a small set, an IVF cell) costs nothing to load. An f16
//   codebook stays f16 in memory: its chunks go in as stored and a Cast in the graph widens them
//   (its own session, see addNearestNodes).
// - int8 prefilter (prefilter.ts): the codebook quantized to int8 in pre-packed sessions, an error
//   bound, exact re-ranking of the few codes the bound cannot rule out. ~2-3x faster per search,
//   but building it costs about as much as searching ~1,000 queries with the f32 GEMM, so a
//   codebook that allows it (the backend's loadCodebook) builds it once it has been asked for
//   PREFILTER_AFTER_ROWS query rows in total (more for a small d; never below PREFILTER_MIN_CODES
//   codes), and keeps it for every later search while it pays: on codes int8 resolves poorly it
//   gives up (prefilter.ts).
//
// Memory stays bounded for any K and any number of queries. f32 GEMM: one [QUERY_BATCH x
// chunkRows] score block per run (at most 1,024 x 16,384 floats = 64 MB) and, for f16 codebooks,
// onnxruntime's CHUNK_ROWS x d f32 copy of a chunk (its Cast runs per query batch: ~5 ms of a
// full batch's ~60). The prefilter adds K x d bytes (its int8 codes); see its header.
// Never a Q x K matrix. The batch is fixed rather than sized to fill 64 MB: for a small codebook
// the score block then stays small, and ArgMin/ReduceMin reread it while it is still in cache.
// Measured on 2 cores, N = 200,000, K = 4,096, d = 768: 4,096-row batches 10.4 s, 2,048 10.1 s,
// 1,024 9.9 s, 512 9.6 s (medians of 3); smaller batches repack the codebook (Gemm's B) more
// often, so 1,024.
import * as os from 'node:os';
import type * as ort from 'onnxruntime-node';
import { onnxruntime } from '../onnxruntime.js';
import type { CodebookData, CodebookHandle, Matrix, RunControl } from '../backend.js';
import { GraphBuilder, float } from './onnx-graph.js';
import { Int8Prefilter, type SearchResult } from './prefilter.js';
import { checkFinite } from '../distances.js';
import { isHalf, rowsF32, valueCount } from '../tables.js';
import { halfTable } from '../../common/half.js';
import { UserError, throwIfCancelled } from '../../common/errors.js';

/** codebook rows per Gemm; a chunk of 16384 x 1152 f32 is 75 MB */
export const CHUNK_ROWS = 16384;
/** queries per run, whatever the codebook size (see the header) */
const QUERY_BATCH = 1024;
/** A codebook's int8 prefilter can pay only with this many codes: each query still evaluates
 *  ~5 codes exactly in JS, each worth ~200 x d f32 GEMM multiply-adds (measured: at K = 1,024 it
 *  lost to the f32 GEMM, at 4,096 it ran 1.8x faster) ... */
export const PREFILTER_MIN_CODES = 4096;
/** ... and pays for itself once the codebook has searched this many query rows in total
 *  (building it costs about one 1,024-row f32 search: quantizing and packing K x d values) ... */
export const PREFILTER_AFTER_ROWS = 1024;
/** ... and this many f32 GEMM multiply-adds (rows x K x d): building its sessions also costs a
 *  fixed ~4 ms, which a codebook of small d takes long to earn back */
const PREFILTER_AFTER_WORK = 2 ** 30;

export interface CpuCodebookOptions {
  /** 'never' (default): f32 GEMM only; 'when it pays': build the int8 prefilter once the rules
   *  above say so, and drop it if it stops paying; 'always': from the first search on, paying or
   *  not (tests) */
  prefilter?: 'never' | 'when it pays' | 'always';
  /** the prefilter's int8 range (tests): default int8CodeLevels() */
  prefilterLevels?: 127 | 63;
}

export class CpuCodebook implements CodebookHandle {
  readonly k: number;
  readonly d: number;
  /** the codes as loaded, f32 or f16 (never widened to f32 as a whole) */
  readonly source: CodebookData;
  /** ||c_k||^2 (f64 sums of the values as loaded) */
  readonly norm2: Float64Array;
  /** the same in f32, per chunk, as the f32 GEMM's bias */
  readonly chunks: { start: number; rows: number; norms: ort.Tensor }[] = [];
  readonly policy: NonNullable<CpuCodebookOptions['prefilter']>;
  private readonly levels: CpuCodebookOptions['prefilterLevels'];
  private searchedRows = 0;
  private prefilter: Promise<Int8Prefilter> | null = null;
  private prefilterDropped = false;
  private f16Session: Promise<ort.InferenceSession> | null = null;
  private disposed = false;

  constructor(data: CodebookData, options: CpuCodebookOptions = {}) {
    this.k = data.rows;
    this.d = data.cols;
    this.source = data;
    this.policy = options.prefilter ?? 'never';
    this.levels = options.prefilterLevels;
    if (this.k < 1 || this.d < 1) throw new UserError(`the codebook is empty (${this.k} x ${this.d}); expected at least one code of at least one dimension`);
    if (valueCount(data) !== this.k * this.d) throw new Error(`codebook data has ${valueCount(data)} values for ${this.k} x ${this.d}`);
    this.norm2 = rowSquaredNorms(data);
    const norms = Float32Array.from(this.norm2);
    const { Tensor } = onnxruntime();
    // f16 chunks are half as long: onnxruntime's arena holds a chunk's f32 copy (the Cast's
    // output) beside the score block, where full chunks cost ~50 MB more peak RSS at K = 131,072
    const chunkRows = isHalf(data) ? CHUNK_ROWS / 2 : CHUNK_ROWS;
    for (let start = 0; start < this.k; start += chunkRows) {
      const rows = Math.min(chunkRows, this.k - start);
      this.chunks.push({ start, rows, norms: new Tensor('float32', norms.subarray(start, start + rows), [rows]) });
    }
  }

  /** code `id` as f32: a view into an f32 codebook, a decoded copy of an f16 one */
  row(id: number): Float32Array {
    return this.rowsF32(id, 1);
  }

  /** rows [start, start + rows) as f32: a view for f32 data; f16 data is decoded into `scratch`
   *  (or a new array) */
  rowsF32(start: number, rows: number, scratch?: Float32Array): Float32Array {
    return rowsF32(this.source, start, rows, scratch);
  }

  /** The int8 prefilter if this codebook allows one and, with `rows` more searched, it pays. */
  prefilterFor(rows: number): Promise<Int8Prefilter> | null {
    this.searchedRows += rows;
    const pays = this.k >= PREFILTER_MIN_CODES && this.searchedRows >= PREFILTER_AFTER_ROWS &&
      this.searchedRows * this.k * this.d >= PREFILTER_AFTER_WORK;
    if (this.prefilterDropped || this.policy === 'never' || (this.policy === 'when it pays' && !pays)) return null;
    this.prefilter ??= Int8Prefilter.create(this.source, this.norm2, this.levels);
    return this.prefilter;
  }

  /** The f32 GEMM's session for an f16 codebook (its chunks go in as stored, see
   *  addNearestNodes), made on its first search and released with the codebook. */
  halfSession(): Promise<ort.InferenceSession> {
    this.f16Session ??= createSearchSession(os.availableParallelism(), 'float16');
    return this.f16Session;
  }

  /** whether searches go through the int8 prefilter now */
  get prefiltered(): boolean {
    return this.prefilter !== null;
  }

  /** Back to the f32 GEMM for good: the prefilter did not pay on these codes (see prefilter.ts). */
  dropPrefilter(): void {
    this.prefilterDropped = true;
    void this.prefilter?.then((p) => p.dispose(), () => undefined);
    this.prefilter = null;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  dispose(): void {
    this.disposed = true;
    this.chunks.length = 0;
    this.dropPrefilter();
    void this.f16Session?.then((session) => session.release(), () => undefined);
    this.f16Session = null;
  }
}

/** ||c_k||^2 of every code; refuses NaN and infinities. Four f64 sums per row: one sum's chain of
 *  dependent adds held the loop to a quarter of its speed. */
function rowSquaredNorms(data: CodebookData): Float64Array {
  const d = data.cols;
  const out = new Float64Array(data.rows);
  const table = halfTable();
  const half = isHalf(data) ? data.half : null, f32 = isHalf(data) ? null : data.data;
  for (let r = 0; r < data.rows; r++) {
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0, j = r * d;
    const end = j + d;
    if (half) {
      for (; j + 3 < end; j += 4) {
        const a = table[half[j]], b = table[half[j + 1]], c = table[half[j + 2]], e = table[half[j + 3]];
        s0 += a * a; s1 += b * b; s2 += c * c; s3 += e * e;
      }
      for (; j < end; j++) s0 += table[half[j]] ** 2;
    } else {
      const x = f32!;
      for (; j + 3 < end; j += 4) {
        s0 += x[j] * x[j]; s1 += x[j + 1] * x[j + 1]; s2 += x[j + 2] * x[j + 2]; s3 += x[j + 3] * x[j + 3];
      }
      for (; j < end; j++) s0 += x[j] * x[j];
    }
    const s = (s0 + s1) + (s2 + s3);
    if (!Number.isFinite(s)) throw new UserError(`code ${r} of the codebook has a non-finite value; expected finite numbers`);
    out[r] = s;
  }
  return out;
}

/** The search graph's nodes, names prefixed by `p`: inputs `queries` [Q, D], `codes` [K, D],
 *  `norms` [K] -> outputs `ids` [Q] (int64, first index on ties) and `best` [Q] (the score
 *  ||c||^2 - 2 q.c of that code). IVF search (ivf.ts) puts several copies in one graph. */
export function addNearestNodes(g: GraphBuilder, p = '', codes: 'float32' | 'float16' = 'float32'): void {
  g.input(`${p}queries`, 'float32', [`${p}Q`, 'D']);
  g.input(`${p}codes`, codes, [`${p}K`, 'D']);
  g.input(`${p}norms`, 'float32', [`${p}K`]);
  // f16 codes are widened in the graph: onnxruntime's Cast (F16C) decodes a 16,384 x 768 chunk in
  // ~5 ms where a table lookup in JS took ~30 (exact either way: every half is an f32)
  if (codes === 'float16') g.node('Cast', [`${p}codes`], [`${p}codes_f32`], { to: 1 /* float */ });
  g.node('Gemm', [`${p}queries`, codes === 'float16' ? `${p}codes_f32` : `${p}codes`, `${p}norms`], [`${p}scores`], { transB: 1, alpha: float(-2) });
  g.node('ArgMin', [`${p}scores`], [`${p}ids`], { axis: 1, keepdims: 0 });
  g.node('ReduceMin', [`${p}scores`], [`${p}best`], { axes: [1], keepdims: 0 });
  g.output(`${p}ids`, 'int64', [`${p}Q`]);
  g.output(`${p}best`, 'float32', [`${p}Q`]);
}

/** The f32 GEMM's session; `codes` 'float16' takes an f16 codebook's chunks as stored. */
export async function createSearchSession(threads = os.availableParallelism(), codes: 'float32' | 'float16' = 'float32'): Promise<ort.InferenceSession> {
  const g = new GraphBuilder('nearest_code');
  addNearestNodes(g, '', codes);
  return onnxruntime().InferenceSession.create(g.toModel(), {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // no spin-waiting between runs: a spinning pool takes the cores the decode workers (and other
    // processes tokenizing other shards) need; each run is long enough that waking costs nothing
    // measurable (BENCHMARKS.md, "Sharded tokenization")
    extra: { session: { intra_op: { allow_spinning: '0' } } },
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
                                    control?: RunControl): Promise<SearchResult> {
  if (cb.isDisposed) throw new Error('the codebook handle was disposed');
  if (queries.cols !== cb.d) {
    throw new UserError(`the vectors have ${queries.cols} dimensions but the codebook has ${cb.d}; use embeddings from the encoder the codebook was built with`);
  }
  const prefilter = cb.prefilterFor(queries.rows);
  if (!prefilter) {
    checkFinite(queries, 0, queries.rows);
    return searchF32(session, cb, queries, control);
  }
  const p = await prefilter;
  const result = await p.search(cb.source, queries, control, cb.policy !== 'always');
  // Once it stops paying, the rest of these queries and every later search of this codebook go
  // to the f32 GEMM.
  if (!p.paysOff) cb.dropPrefilter();
  if (result.searched < queries.rows) {
    const d = queries.cols, from = result.searched;
    const rest: Matrix = { rows: queries.rows - from, cols: d, data: queries.data.subarray(from * d) };
    checkFinite(rest, 0, rest.rows);
    const tail = await searchF32(session, cb, rest, control);
    result.ids.set(tail.ids, from);
    result.scores.set(tail.scores, from);
  }
  return { ids: result.ids, scores: result.scores };
}

async function searchF32(session: ort.InferenceSession, cb: CpuCodebook, queries: Matrix, control?: RunControl): Promise<SearchResult> {
  const n = queries.rows, d = cb.d;
  const ids = new Int32Array(n);
  const scores = new Float32Array(n).fill(Infinity);
  const { Tensor } = onnxruntime();
  const source = cb.source;
  const searcher = isHalf(source) ? await cb.halfSession() : session;
  // Chunks go in ascending code order and only a strictly lower score replaces the best so far,
  // so ties resolve to the lowest code index, as ArgMin does within a chunk.
  for (const chunk of cb.chunks) {
    throwIfCancelled(control?.signal);
    const codes = isHalf(source)
      ? new Tensor('float16', source.half.subarray(chunk.start * d, (chunk.start + chunk.rows) * d), [chunk.rows, d])
      : new Tensor('float32', source.data.subarray(chunk.start * d, (chunk.start + chunk.rows) * d), [chunk.rows, d]);
    for (let q0 = 0; q0 < n; q0 += QUERY_BATCH) {
      throwIfCancelled(control?.signal);
      const rows = Math.min(QUERY_BATCH, n - q0);
      const batch = new Tensor('float32', queries.data.subarray(q0 * d, (q0 + rows) * d), [rows, d]);
      const out = await searcher.run({ queries: batch, codes, norms: chunk.norms });
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

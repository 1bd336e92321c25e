// Exact nearest-code search at int8 speed. An int8 GEMM ranks every code approximately, a rigorous
// bound on its error says which codes can still be the nearest, and only those are re-ranked
// exactly (f64). The ids are the exact nearest codes, ties to the lowest index: nothing here is
// approximate except the order in which candidates are looked at.
//
// Why: onnxruntime's int8 GEMM (MatMulIntegerToFloat; MLAS with AVX512-VNNI) runs ~3x its f32 GEMM
// once the constant operand is pre-packed, and pre-packing needs the codes as a graph
// INITIALIZER: one session per chunk of the codebook, built once per codebook (BENCHMARKS.md).
//
// Quantization
//   code k, per row:  s_k = max_j |c_kj| / L,  ĉ_k = round(c_k / s_k) (int8),  c̃_k = s_k ĉ_k,
//                     e_k = ||c_k - c̃_k|| and n_k = ||c_k|| (both exact, f64).
//   a query batch:    DynamicQuantizeLinear gives uint8 q̂ with one scale t and zero point z,
//                     q̃ = t (q̂ - z); per query ||q̃|| and ||q - q̃|| come from the same graph.
//   The GEMM gives    a_ik = ||c_k||^2 - 2 q̃_i.c̃_k  (per-code scale and bias fused into its output).
// Bound
//   q.c - q̃.c̃ = q̃.(c - c̃) + (q - q̃).c, so with S_ik = ||c_k||^2 - 2 q_i.c_k (the squared distance
//   less ||q_i||^2, which ranks codes the same way) and Cauchy-Schwarz:
//     |S_ik - a_ik| <= beta_ik = 2 (||q̃_i|| e_k + ||q_i - q̃_i|| n_k) + rounding,
//   where `rounding` covers the f32 arithmetic around the exact int32 dot product (a few ulps of
//   ||c||^2 + 2 ||q̃|| ||c̃||, taken 16x over) and the f32 sums of the two query norms.
// Selection, per query and chunk, in the graph: the scores in groups of GROUP consecutive codes,
//   each group's minimum, the LIST_GROUPS groups with the smallest minima (TopK over GROUP x fewer
//   values than the chunk: a TopK over the whole chunk cost as much as the int8 GEMM at K = 4,096),
//   and those groups' scores. Then in JS: the code with the smallest a overall has S <= a + beta,
//   which rules out every code with a - beta above that; it is evaluated exactly (S in f64:
//   products of f32 values are exact in f64) and becomes `best`, then every listed code the bound
//   does not rule out (a - beta_ik <= best), each replacing best when lower, or equal with a lower
//   id. A chunk whose listed groups stop short of the chunk while the last listed minimum still has
//   a - beta_max <= best may hide a better code: its list is widened (WIDEN x more groups, at most
//   all) for that query, and the query resolved again. When no chunk is left in doubt, no code
//   outside the lists can be nearer than best or tie with it.
//   On embedding-like data (bench/embedding-data.ts, d = 768) a query evaluates ~5-7 codes and few
//   (query, chunk) pairs need widening.
//
// int8 levels L: 127 where the int8 GEMM is exact (x86 with VNNI or AMX: vpdpbusd sums into int32;
// arm64: widening multiplies). Elsewhere MLAS multiplies with vpmaddubsw, which saturates a pair
// of uint8 x int8 products at 16 bits: with |ĉ| <= 63 a pair stays below 2 x 255 x 63 = 32,130,
// so the integer result, and with it the bound, stays exact (a ~1.4x wider bound on embedding-like data).
//
// Memory beyond the codebook: onnxruntime's packed copy of the int8 codes (K x d bytes), 3 numbers
// per code, each chunk session's score block of SCORE_BLOCK floats (16 MB per 16,384 codes, ~1 KB
// per code: see sessionOptions), and per query batch LIST_GROUPS x GROUP scores per chunk (more for
// widened lists): never a Q x K matrix. A 500,000 x 1152 codebook: 576 MB of int8 codes and
// ~500 MB of score blocks beside its own 2.3 GB (1.15 GB as f16).
import * as fs from 'node:fs';
import * as os from 'node:os';
import type * as ort from 'onnxruntime-node';
import { onnxruntime } from '../onnxruntime.js';
import type { CodebookData, Matrix, RunControl } from '../backend.js';
import { GraphBuilder } from './onnx-graph.js';
import { checkFinite } from '../distances.js';
import { isHalf, rowsF32 } from '../tables.js';
import { halfTable } from '../../common/half.js';
import { UserError, throwIfCancelled } from '../../common/errors.js';

/** codebook rows per pre-packed int8 session (a multiple of GROUP) */
export const PREFILTER_CHUNK_ROWS = 16_384;
/** consecutive codes whose minimum score stands for them in the TopK */
const GROUP = 32;
/** groups each chunk lists per query before any widening */
const LIST_GROUPS = 16;
/** how many times more groups a widened list holds */
const WIDEN = 8;
/** floats in one run's score block (16 MB): sets the query rows per run */
const SCORE_BLOCK = 1 << 22;
/** at most this many query rows per run, however small the codebook */
const MAX_QUERY_ROWS = 4096;
/** relative allowance for the f32 rounding around the exact int32 dot products (~16 ulps) */
const ROUNDING = 2 ** -20;

/** The int8 range of the codes on this machine (see the header). */
export function int8CodeLevels(): 127 | 63 {
  if (process.arch === 'arm64') return 127;
  if (process.arch !== 'x64') return 63;
  try {
    const flags = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1] ?? '';
    return /\b(avx512_vnni|avx_vnni|amx_int8)\b/.test(flags) ? 127 : 63;
  } catch {
    return 63; // not Linux: nothing says the GEMM cannot saturate
  }
}

export interface SearchResult {
  ids: Int32Array;
  /** ||c||^2 - 2 q.c of the winner (f64 rounded to f32) */
  scores: Float32Array;
}

interface Chunk {
  start: number;
  rows: number;
  /** ceil(rows / GROUP): the last group is padded with codes that never score */
  groups: number;
  session: ort.InferenceSession;
  /** max e_k and n_k over the chunk: bound the codes beyond a list */
  maxError: number;
  maxNorm: number;
}

/** The query side of one batch: quantized rows and the bound's per-query factors. */
interface QuantizedBatch {
  q0: number;
  rows: number;
  a: ort.Tensor;
  scale: ort.Tensor;
  zeroPoint: ort.Tensor;
  /** upper bounds of ||q̃_i|| and ||q_i - q̃_i|| */
  quantNorm: Float64Array;
  errorNorm: Float64Array;
}

/** One chunk's list for one query: its groups with the smallest minima, ascending, and their scores. */
interface List {
  minima: Float32Array;
  groups: Int32Array;
  /** GROUP scores per listed group */
  scores: Float32Array;
}

export class Int8Prefilter {
  private constructor(
    readonly k: number,
    readonly d: number,
    private chunks: Chunk[],
    private quantizer: ort.InferenceSession | null,
    /** e_k = ||c_k - c̃_k|| */
    private readonly codeError: Float64Array,
    /** ||c_k||^2 */
    private readonly codeNorm2: Float64Array,
  ) {}

  /** Quantizes the codes and builds one pre-packed session per chunk. */
  static async create(codes: CodebookData, levels = int8CodeLevels(), threads = os.availableParallelism()): Promise<Int8Prefilter> {
    const k = codes.rows, d = codes.cols;
    const codeError = new Float64Array(k), codeNorm2 = new Float64Array(k);
    const chunks: Chunk[] = [];
    const quantizer = await onnxruntime().InferenceSession.create(quantizerGraph(d), sessionOptions(threads));
    try {
      for (let start = 0; start < k; start += PREFILTER_CHUNK_ROWS) {
        const rows = Math.min(PREFILTER_CHUNK_ROWS, k - start);
        const q = quantizeCodes(codes, start, rows, levels, codeError, codeNorm2);
        const session = await onnxruntime().InferenceSession.create(chunkGraph(q, d), sessionOptions(threads));
        let maxError = 0, maxNorm = 0;
        for (let r = start; r < start + rows; r++) {
          maxError = Math.max(maxError, codeError[r]);
          maxNorm = Math.max(maxNorm, Math.sqrt(codeNorm2[r]));
        }
        chunks.push({ start, rows, groups: Math.ceil(rows / GROUP), session, maxError, maxNorm });
      }
    } catch (err) {
      await Promise.all([quantizer.release(), ...chunks.map((c) => c.session.release())]);
      throw err;
    }
    return new Int8Prefilter(k, d, chunks, quantizer, codeError, codeNorm2);
  }

  /** Exact nearest code of every query; `codes` are the values this prefilter was built from. */
  async search(codes: CodebookData, queries: Matrix, control?: RunControl): Promise<SearchResult> {
    const quantizer = this.quantizer;
    if (!quantizer) throw new Error('the int8 prefilter was disposed');
    const n = queries.rows;
    const result: SearchResult = { ids: new Int32Array(n), scores: new Float32Array(n) };
    const batchRows = Math.max(1, Math.min(MAX_QUERY_ROWS, Math.floor(SCORE_BLOCK / Math.min(PREFILTER_CHUNK_ROWS, this.k))));
    const exact = new ExactScores(codes, queries, this.codeNorm2);
    for (let q0 = 0; q0 < n; q0 += batchRows) {
      throwIfCancelled(control?.signal);
      const batch = await this.quantize(quantizer, queries, q0, Math.min(batchRows, n - q0));
      await this.searchBatch(batch, exact, result, control);
    }
    return result;
  }

  private async quantize(quantizer: ort.InferenceSession, queries: Matrix, q0: number, rows: number): Promise<QuantizedBatch> {
    const d = this.d;
    const x = new (onnxruntime().Tensor)('float32', queries.data.subarray(q0 * d, (q0 + rows) * d), [rows, d]);
    const out = await quantizer.run({ x });
    const quantSq = out.quant_norm2.data as Float32Array, errorSq = out.error_norm2.data as Float32Array;
    // f32 sums of d squares: each is within d ulps of the exact sum; q̃ itself was rounded once.
    const sumSlack = 1 + d * 2 ** -22;
    const quantNorm = new Float64Array(rows), errorNorm = new Float64Array(rows);
    for (let i = 0; i < rows; i++) {
      if (!Number.isFinite(quantSq[i]) || !Number.isFinite(errorSq[i])) checkFinite(queries, q0 + i, q0 + i + 1);
      quantNorm[i] = Math.sqrt(quantSq[i] * sumSlack);
      errorNorm[i] = Math.sqrt(errorSq[i] * sumSlack) + 2 ** -22 * quantNorm[i];
    }
    return { q0, rows, a: out.a, scale: out.scale, zeroPoint: out.zero_point, quantNorm, errorNorm };
  }

  private async searchBatch(batch: QuantizedBatch, exact: ExactScores, result: SearchResult, control?: RunControl): Promise<void> {
    const lists: List[][] = []; // [chunk][query]
    for (const chunk of this.chunks) {
      throwIfCancelled(control?.signal);
      lists.push(await this.smallestGroups(chunk, batch, null, Math.min(LIST_GROUPS, chunk.groups)));
    }
    const maxBeta = new Float64Array(this.chunks.length);
    let pending = Array.from({ length: batch.rows }, (_, i) => i);
    while (pending.length > 0) {
      const widen = new Map<number, number[]>(); // chunk -> the queries whose list in it must grow
      for (const i of pending) {
        this.resolve(batch, i, lists, exact, result, maxBeta);
        for (let c = 0; c < this.chunks.length; c++) {
          const { minima } = lists[c][i];
          if (minima.length < this.chunks[c].groups && minima[minima.length - 1] - maxBeta[c] <= result.scores[batch.q0 + i]) {
            const queries = widen.get(c);
            if (queries) queries.push(i);
            else widen.set(c, [i]);
          }
        }
      }
      const touched = new Set<number>();
      for (const [c, queries] of widen) {
        throwIfCancelled(control?.signal);
        const chunk = this.chunks[c];
        const longest = Math.max(...queries.map((i) => lists[c][i].minima.length));
        const wider = await this.smallestGroups(chunk, batch, queries, Math.min(chunk.groups, longest * WIDEN));
        queries.forEach((i, r) => {
          lists[c][i] = wider[r];
          touched.add(i);
        });
      }
      pending = [...touched];
    }
  }

  /**
   * Query i of the batch from the lists (see the header): writes its best code and score into
   * `result`, and each chunk's beta_max for this query into `maxBeta` (to tell which lists are
   * too short).
   */
  private resolve(batch: QuantizedBatch, i: number, lists: List[][], exact: ExactScores, result: SearchResult, maxBeta: Float64Array): void {
    const qn = batch.quantNorm[i], en = batch.errorNorm[i];
    const query = batch.q0 + i;
    const beta = (error: number, norm: number): number =>
      2 * (qn * error + en * norm) + ROUNDING * (norm * norm + 2 * qn * (norm + error));
    let seedChunk = 0;
    for (let c = 0; c < this.chunks.length; c++) {
      maxBeta[c] = beta(this.chunks[c].maxError, this.chunks[c].maxNorm);
      if (lists[c][i].minima[0] < lists[seedChunk][i].minima[0]) seedChunk = c;
    }
    // the code behind the smallest minimum: evaluated first, it bounds every other candidate
    const seed = lists[seedChunk][i];
    let r = 0;
    while (seed.scores[r] !== seed.minima[0]) r++;
    let bestId = this.chunks[seedChunk].start + seed.groups[0] * GROUP + r;
    let best = exact.score(query, bestId);
    const seedId = bestId;
    for (let c = 0; c < this.chunks.length; c++) {
      const { minima, groups, scores } = lists[c][i];
      const start = this.chunks[c].start;
      for (let g = 0; g < minima.length && minima[g] - maxBeta[c] <= best; g++) {
        for (let r = 0; r < GROUP; r++) {
          const value = scores[g * GROUP + r];
          if (value - maxBeta[c] > best) continue; // padding scores +Infinity: always skipped
          const id = start + groups[g] * GROUP + r;
          if (id === seedId || value - beta(this.codeError[id], Math.sqrt(this.codeNorm2[id])) > best) continue;
          const s = exact.score(query, id);
          if (s < best || (s === best && id < bestId)) {
            best = s;
            bestId = id;
          }
        }
      }
    }
    result.ids[query] = bestId;
    result.scores[query] = best;
  }

  /** For the batch's queries (or the listed ones): chunk c's m groups with the smallest minima. */
  private async smallestGroups(chunk: Chunk, batch: QuantizedBatch, queries: number[] | null, m: number): Promise<List[]> {
    const d = this.d;
    let a = batch.a;
    if (queries) {
      const all = batch.a.data as Uint8Array, picked = new Uint8Array(queries.length * d);
      queries.forEach((i, r) => picked.set(all.subarray(i * d, (i + 1) * d), r * d));
      a = new (onnxruntime().Tensor)('uint8', picked, [queries.length, d]);
    }
    const k = new (onnxruntime().Tensor)('int64', BigInt64Array.of(BigInt(m)), [1]);
    const out = await chunk.session.run({ a, a_scale: batch.scale, a_zero_point: batch.zeroPoint, k });
    const minima = out.minima.data as Float32Array, groups = out.groups.data as Int32Array, scores = out.scores.data as Float32Array;
    const rows = queries ? queries.length : batch.rows;
    return Array.from({ length: rows }, (_, r) => ({
      minima: minima.subarray(r * m, (r + 1) * m),
      groups: groups.subarray(r * m, (r + 1) * m),
      scores: scores.subarray(r * m * GROUP, (r + 1) * m * GROUP),
    }));
  }

  async dispose(): Promise<void> {
    const sessions = [this.quantizer, ...this.chunks.map((c) => c.session)];
    this.quantizer = null;
    this.chunks = [];
    await Promise.all(sessions.map((s) => s?.release()));
  }
}

/** S = ||c||^2 - 2 q.c in f64 for one query and one code, from the f32 or f16 values. */
class ExactScores {
  private readonly half: Uint16Array | null;
  private readonly f32: Float32Array | null;
  private readonly table = halfTable();

  constructor(codes: CodebookData, private readonly queries: Matrix, private readonly norm2: Float64Array) {
    this.half = isHalf(codes) ? codes.half : null;
    this.f32 = isHalf(codes) ? null : codes.data;
  }

  score(query: number, id: number): number {
    const d = this.queries.cols, q = this.queries.data, qo = query * d, co = id * d;
    let a0 = 0, a1 = 0, a2 = 0, a3 = 0, j = 0;
    if (this.f32) {
      const c = this.f32;
      for (; j + 3 < d; j += 4) {
        a0 += q[qo + j] * c[co + j]; a1 += q[qo + j + 1] * c[co + j + 1];
        a2 += q[qo + j + 2] * c[co + j + 2]; a3 += q[qo + j + 3] * c[co + j + 3];
      }
      for (; j < d; j++) a0 += q[qo + j] * c[co + j];
    } else {
      const h = this.half!, t = this.table;
      for (; j + 3 < d; j += 4) {
        a0 += q[qo + j] * t[h[co + j]]; a1 += q[qo + j + 1] * t[h[co + j + 1]];
        a2 += q[qo + j + 2] * t[h[co + j + 2]]; a3 += q[qo + j + 3] * t[h[co + j + 3]];
      }
      for (; j < d; j++) a0 += q[qo + j] * t[h[co + j]];
    }
    return this.norm2[id] - 2 * ((a0 + a1) + (a2 + a3));
  }
}

/**
 * Rows [start, start + rows) as int8 with their scales; fills e_k and ||c_k||^2. The int8 codes are
 * row-major: the chunk graph transposes them once, at load, where onnxruntime folds constants.
 */
function quantizeCodes(codes: CodebookData, start: number, rows: number, levels: number,
                       codeError: Float64Array, codeNorm2: Float64Array): { q: Int8Array; scale: Float32Array; bias: Float32Array } {
  const d = codes.cols;
  // padded to whole groups with codes that score +Infinity (bias), so no group is partial
  const padded = Math.ceil(rows / GROUP) * GROUP;
  const q = new Int8Array(padded * d), scale = new Float32Array(padded), bias = new Float32Array(padded).fill(Infinity);
  const scratch = new Float32Array(d);
  for (let r = 0; r < rows; r++) {
    const k = start + r;
    const row = rowsF32(codes, k, 1, scratch);
    let amax = 0, norm2 = 0;
    for (let j = 0; j < d; j++) {
      const v = row[j];
      amax = Math.max(amax, Math.abs(v));
      norm2 += v * v;
    }
    if (!Number.isFinite(norm2)) throw new UserError(`code ${k} of the codebook has a non-finite value; expected finite numbers`);
    const s = Math.fround(amax / levels), inverse = s > 0 ? 1 / s : 0;
    let error2 = 0;
    for (let j = 0, qo = r * d; j < d; j++) {
      const v = row[j];
      const h = Math.round(v * inverse); // |v| <= amax, so |h| <= levels
      q[qo + j] = h;
      const e = v - h * s;
      error2 += e * e;
    }
    codeError[k] = Math.sqrt(error2);
    codeNorm2[k] = norm2;
    scale[r] = -2 * s;
    bias[r] = norm2;
  }
  return { q, scale, bias };
}

/** a = ||c||^2 - 2 q̃.c̃ for one chunk, then per query the k groups with the smallest minima
 *  (sorted; ties to the lower group) and their scores. */
function chunkGraph(codes: { q: Int8Array; scale: Float32Array; bias: Float32Array }, d: number): Uint8Array {
  const rows = codes.scale.length;
  const g = new GraphBuilder('int8_prefilter_chunk');
  g.input('a', 'uint8', ['Q', d]);
  g.input('a_scale', 'float32', []);
  g.input('a_zero_point', 'uint8', []);
  g.input('k', 'int64', [1]);
  g.initializer('codes', { type: 'int8', dims: [rows, d], data: codes.q });
  g.initializer('b_scale', { type: 'float32', dims: [rows], data: codes.scale });
  g.initializer('bias', { type: 'float32', dims: [rows], data: codes.bias });
  g.initializer('grouped_shape', { type: 'int64', dims: [3], data: BigInt64Array.of(0n, BigInt(rows / GROUP), BigInt(GROUP)) });
  g.initializer('last_axis', { type: 'int64', dims: [1], data: BigInt64Array.of(2n) });
  g.node('Transpose', ['codes'], ['codes_t'], { perm: [1, 0] });
  g.node('MatMulIntegerToFloat', ['a', 'codes_t', 'a_scale', 'b_scale', 'a_zero_point', '', 'bias'], ['approx'], {}, { domain: 'com.microsoft' });
  g.node('Reshape', ['approx', 'grouped_shape'], ['grouped']);
  g.node('ReduceMin', ['grouped'], ['group_minima'], { axes: [2], keepdims: 0 });
  g.node('TopK', ['group_minima', 'k'], ['minima', 'groups64'], { axis: 1, largest: 0, sorted: 1 });
  g.node('Unsqueeze', ['groups64', 'last_axis'], ['group_index']);
  g.node('GatherND', ['grouped', 'group_index'], ['scores'], { batch_dims: 1 });
  g.node('Cast', ['groups64'], ['groups'], { to: 6 /* int32 */ });
  g.output('minima', 'float32', ['Q', 'M']);
  g.output('groups', 'int32', ['Q', 'M']);
  g.output('scores', 'float32', ['Q', 'M', GROUP]);
  return g.toModel({ opsets: { 'com.microsoft': 1 } });
}

/** A query batch -> uint8 (one scale and zero point) plus ||q̃||^2 and ||q - q̃||^2 per query. */
function quantizerGraph(d: number): Uint8Array {
  const g = new GraphBuilder('int8_prefilter_queries');
  g.input('x', 'float32', ['Q', d]);
  g.node('DynamicQuantizeLinear', ['x'], ['a', 'scale', 'zero_point']);
  g.node('DequantizeLinear', ['a', 'scale', 'zero_point'], ['quantized']);
  g.node('Sub', ['x', 'quantized'], ['error']);
  g.node('ReduceSumSquare', ['quantized'], ['quant_norm2'], { axes: [1], keepdims: 0 });
  g.node('ReduceSumSquare', ['error'], ['error_norm2'], { axes: [1], keepdims: 0 });
  g.output('a', 'uint8', ['Q', d]);
  g.output('scale', 'float32', []);
  g.output('zero_point', 'uint8', []);
  g.output('quant_norm2', 'float32', ['Q']);
  g.output('error_norm2', 'float32', ['Q']);
  return g.toModel();
}

/**
 * Every chunk is its own session, run one after another. Without spinning, a finished session's
 * threads do not keep the cores busy while the next one runs. Each session's arena keeps its score
 * block (SCORE_BLOCK floats) between runs: without it every run maps the block anew (measured at
 * K = 131,072: 17% more CPU time, most of it page faults); with it the sessions hold K / chunk x
 * 16 MB, i.e. ~1 KB per code.
 */
function sessionOptions(threads: number): ort.InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
}

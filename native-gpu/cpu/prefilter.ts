// Exact nearest-code search at int8 speed. An int8 GEMM ranks every code approximately, a rigorous
// bound on its error says which codes can still be the nearest, and only those are re-ranked
// exactly (f64). The ids are the exact nearest codes, ties to the lowest index: nothing here is
// approximate except the order in which candidates are looked at.
//
// Why: onnxruntime's int8 GEMM (MatMulIntegerToFloat; MLAS with AVX512-VNNI) runs ~3x its f32 GEMM
// once the constant operand is pre-packed, and pre-packing needs the codes as graph INITIALIZERS:
// one session per CHUNKS_PER_SESSION chunks of the codebook, built once per codebook
// (BENCHMARKS.md). A session runs all its chunks: onnxruntime runs every node whatever the fetches.
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
// Memory beyond the codebook: onnxruntime's packed copy of the int8 codes (K x d bytes; while a
// session is built, its part's int8 codes twice more: ours and onnxruntime's unpacked copy), 3
// numbers per code, one score block of SCORE_BLOCK floats (64 MB) per session, i.e. per 131,072
// codes, and per query batch LIST_GROUPS x GROUP scores per chunk (more for widened lists): never a
// Q x K matrix. Freed blocks below glibc's mmap threshold stay in the process (see quantizeCodes),
// so what a build leaves behind shows in the peak RSS: BENCHMARKS.md, memory section.
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

/** codebook rows per GEMM (a multiple of GROUP): one score block per run */
export const PREFILTER_CHUNK_ROWS = 16_384;
/** chunks per onnxruntime session (see sessionOptions) */
const CHUNKS_PER_SESSION = 8;
export const PREFILTER_SESSION_ROWS = CHUNKS_PER_SESSION * PREFILTER_CHUNK_ROWS;
/** consecutive codes whose minimum score stands for them in the TopK */
const GROUP = 32;
/** groups each chunk lists per query before any widening */
const LIST_GROUPS = 16;
/** how many times more groups a widened list holds */
const WIDEN = 8;
/** floats in one run's score block (64 MB): sets the query rows per run (1,024 for a full chunk;
 *  measured at K = 16,384: 10-15% less CPU time than 256) */
const SCORE_BLOCK = 1 << 24;
/** at most this many query rows per run, however small the codebook */
const MAX_QUERY_ROWS = 4096;
/** relative allowance for the f32 rounding around the exact int32 dot products (~16 ulps) */
const ROUNDING = 2 ** -20;
// What pays, in multiply-adds of the f32 GEMM (measured on 2 cores, BENCHMARKS.md): the int8
// GEMM does INT8_SPEEDUP of its multiply-adds in the time of one, an exact evaluation's
// multiply-add in JS (~1 ns) takes the time of JS_MULTIPLY_ADD of them (~5 ps each).
const INT8_SPEEDUP = 3;
const JS_MULTIPLY_ADD = 200;
/** the prefilter must beat the f32 GEMM by this much to be kept */
const MIN_GAIN = 1.2;

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
  /** max e_k and n_k over the chunk: bound the codes beyond a list */
  maxError: number;
  maxNorm: number;
}

/** One session: consecutive chunks, each its own GEMM and selection, all run together. */
interface Part {
  session: ort.InferenceSession;
  /** indices into the chunks */
  first: number;
  count: number;
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
  /**
   * False once a batch costs more than the f32 GEMM would, over MIN_GAIN: on codes whose
   * coordinates int8 cannot resolve finely (the DCT features of photos: one large coefficient per
   * channel, the rest small) the bound is wide and nearly every code gets evaluated. The batch is
   * given up there, so the waste is at most about one batch's f32 search.
   */
  paysOff = true;

  private constructor(
    readonly k: number,
    readonly d: number,
    private readonly chunks: Chunk[],
    private parts: Part[],
    private quantizer: ort.InferenceSession | null,
    /** e_k = ||c_k - c̃_k|| */
    private readonly codeError: Float64Array,
    /** ||c_k||^2 */
    private readonly codeNorm2: Float64Array,
  ) {}

  /** Quantizes the codes (`codeNorm2`: their ||c_k||^2, f64) and builds the pre-packed sessions,
   *  one per CHUNKS_PER_SESSION chunks. */
  static async create(codes: CodebookData, codeNorm2: Float64Array, levels = int8CodeLevels(),
                      threads = os.availableParallelism()): Promise<Int8Prefilter> {
    const k = codes.rows, d = codes.cols;
    const codeError = new Float64Array(k);
    const chunks: Chunk[] = [];
    const parts: Part[] = [];
    const quantizer = await onnxruntime().InferenceSession.create(quantizerGraph(d), sessionOptions(threads));
    try {
      for (let partStart = 0; partStart < k; partStart += PREFILTER_SESSION_ROWS) {
        const first = chunks.length;
        const partEnd = Math.min(k, partStart + PREFILTER_SESSION_ROWS);
        // one buffer for the part's int8 codes, each chunk's block a view into it (see quantizeCodes)
        const partCodes = new Int8Array(Math.ceil((partEnd - partStart) / GROUP) * GROUP * d);
        const quantized: QuantizedCodes[] = [];
        for (let start = partStart; start < partEnd; start += PREFILTER_CHUNK_ROWS) {
          const rows = Math.min(PREFILTER_CHUNK_ROWS, k - start);
          const padded = Math.ceil(rows / GROUP) * GROUP;
          const into = partCodes.subarray((start - partStart) * d, (start - partStart + padded) * d);
          quantized.push(quantizeCodes(codes, start, rows, levels, codeNorm2, codeError, into));
          let maxError = 0, maxNorm = 0;
          for (let r = start; r < start + rows; r++) {
            maxError = Math.max(maxError, codeError[r]);
            maxNorm = Math.max(maxNorm, Math.sqrt(codeNorm2[r]));
          }
          chunks.push({ start, rows, groups: Math.ceil(rows / GROUP), maxError, maxNorm });
        }
        const session = await onnxruntime().InferenceSession.create(partGraph(quantized, d), sessionOptions(threads));
        parts.push({ session, first, count: quantized.length });
      }
    } catch (err) {
      await Promise.all([quantizer.release(), ...parts.map((p) => p.session.release())]);
      throw err;
    }
    return new Int8Prefilter(k, d, chunks, parts, quantizer, codeError, codeNorm2);
  }

  /**
   * Exact nearest code of the queries (`codes`: the values this prefilter was built from), batch
   * by batch, while the prefilter pays (see `paysOff`):
   * in a batch that does not, it stops and says how many rows it searched; the caller searches
   * the rest without it. `mayGiveUp` false: it never stops (tests).
   */
  async search(codes: CodebookData, queries: Matrix, control?: RunControl, mayGiveUp = true): Promise<SearchResult & { searched: number }> {
    const quantizer = this.quantizer;
    if (!quantizer) throw new Error('the int8 prefilter was disposed');
    const n = queries.rows;
    const result = { ids: new Int32Array(n), scores: new Float32Array(n), searched: 0 };
    const batchRows = Math.max(1, Math.min(MAX_QUERY_ROWS, Math.floor(SCORE_BLOCK / Math.min(PREFILTER_CHUNK_ROWS, this.k))));
    const exact = new ExactScores(codes, queries, this.codeNorm2);
    while (result.searched < n && this.paysOff) {
      throwIfCancelled(control?.signal);
      const rows = Math.min(batchRows, n - result.searched);
      const batch = await this.quantize(quantizer, queries, result.searched, rows);
      this.paysOff = await this.searchBatch(batch, exact, result, mayGiveUp, control);
      if (this.paysOff) result.searched += rows;
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

  /**
   * Resolves the batch into `result`, or gives up (false) as soon as it has cost more than the
   * f32 GEMM would over MIN_GAIN. Work counts in multiply-adds of the f32 GEMM, per dimension.
   */
  private async searchBatch(batch: QuantizedBatch, exact: ExactScores, result: SearchResult, mayGiveUp: boolean,
                            control?: RunControl): Promise<boolean> {
    const budget = mayGiveUp ? batch.rows * this.k / MIN_GAIN : Infinity;
    let work = batch.rows * this.k / INT8_SPEEDUP;
    const evaluatedBefore = exact.evaluated;
    const overBudget = () => work + (exact.evaluated - evaluatedBefore) * JS_MULTIPLY_ADD > budget;
    const lists: List[][] = []; // [chunk][query]
    for (const part of this.parts) {
      throwIfCancelled(control?.signal);
      const k = this.chunks.slice(part.first, part.first + part.count).map((c) => Math.min(LIST_GROUPS, c.groups));
      lists.push(...await this.smallestGroups(part, batch, null, k));
    }
    const maxBeta = new Float64Array(this.chunks.length);
    let pending = Array.from({ length: batch.rows }, (_, i) => i);
    while (pending.length > 0) {
      // chunk -> the queries whose list in it must grow
      const short = this.chunks.map((): number[] => []);
      for (const i of pending) {
        const best = this.resolve(batch, i, lists, exact, result, maxBeta);
        if (overBudget()) return false;
        for (let c = 0; c < this.chunks.length; c++) {
          const { minima } = lists[c][i];
          if (minima.length < this.chunks[c].groups && minima[minima.length - 1] - maxBeta[c] <= best) short[c].push(i);
        }
      }
      const touched = new Set<number>();
      for (const part of this.parts) {
        const partChunks = Array.from({ length: part.count }, (_, j) => part.first + j);
        const queries = [...new Set(partChunks.flatMap((c) => short[c]))].sort((x, y) => x - y);
        if (queries.length === 0) continue;
        throwIfCancelled(control?.signal);
        // every list of these queries in this part at least as long as before; the short ones WIDEN x
        const k = partChunks.map((c) => {
          const longest = Math.max(...queries.map((i) => lists[c][i].minima.length));
          return Math.min(this.chunks[c].groups, short[c].length > 0 ? longest * WIDEN : longest);
        });
        const wider = await this.smallestGroups(part, batch, queries, k);
        partChunks.forEach((c, j) => queries.forEach((i, r) => (lists[c][i] = wider[j][r])));
        for (const i of queries) touched.add(i);
        work += queries.length * partChunks.reduce((sum, c) => sum + this.chunks[c].rows, 0) / INT8_SPEEDUP;
        if (overBudget()) return false;
      }
      pending = [...touched];
    }
    return true;
  }

  /**
   * Query i of the batch from the lists (see the header): writes its best code and score into
   * `result`, each chunk's beta_max for this query into `maxBeta`, and returns the best score (f64:
   * with beta_max, it tells which lists are too short).
   */
  private resolve(batch: QuantizedBatch, i: number, lists: List[][], exact: ExactScores, result: SearchResult, maxBeta: Float64Array): number {
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
    return best;
  }

  /** For the batch's queries (or the listed ones), per chunk of the part: its k[j] groups with the
   *  smallest minima and their scores. */
  private async smallestGroups(part: Part, batch: QuantizedBatch, queries: number[] | null, k: number[]): Promise<List[][]> {
    const { Tensor } = onnxruntime();
    const d = this.d;
    let a = batch.a;
    if (queries) {
      const all = batch.a.data as Uint8Array, picked = new Uint8Array(queries.length * d);
      queries.forEach((i, r) => picked.set(all.subarray(i * d, (i + 1) * d), r * d));
      a = new Tensor('uint8', picked, [queries.length, d]);
    }
    const feeds: Record<string, ort.Tensor> = { a, a_scale: batch.scale, a_zero_point: batch.zeroPoint };
    k.forEach((m, j) => (feeds[`k${j}`] = new Tensor('int64', BigInt64Array.of(BigInt(m)), [1])));
    const out = await part.session.run(feeds);
    const rows = queries ? queries.length : batch.rows;
    return k.map((m, j) => {
      const minima = out[`minima${j}`].data as Float32Array, groups = out[`groups${j}`].data as Int32Array;
      const scores = out[`scores${j}`].data as Float32Array;
      return Array.from({ length: rows }, (_, r) => ({
        minima: minima.subarray(r * m, (r + 1) * m),
        groups: groups.subarray(r * m, (r + 1) * m),
        scores: scores.subarray(r * m * GROUP, (r + 1) * m * GROUP),
      }));
    });
  }

  async dispose(): Promise<void> {
    const sessions = [this.quantizer, ...this.parts.map((p) => p.session)];
    this.quantizer = null;
    this.parts = [];
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

  /** scores computed so far */
  evaluated = 0;

  score(query: number, id: number): number {
    this.evaluated++;
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

interface QuantizedCodes {
  /** the int8 codes transposed, [d, rows padded to whole groups]: the GEMM's B as it wants it */
  qT: Int8Array;
  /** -2 s_k: the GEMM's per-code scale */
  scale: Float32Array;
  /** ||c_k||^2, +Infinity for padding */
  bias: Float32Array;
}

/** 1.5 x 2^52: (x + ROUND) - ROUND is x rounded to an integer (ties to even) for |x| < 2^51, and
 *  measured ~8x faster than Math.round in this loop */
const ROUND = 6755399441055744;

/**
 * Rows [start, start + rows) as int8 with their scales, written transposed into `into`; fills e_k.
 * Transposed here rather than by a Transpose node that onnxruntime folds at load: folding keeps
 * a second copy of each chunk in the session while it is built, and those chunk-sized blocks
 * (~19 MB at d = 1152, below glibc's mmap threshold) stay in the process's heap after they are
 * freed; at K = 500,000 that was ~0.3 GB of peak RSS. For the same reason a part's chunks are
 * views into one buffer (large enough to be mapped and unmapped on its own). Rows are quantized
 * GROUP at a time into a small row-major tile, then written out column by column: GROUP
 * consecutive bytes per column rather than single bytes a chunk row apart.
 */
function quantizeCodes(codes: CodebookData, start: number, rows: number, levels: number,
                       codeNorm2: Float64Array, codeError: Float64Array, into: Int8Array): QuantizedCodes {
  const d = codes.cols;
  // padded to whole groups with codes that score +Infinity (bias), so no group is partial
  const padded = Math.ceil(rows / GROUP) * GROUP;
  if (into.length !== padded * d) throw new Error(`quantizeCodes: ${into.length} bytes for ${padded} x ${d} codes`);
  const scale = new Float32Array(padded), bias = new Float32Array(padded).fill(Infinity);
  const scratch = new Float32Array(d), tile = new Int8Array(GROUP * d);
  const into32 = new Int32Array(into.buffer, into.byteOffset, into.length >> 2);
  for (let r0 = 0; r0 < rows; r0 += GROUP) {
    const tileRows = Math.min(GROUP, rows - r0);
    for (let t = 0; t < tileRows; t++) {
      const r = r0 + t, k = start + r;
      const row = rowsF32(codes, k, 1, scratch);
      let amax = 0;
      for (let j = 0; j < d; j++) {
        const a = Math.abs(row[j]);
        if (a > amax) amax = a;
      }
      const s = Math.fround(amax / levels), inverse = s > 0 ? 1 / s : 0;
      let error2 = 0;
      for (let j = 0, to = t * d; j < d; j++) {
        const v = row[j];
        const h = (v * inverse + ROUND) - ROUND; // |v| <= amax, so |h| <= levels
        tile[to + j] = h;
        const e = v - h * s;
        error2 += e * e;
      }
      codeError[k] = Math.sqrt(error2);
      scale[r] = -2 * s;
      bias[r] = codeNorm2[k];
    }
    if (tileRows < GROUP) tile.fill(0, tileRows * d); // padding codes: all zero
    // four codes' bytes per 32-bit write (little-endian, as ONNX raw_data): columns start at
    // multiples of GROUP codes, so every write is aligned
    for (let j = 0; j < d; j++) {
      for (let t = 0, o = (j * padded + r0) >> 2; t < GROUP; t += 4, o++) {
        into32[o] = (tile[t * d + j] & 255) | (tile[(t + 1) * d + j] & 255) << 8 |
          (tile[(t + 2) * d + j] & 255) << 16 | tile[(t + 3) * d + j] << 24;
      }
    }
  }
  return { qT: into, scale, bias };
}

/** Per chunk j of a part: a = ||c||^2 - 2 q̃.c̃, then per query the k{j} groups with the smallest
 *  minima (sorted; ties to the lower group) and their scores. */
function partGraph(chunks: QuantizedCodes[], d: number): Uint8Array {
  const g = new GraphBuilder('int8_prefilter');
  g.input('a', 'uint8', ['Q', d]);
  g.input('a_scale', 'float32', []);
  g.input('a_zero_point', 'uint8', []);
  g.initializer('last_axis', { type: 'int64', dims: [1], data: BigInt64Array.of(2n) });
  chunks.forEach((codes, j) => {
    const rows = codes.scale.length;
    g.input(`k${j}`, 'int64', [1]);
    g.initializer(`codes_t${j}`, { type: 'int8', dims: [d, rows], data: codes.qT });
    g.initializer(`b_scale${j}`, { type: 'float32', dims: [rows], data: codes.scale });
    g.initializer(`bias${j}`, { type: 'float32', dims: [rows], data: codes.bias });
    g.initializer(`grouped_shape${j}`, { type: 'int64', dims: [3], data: BigInt64Array.of(0n, BigInt(rows / GROUP), BigInt(GROUP)) });
    g.node('MatMulIntegerToFloat', ['a', `codes_t${j}`, 'a_scale', `b_scale${j}`, 'a_zero_point', '', `bias${j}`], [`approx${j}`], {}, { domain: 'com.microsoft' });
    g.node('Reshape', [`approx${j}`, `grouped_shape${j}`], [`grouped${j}`]);
    g.node('ReduceMin', [`grouped${j}`], [`group_minima${j}`], { axes: [2], keepdims: 0 });
    g.node('TopK', [`group_minima${j}`, `k${j}`], [`minima${j}`, `groups64_${j}`], { axis: 1, largest: 0, sorted: 1 });
    g.node('Unsqueeze', [`groups64_${j}`, 'last_axis'], [`group_index${j}`]);
    g.node('GatherND', [`grouped${j}`, `group_index${j}`], [`scores${j}`], { batch_dims: 1 });
    g.node('Cast', [`groups64_${j}`], [`groups${j}`], { to: 6 /* int32 */ });
    g.output(`minima${j}`, 'float32', ['Q', `M${j}`]);
    g.output(`groups${j}`, 'int32', ['Q', `M${j}`]);
    g.output(`scores${j}`, 'float32', ['Q', `M${j}`, GROUP]);
  });
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
 * The sessions run one after another. Without spinning, a finished session's threads do not keep
 * the cores busy while the next one runs. Each session's arena keeps one score block (its chunks
 * run in turn and reuse it) between runs: without an arena every run maps the block anew
 * (measured at K = 131,072 with one session per chunk: 17% more CPU time, most of it page
 * faults), and one session per chunk would keep a block per chunk. Without a memory pattern: with
 * one, every run after the first asks the arena for one block holding all of the run's tensors,
 * which the first run's region cannot fit, so each arena grows a second region (~0.15 GB more peak
 * RSS over the four sessions of a 500,000-code codebook; the k-means iteration's CPU time stayed
 * within the noise of a loaded machine).
 */
function sessionOptions(threads: number): ort.InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    enableMemPattern: false,
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
}

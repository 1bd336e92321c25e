// IVF search on the CPU (the scheme is in ../ivf.ts). Two steps per batch of queries:
//   1. coarse: one onnxruntime graph, Gemm(queries, centroids, transB, alpha=-2, C=norms) -> TopK
//      (smallest nprobe, sorted), gives each query's nprobe nearest non-empty cells;
//   2. fine: for every cell, the queries that probe it are gathered into one block and searched
//      against the cell's codes (one Gemm + ArgMin per block), and each query keeps the best of
//      its cells.
// Each cell is a CpuCodebook over a view of the grouped table (its chunks and norms, as exact
// search has them), searched with exact search's f32 graph (nearest.ts addNearestNodes). The fine
// GEMMs are small (tens to hundreds of queries x hundreds of codes), so the session that runs
// them (createIvfSession) holds CELLS_PER_RUN copies of that graph side by side, eight cells per
// call, on ONE intra-op thread: per-call overhead was half the time of a small cell (one copy 103
// GFLOP/s, eight 142, at 128 queries x 362 codes x d 768); splitting a small GEMM over two threads
// cost more than it gained (K = 131,072, K1 = 362, nprobe 40, 729 queries: one thread 237 ms, two
// 369 ms, busy machine), onnxruntime's parallel executor over the copies was slower still, and
// during tokenize the other core decodes images. Exact search's int8 prefilter does not pay on
// cells this small. Memory beyond the codebook: CELLS_PER_RUN gathered blocks of at most
// GATHER_ROWS queries (and as many f16 decode scratches of a chunk), the [batch x nprobe] probe
// lists and a coarse score block of at most COARSE_SCORES floats.
//
// The coarse step is also what the WebGPU backend uses (webgpu/ivf.ts): it is ~1/(nprobe x mean
// cell size / K1) of the fine work, and the Gemm + TopK graph is already here.
import * as os from 'node:os';
import type * as ort from 'onnxruntime-node';
import { onnxruntime } from '../onnxruntime.js';
import type { CoarseData, CodebookData, IvfControl, IvfHandle, Matrix } from '../backend.js';
import { BestPerQuery, checkNprobe, gatherRows, groupByCell, queriesByCell, type CellLayout } from '../ivf.js';
import { isHalf, rowsF32 } from '../tables.js';
import { CpuCodebook, addNearestNodes } from './nearest.js';
import { checkFinite } from '../distances.js';
import { GraphBuilder, float } from './onnx-graph.js';
import { UserError, throwIfCancelled } from '../../common/errors.js';

/** queries per fine Gemm block (as nearest.ts's own query batch) */
const GATHER_ROWS = 1024;
/** fine GEMMs per session run (see the header) */
const CELLS_PER_RUN = 8;
/** queries per coarse-then-fine round: bounds the probe lists (batch x nprobe int32) */
export const IVF_BATCH = 65_536;
/** f16 codes are widened to f32 once at load up to this size (see CpuIvf.create) */
const DECODE_ONCE_BYTES = 512 * 2 ** 20;
/** floats in one coarse score block (64 MB) */
const COARSE_SCORES = 1 << 24;

/** The coarse step: each query's nprobe nearest non-empty cells, nearest first. */
export class CoarseQuantizer {
  private constructor(
    private session: ort.InferenceSession | null,
    private readonly centroids: ort.Tensor,
    private readonly norms: ort.Tensor,
    /** row r of `centroids` is cell cellIds[r] */
    private readonly cellIds: Int32Array,
    readonly d: number,
  ) {}

  /** `cells` of `centroids` (the non-empty ones) become the candidates. */
  static async create(centroids: CodebookData, cells: Int32Array, threads = os.availableParallelism()): Promise<CoarseQuantizer> {
    const d = centroids.cols;
    const data = new Float32Array(cells.length * d);
    const norms = new Float32Array(cells.length);
    cells.forEach((cell, r) => {
      const row = rowsF32(centroids, cell, 1);
      data.set(row, r * d);
      let s = 0;
      for (let j = 0; j < d; j++) s += row[j] * row[j];
      norms[r] = s;
    });
    const g = new GraphBuilder('ivf_coarse');
    g.input('queries', 'float32', ['Q', 'D']);
    g.input('centroids', 'float32', ['C', 'D']);
    g.input('norms', 'float32', ['C']);
    g.input('nprobe', 'int64', [1]);
    g.node('Gemm', ['queries', 'centroids', 'norms'], ['scores'], { transB: 1, alpha: float(-2) });
    // Smallest first; among equal scores TopK keeps the lower index first.
    g.node('TopK', ['scores', 'nprobe'], ['best', 'cells'], { axis: 1, largest: 0, sorted: 1 });
    g.output('best', 'float32', ['Q', 'P']);
    g.output('cells', 'int64', ['Q', 'P']);
    const session = await onnxruntime().InferenceSession.create(g.toModel(), {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
    return new CoarseQuantizer(
      session,
      new (onnxruntime().Tensor)('float32', data, [cells.length, d]),
      new (onnxruntime().Tensor)('float32', norms, [cells.length]),
      cells,
      d,
    );
  }

  /** candidate cells (non-empty ones) */
  get candidates(): number {
    return this.cellIds.length;
  }

  /** [queries.rows x nprobe] cell ids, each row nearest first; nprobe <= candidates */
  async probe(queries: Matrix, nprobe: number, signal?: AbortSignal): Promise<Int32Array> {
    if (!this.session) throw new Error('the IVF index was disposed');
    const { d } = this;
    const out = new Int32Array(queries.rows * nprobe);
    const k = new (onnxruntime().Tensor)('int64', BigInt64Array.of(BigInt(nprobe)), [1]);
    const batch = Math.max(1, Math.min(GATHER_ROWS, Math.floor(COARSE_SCORES / this.candidates)));
    for (let q0 = 0; q0 < queries.rows; q0 += batch) {
      throwIfCancelled(signal);
      const rows = Math.min(batch, queries.rows - q0);
      const q = new (onnxruntime().Tensor)('float32', queries.data.subarray(q0 * d, (q0 + rows) * d), [rows, d]);
      const result = await this.session.run({ queries: q, centroids: this.centroids, norms: this.norms, nprobe: k }, ['cells']);
      const picked = result.cells.data as BigInt64Array;
      for (let i = 0; i < rows * nprobe; i++) out[q0 * nprobe + i] = this.cellIds[Number(picked[i])];
    }
    return out;
  }

  async dispose(): Promise<void> {
    const s = this.session;
    this.session = null;
    await s?.release();
  }
}

export class CpuIvf implements IvfHandle {
  readonly k: number;
  readonly d: number;
  readonly cells: number;
  private disposed = false;

  private constructor(
    readonly layout: CellLayout,
    readonly coarse: CoarseQuantizer,
    /** cell c's codes as a codebook of their own (views of the grouped table); null when empty */
    readonly cellCodebooks: (CpuCodebook | null)[],
  ) {
    this.k = layout.grouped.rows;
    this.d = layout.grouped.cols;
    this.cells = layout.cells;
  }

  /** `decodeOnceBytes`: the f32 size up to which f16 codes are widened at load (tests lower it). */
  static async create(codes: CodebookData, coarse: CoarseData, decodeOnceBytes = DECODE_ONCE_BYTES): Promise<CpuIvf> {
    const layout = groupByCell(codes, coarse);
    const { grouped, cellStart, cells } = layout;
    const d = grouped.cols;
    // A cell is searched by a few queries at a time, so decoding an f16 cell at every search can
    // cost as much as its GEMM: f16 codes are decoded once, here, while their f32 copy is small.
    // Beyond that they stay f16 (a 500,000 x 1152 table would need 2.3 GB more) and each cell is
    // decoded once per search batch, which tokenize makes large (SEARCH_IMAGES).
    const table: CodebookData = isHalf(grouped) && grouped.half.length * 4 <= decodeOnceBytes
      ? { rows: grouped.rows, cols: d, data: rowsF32(grouped, 0, grouped.rows) }
      : grouped;
    const cellCodebooks: (CpuCodebook | null)[] = [];
    for (let c = 0; c < cells; c++) {
      const start = cellStart[c], rows = cellStart[c + 1] - start;
      if (rows === 0) {
        cellCodebooks.push(null);
        continue;
      }
      cellCodebooks.push(new CpuCodebook(isHalf(table)
        ? { rows, cols: d, half: table.half.subarray(start * d, (start + rows) * d) }
        : { rows, cols: d, data: table.data.subarray(start * d, (start + rows) * d) }));
    }
    return new CpuIvf(layout, await CoarseQuantizer.create(coarse.centroids, layout.nonEmpty), cellCodebooks);
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  private idleScratch: Float32Array[] | null = null;

  /** The fine step's CELLS_PER_RUN gather buffers (GATHER_ROWS queries each), kept between searches:
   *  a build calls searchIvf once per streamed block, and fresh buffers every call (25 MB at
   *  d = 768) piled up as garbage faster than it was collected. A search running meanwhile gets
   *  its own. */
  takeScratch(): Float32Array[] {
    const scratch = this.idleScratch ?? Array.from({ length: CELLS_PER_RUN }, () => new Float32Array(GATHER_ROWS * this.d));
    this.idleScratch = null;
    return scratch;
  }

  returnScratch(scratch: Float32Array[]): void {
    if (!this.disposed) this.idleScratch = scratch;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.idleScratch = null;
    for (const cb of this.cellCodebooks) cb?.dispose();
    void this.coarse.dispose();
  }
}

/** One GEMM of the fine step: a block of one cell's gathered queries against one chunk of its codes. */
interface FineItem {
  cell: number;
  chunk: number;
  /** the block's queries: members[from .. to) of the batch's per-cell lists */
  from: number;
  to: number;
}

/** Nearest code of every query among its nprobe nearest cells' codes: ids and grouped positions. */
export async function searchIvf(session: ort.InferenceSession, ivf: CpuIvf, queries: Matrix, control: IvfControl): Promise<BestPerQuery> {
  if (ivf.isDisposed) throw new Error('the IVF index was disposed');
  if (queries.cols !== ivf.d) {
    throw new UserError(`the vectors have ${queries.cols} dimensions but the codebook has ${ivf.d}; use embeddings from the encoder the codebook was built with`);
  }
  checkNprobe(control.nprobe, ivf.cells);
  checkFinite(queries, 0, queries.rows);
  // Only non-empty cells are candidates; probing more cells than hold codes adds nothing.
  const nprobe = Math.min(control.nprobe, ivf.coarse.candidates);
  // Per branch of the fine graph: its gathered queries (and, in searchCells, a scratch for f16 codes).
  const gathered = ivf.takeScratch();
  try {
    return await searchCells(session, ivf, queries, control, nprobe, gathered);
  } finally {
    ivf.returnScratch(gathered);
  }
}

async function searchCells(session: ort.InferenceSession, ivf: CpuIvf, queries: Matrix, control: IvfControl, nprobe: number, gathered: Float32Array[]): Promise<BestPerQuery> {
  const { order, cellStart, cells } = ivf.layout;
  const d = ivf.d;
  const { Tensor } = onnxruntime();
  const best = new BestPerQuery(queries.rows);
  const decoded: (Float32Array | undefined)[] = new Array(CELLS_PER_RUN);
  const idle = idleBranch(d);
  for (let q0 = 0; q0 < queries.rows; q0 += IVF_BATCH) {
    const rows = Math.min(IVF_BATCH, queries.rows - q0);
    const batch: Matrix = { rows, cols: d, data: queries.data.subarray(q0 * d, (q0 + rows) * d) };
    const probes = await ivf.coarse.probe(batch, nprobe, control.signal);
    const { start, members } = queriesByCell(probes, nprobe, cells);
    const items: FineItem[] = [];
    for (let c = 0; c < cells; c++) {
      const cb = ivf.cellCodebooks[c];
      if (!cb) continue;
      for (let from = start[c]; from < start[c + 1]; from += GATHER_ROWS) {
        for (let chunk = 0; chunk < cb.chunks.length; chunk++) items.push({ cell: c, chunk, from, to: Math.min(from + GATHER_ROWS, start[c + 1]) });
      }
    }
    for (let i0 = 0; i0 < items.length; i0 += CELLS_PER_RUN) {
      throwIfCancelled(control.signal);
      const run = items.slice(i0, i0 + CELLS_PER_RUN);
      const feeds: Record<string, ort.Tensor> = {};
      for (let b = 0; b < CELLS_PER_RUN; b++) {
        const item = run[b];
        if (!item) {
          Object.assign(feeds, { [`c${b}_queries`]: idle.queries, [`c${b}_codes`]: idle.codes, [`c${b}_norms`]: idle.norms });
          continue;
        }
        const cb = ivf.cellCodebooks[item.cell]!;
        const chunk = cb.chunks[item.chunk]!;
        const n = item.to - item.from;
        gatherRows(batch, members, item.from, item.to, gathered[b]!);
        if (isHalf(cb.source) && (decoded[b]?.length ?? 0) < chunk.rows * d) decoded[b] = new Float32Array(chunk.rows * d);
        feeds[`c${b}_queries`] = new Tensor('float32', gathered[b]!.subarray(0, n * d), [n, d]);
        feeds[`c${b}_codes`] = new Tensor('float32', cb.rowsF32(chunk.start, chunk.rows, decoded[b]).subarray(0, chunk.rows * d), [chunk.rows, d]);
        feeds[`c${b}_norms`] = chunk.norms;
      }
      const out = await session.run(feeds);
      run.forEach((item, b) => {
        const ids = out[`c${b}_ids`]!.data as BigInt64Array;
        const scores = out[`c${b}_best`]!.data as Float32Array;
        const first = cellStart[item.cell]! + ivf.cellCodebooks[item.cell]!.chunks[item.chunk]!.start;
        for (let i = 0; i < ids.length; i++) {
          const position = first + Number(ids[i]);
          best.offer(q0 + members[item.from + i]!, scores[i]!, order[position]!, position);
        }
      });
    }
  }
  best.checkComplete();
  return best;
}

/** Inputs of a branch with no work in a run: one zero query against one zero code. */
function idleBranch(d: number): { queries: ort.Tensor; codes: ort.Tensor; norms: ort.Tensor } {
  const { Tensor } = onnxruntime();
  return { queries: new Tensor('float32', new Float32Array(d), [1, d]), codes: new Tensor('float32', new Float32Array(d), [1, d]), norms: new Tensor('float32', new Float32Array(1), [1]) };
}

/** The session the fine step runs on (see the header): CELLS_PER_RUN copies of nearest.ts's search
 *  graph side by side, on one thread. */
export function createIvfSession(): Promise<ort.InferenceSession> {
  const g = new GraphBuilder('ivf_fine');
  for (let b = 0; b < CELLS_PER_RUN; b++) addNearestNodes(g, `c${b}_`);
  return onnxruntime().InferenceSession.create(g.toModel(), {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
}

// IVF search on WebGPU (the scheme is in ../ivf.ts). The codes are uploaded once in grouped order
// (a GpuCodebook of the grouped table, so a cell is a contiguous code range of one or two chunk
// buffers). Per batch of queries:
//   1. coarse: each query's nprobe nearest cells, on the CPU (cpu/ivf.ts's Gemm + TopK graph).
//      A documented choice: the coarse step is K1 codes per query against nprobe x K/K1 in the
//      fine step (~3% of the work at K = 500,000, K1 = 707, nprobe = 32), and it needs a top-n,
//      which the argmin kernel does not do;
//   2. fine: the queries are gathered cell by cell into one buffer (one row per (query, probed
//      cell) pair) and ONE dispatch per codebook chunk runs the grouped variant of the nearest
//      kernel (kernels/nearest.ts): a table entry per (cell, block of <= TILE_M of its queries)
//      and the cell's code range. The partial minima come back to the host, which keeps each
//      query's best over its cells, ties to the lowest code id as on the CPU.
import type { CoarseData, CodebookData, IvfControl, IvfHandle, Matrix } from '../backend.js';
import { BestPerQuery, checkNprobe, gatherRows, groupByCell, queriesByCell, type CellLayout } from '../ivf.js';
import { CoarseQuantizer } from '../cpu/ivf.js';
import { UserError, throwIfCancelled } from '../../common/errors.js';
import { run, type DispatchSpec } from './program.js';
import { groupedParams, nearestProgram, tileRows } from './kernels/nearest.js';
import { GpuCodebook, type CodeChunk } from './gpu-codebook.js';
import type { Runtime } from './runtime.js';

const BEST_BYTES = 8; // struct Best { score: f32, index: u32 }
const NO_CODE = 0xffffffff;

export class GpuIvf implements IvfHandle {
  readonly k: number;
  readonly d: number;
  readonly cells: number;

  private constructor(readonly layout: CellLayout, readonly codes: GpuCodebook, readonly coarse: CoarseQuantizer) {
    this.k = codes.k;
    this.d = codes.d;
    this.cells = layout.cells;
  }

  static async create(rt: Runtime, source: CodebookData, coarse: CoarseData): Promise<GpuIvf> {
    const layout = groupByCell(source, coarse);
    const codes = new GpuCodebook(rt, layout.grouped);
    try {
      return new GpuIvf(layout, codes, await CoarseQuantizer.create(coarse.centroids, layout.nonEmpty));
    } catch (err) {
      codes.dispose();
      throw err;
    }
  }

  get isDisposed(): boolean {
    return this.codes.isDisposed;
  }

  dispose(): void {
    if (this.codes.isDisposed) return;
    this.codes.dispose();
    void this.coarse.dispose();
  }
}

/** One table entry: a block of one cell's gathered queries against the cell's codes in one chunk. */
interface TileEntry {
  /** first row in the gathered query buffer, and rows (<= TILE_M) */
  queryStart: number;
  queryRows: number;
  /** first code relative to the chunk, and codes */
  codeStart: number;
  codeRows: number;
}

export async function searchIvf(rt: Runtime, ivf: GpuIvf, queries: Matrix, control: IvfControl): Promise<BestPerQuery> {
  if (ivf.isDisposed) throw new Error('the IVF index was disposed');
  if (queries.cols !== ivf.d) {
    throw new UserError(`the vectors have ${queries.cols} dimensions but the codebook has ${ivf.d}; use embeddings from the encoder the codebook was built with`);
  }
  if (queries.data.length !== queries.rows * queries.cols) throw new Error(`query matrix has ${queries.data.length} values for ${queries.rows} x ${queries.cols}`);
  checkNprobe(control.nprobe, ivf.cells);
  const nprobe = Math.min(control.nprobe, ivf.coarse.candidates);
  const { dPad, d } = ivf.codes;
  const best = new BestPerQuery(queries.rows);
  // Every query appears nprobe times in the gathered buffer, which must fit one binding.
  const batchRows = Math.max(1, Math.floor(rt.batchBytes / (dPad * 4 * nprobe)));
  for (let q0 = 0; q0 < queries.rows; q0 += batchRows) {
    throwIfCancelled(control.signal);
    const rows = Math.min(batchRows, queries.rows - q0);
    const batch: Matrix = { rows, cols: d, data: queries.data.subarray(q0 * d, (q0 + rows) * d) };
    const probes = await ivf.coarse.probe(batch, nprobe, control.signal);
    await searchBatch(rt, ivf, batch, probes, nprobe, (row, score, position) => {
      best.offer(q0 + row, score, ivf.layout.order[position], position);
    });
  }
  best.checkComplete();
  return best;
}

/** One grouped dispatch: up to maxComputeWorkgroupsPerDimension table entries of one chunk. */
interface Group {
  chunk: CodeChunk;
  entries: TileEntry[];
  codesPerSplit: number;
  splits: number;
}

/** The fine step of one batch; `offer(query row in batch, score, grouped position)` per candidate. */
async function searchBatch(rt: Runtime, ivf: GpuIvf, batch: Matrix, probes: Int32Array, nprobe: number,
                           offer: (row: number, score: number, position: number) => void): Promise<void> {
  const { codes, layout } = ivf;
  const { start, members } = queriesByCell(probes, nprobe, layout.cells);
  const gathered = new Float32Array(members.length * codes.dPad);
  gatherRows(batch, members, 0, members.length, gathered, codes.dPad);
  const groups = planGroups(rt, codes, tileEntries(rt, ivf, start));
  const tileQueries = tileRows(rt.tile).queries;
  const program = nearestProgram(rt.tile, codes.half, true);
  const partials = await run(rt, {
    // input 0: the gathered queries; input 1 + g: group g's table
    inputs: [gathered, ...groups.map((g) => table(g.entries))],
    outputs: groups.map((g) => ({ bytes: g.splits * g.entries.length * tileQueries * BEST_BYTES })),
    dispatches: groups.map((g, i): DispatchSpec => {
      const uniform = groupedParams({ codeBase: g.chunk.base, dVec: codes.dPad / 4, codesPerSplit: g.codesPerSplit, tileCount: g.entries.length });
      return { program, bindings: [{ input: 0 }, g.chunk.buffer, codes.norms, { output: i }, { uniform }, { input: 1 + i }], workgroups: [g.splits, g.entries.length] };
    }),
  });
  groups.forEach((g, i) => offerPartials(g, partials[i], tileQueries, codes.k, (row, score, position) => offer(members[row], score, position)));
}

/** Table entries per chunk: a cell whose codes straddle a chunk boundary gets one entry per side.
 *  `start[c]..start[c+1]` are cell c's rows in the gathered query buffer. */
function tileEntries(rt: Runtime, ivf: GpuIvf, start: Int32Array): TileEntry[][] {
  const { codes, layout } = ivf;
  const tileQueries = tileRows(rt.tile).queries;
  const perChunk: TileEntry[][] = codes.chunks.map(() => []);
  for (let c = 0; c < layout.cells; c++) {
    const codeFrom = layout.cellStart[c], codeTo = layout.cellStart[c + 1];
    if (codeFrom === codeTo) continue;
    for (let qs = start[c]; qs < start[c + 1]; qs += tileQueries) {
      const queryRows = Math.min(tileQueries, start[c + 1] - qs);
      codes.chunks.forEach((chunk, i) => {
        const from = Math.max(codeFrom, chunk.base), to = Math.min(codeTo, chunk.base + chunk.rows);
        if (from < to) perChunk[i].push({ queryStart: qs, queryRows, codeStart: from - chunk.base, codeRows: to - from });
      });
    }
  }
  return perChunk;
}

/** Cuts each chunk's entries into dispatches of at most maxComputeWorkgroupsPerDimension rows. */
function planGroups(rt: Runtime, codes: GpuCodebook, perChunk: TileEntry[][]): Group[] {
  const limits = rt.device.limits;
  const maxTiles = limits.maxComputeWorkgroupsPerDimension;
  const tileQueries = tileRows(rt.tile).queries;
  const groups: Group[] = [];
  codes.chunks.forEach((chunk, i) => {
    for (let t0 = 0; t0 < perChunk[i].length; t0 += maxTiles) {
      const entries = perChunk[i].slice(t0, t0 + maxTiles);
      const { codesPerSplit, splits } = splitCells(rt, entries);
      if (splits * entries.length * tileQueries * BEST_BYTES > limits.maxStorageBufferBindingSize) {
        throw new Error(`IVF search: ${splits} x ${entries.length} partial minima do not fit one binding`);
      }
      groups.push({ chunk, entries, codesPerSplit, splits });
    }
  });
  return groups;
}

/** The grouped kernel's table: one (first query, queries, first code, codes) per entry. */
function table(entries: TileEntry[]): Uint32Array {
  const out = new Uint32Array(entries.length * 4);
  entries.forEach((e, t) => out.set([e.queryStart, e.queryRows, e.codeStart, e.codeRows], 4 * t));
  return out;
}

/** Offers every real candidate of one group's partial minima; `row` is the gathered query row. */
function offerPartials(g: Group, raw: ArrayBuffer, tileQueries: number, k: number,
                       offer: (row: number, score: number, position: number) => void): void {
  const scores = new Float32Array(raw), indices = new Uint32Array(raw);
  g.entries.forEach((e, t) => {
    const usedSplits = Math.ceil(e.codeRows / g.codesPerSplit);
    for (let s = 0; s < usedSplits; s++) {
      const base = (s * g.entries.length + t) * tileQueries;
      for (let r = 0; r < e.queryRows; r++) {
        const index = indices[2 * (base + r) + 1];
        if (index === NO_CODE) continue;
        if (index >= k) throw new Error(`IVF search: the GPU returned code ${index} (K = ${k})`);
        offer(e.queryStart + r, scores[2 * (base + r)], index);
      }
    }
  });
}

/** Splits per table entry: as many as fill about targetWorkgroups with all entries, in whole
 *  code tiles; the longest range sets the count (shorter cells leave their last splits empty). */
function splitCells(rt: Runtime, entries: TileEntry[]): { codesPerSplit: number; splits: number } {
  const tileCodes = tileRows(rt.tile).codes;
  const longest = entries.reduce((m, e) => Math.max(m, e.codeRows), 1);
  const wanted = Math.max(1, Math.ceil(rt.targetWorkgroups / entries.length));
  let codesPerSplit = Math.max(tileCodes, Math.ceil(longest / wanted / tileCodes) * tileCodes);
  const maxSplits = rt.device.limits.maxComputeWorkgroupsPerDimension;
  if (Math.ceil(longest / codesPerSplit) > maxSplits) codesPerSplit = Math.ceil(longest / maxSplits / tileCodes) * tileCodes;
  return { codesPerSplit, splits: Math.ceil(longest / codesPerSplit) };
}

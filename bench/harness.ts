// Shared pieces of `npm run bench`: the benchmark cases, their data (written once as .npy so that
// FAISS and every backend of ours read the very same numbers), the FAISS reference results,
// timing, and the BENCHMARKS.md section writer. Each bench/*.bench.ts uses these.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { HalfMatrix, Matrix } from '../native-gpu/backend.js';
import { encodeNpyHeader, readNpy, readNpyHeader } from '../extension/engine/io/formats/npy.js';
import { writeFileAtomic } from '../extension/engine/io/atomic-write.js';
import { f32ToF16 } from '../common/half.js';
import { EmbeddingMixture, CHUNK_ROWS as MIXTURE_CHUNK } from './embedding-data.js';

/**
 * Search cases time exact search. `half`: ours searches the f16 copy of the codebook; `f32Gemm`:
 * ours without the int8 prefilter. Either makes the case a variant of `faissCase`, whose FAISS
 * run (IndexFlatL2 on the f32 codebook) it is compared with.
 */
export interface SearchCase {
  id: string; kind: 'search'; queries: number; k: number; d: number; warmup: number; runs: number;
  half?: boolean; f32Gemm?: boolean; faissCase?: string;
}
export interface KMeansCase { id: string; kind: 'kmeans'; points: number; k: number; d: number; warmup: number; runs: number }
export type BenchCase = SearchCase | KMeansCase;

/** the width of SigLIP-base / DCT-16 patch embeddings, and of SigLIP-so400m's (the paper's) */
const BASE = 768, SO400M = 1152;
// Search cases warm up twice: a codebook searches its first 1,024 query rows with the f32 GEMM and
// builds its int8 prefilter on the way (native-gpu/cpu/nearest.ts); the timed runs are what every
// later search costs.
const FULL: BenchCase[] = [
  { id: 'search-16k', kind: 'search', queries: 729, k: 16_384, d: BASE, warmup: 3, runs: 7 },
  { id: 'search-16k-f32', kind: 'search', queries: 729, k: 16_384, d: BASE, warmup: 3, runs: 7, f32Gemm: true, faissCase: 'search-16k' },
  { id: 'search-131k', kind: 'search', queries: 729, k: 131_072, d: BASE, warmup: 2, runs: 5 },
  { id: 'search-131k-f32', kind: 'search', queries: 729, k: 131_072, d: BASE, warmup: 2, runs: 3, f32Gemm: true, faissCase: 'search-131k' },
  { id: 'search-500k', kind: 'search', queries: 729, k: 500_000, d: SO400M, warmup: 2, runs: 3 },
  { id: 'search-500k-f32', kind: 'search', queries: 729, k: 500_000, d: SO400M, warmup: 1, runs: 3, f32Gemm: true, faissCase: 'search-500k' },
  { id: 'search-500k-f16', kind: 'search', queries: 729, k: 500_000, d: SO400M, warmup: 2, runs: 3, half: true, faissCase: 'search-500k' },
  { id: 'search-500k-f16-f32', kind: 'search', queries: 729, k: 500_000, d: SO400M, warmup: 1, runs: 3, half: true, f32Gemm: true, faissCase: 'search-500k' },
  { id: 'kmeans-iter', kind: 'kmeans', points: 200_000, k: 4_096, d: BASE, warmup: 1, runs: 3 },
];
/** `bench.sh --quick`: same shapes scaled down, to check the harness in seconds */
const QUICK: BenchCase[] = FULL.map((c) => c.kind === 'search'
  ? { ...c, k: Math.round(c.k / (c.d === BASE ? 16 : 64)), warmup: 2, runs: 2 }
  : { ...c, points: c.points / 16, k: c.k / 4, warmup: 1, runs: 2 });

export function benchCases(quick: boolean): BenchCase[] {
  return quick ? QUICK : FULL;
}

/** multiply-adds x 2 of the distance GEMM, the part every implementation must do */
export function flops(c: BenchCase): number {
  return 2 * (c.kind === 'search' ? c.queries : c.points) * c.k * c.d;
}

/**
 * The data, as .npy files in the bench folder, per width d: `vectors` (embedding-like rows from
 * bench/embedding-data.ts: the first k are a search case's codebook, the first N a k-means case's
 * points and their first K its starting centroids), `queries` (rows of the same mixture from row
 * 1,000,000 on: not codes, but from the same distribution), and `vectors-f16` (the vectors as
 * f16, for the f16 codebook case).
 */
export const dataFile = (kind: 'vectors' | 'queries' | 'vectors-f16', d: number): string => `${kind}-${d}.npy`;
const QUERY_START = 1_000_000;

export async function writeBenchData(dir: string, cases: BenchCase[]): Promise<void> {
  for (const d of new Set(cases.map((c) => c.d))) {
    const at = cases.filter((c) => c.d === d);
    const mixture = new EmbeddingMixture({ d });
    const vectors = Math.max(...at.map((c) => (c.kind === 'search' ? c.k : c.points)));
    const halves = Math.max(0, ...at.map((c) => (c.kind === 'search' && c.half ? c.k : 0)));
    const queries = Math.max(0, ...at.map((c) => (c.kind === 'search' ? c.queries : 0)));
    await writeRows(path.join(dir, dataFile('vectors', d)), mixture, 0, vectors, halves > 0 ? path.join(dir, dataFile('vectors-f16', d)) : null);
    if (queries > 0) await writeRows(path.join(dir, dataFile('queries', d)), mixture, QUERY_START, queries, null);
  }
}

/** Rows [start, start + rows) of the mixture as f32 .npy (and f16 .npy), written chunk by chunk. */
async function writeRows(file: string, mixture: EmbeddingMixture, start: number, rows: number, halfFile: string | null): Promise<void> {
  const d = mixture.d;
  const out = await fs.open(file, 'w');
  const half = halfFile ? await fs.open(halfFile, 'w') : null;
  try {
    await out.write(encodeNpyHeader([rows, d], 'float32'));
    await half?.write(encodeNpyHeader([rows, d], 'float16'));
    for (let r = 0; r < rows; r += MIXTURE_CHUNK) {
      const data = mixture.rows(start + r, Math.min(MIXTURE_CHUNK, rows - r));
      await out.write(new Uint8Array(data.buffer));
      await half?.write(new Uint8Array(f32ToF16(data).buffer));
    }
  } finally {
    await out.close();
    await half?.close();
  }
}

/** The first `rows` rows of an f32 or f16 .npy file (only those are read). */
export async function readRows(file: string, rows?: number): Promise<Matrix | HalfMatrix> {
  const header = await readNpyHeader(file);
  const [total, cols] = header.shape;
  const n = Math.min(rows ?? total, total);
  const bytes = new Uint8Array(n * cols * (header.dtype === 'float16' ? 2 : 4));
  const handle = await fs.open(file, 'r');
  try {
    for (let done = 0; done < bytes.length;) {
      const { bytesRead } = await handle.read(bytes, done, Math.min(bytes.length - done, 1 << 30), header.dataOffset + done);
      if (bytesRead === 0) throw new Error(`${file}: ends before row ${n}`);
      done += bytesRead;
    }
  } finally {
    await handle.close();
  }
  if (header.dtype === 'float16') return { rows: n, cols, half: new Uint16Array(bytes.buffer) };
  if (header.dtype !== 'float32') throw new Error(`${file}: expected float32 or float16, found ${header.dtype}`);
  return { rows: n, cols, data: new Float32Array(bytes.buffer) };
}

/** The first `rows` rows of an f32 .npy file. */
export async function readMatrix(dir: string, file: string, rows?: number): Promise<Matrix> {
  const m = await readRows(path.join(dir, file), rows);
  if ('half' in m) throw new Error(`${file}: expected float32, found float16`);
  return m;
}

export interface RunTimes { ms: number[]; median: number; warmupMs?: number[] }

/** One case timed: the runs, and the peak RSS of the process that ran only that case. */
export interface CaseTimes extends RunTimes { maxRssMb: number }

export interface FaissReport {
  versions: Record<string, string>;
  threads: number;
  blas: string;
  /** per case id; each case ran in a process of its own */
  results: Record<string, CaseTimes>;
}

/** what bench/faiss_ref.py printed for this run, plus the ids it found (for agreement checks) */
export async function readFaiss(dir: string): Promise<FaissReport> {
  return JSON.parse(await fs.readFile(path.join(dir, 'faiss.json'), 'utf8')) as FaissReport;
}

export async function faissIds(dir: string, caseId: string): Promise<Int32Array> {
  const a = await readNpy(path.join(dir, `faiss-ids-${caseId}.npy`));
  if (a.dtype === 'int64') return Int32Array.from(a.data as BigInt64Array, Number);
  return a.data as Int32Array;
}

/** fraction of positions where two id arrays agree (exact ties may legitimately differ) */
export function agreement(a: Int32Array, b: Int32Array): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}

/** Runs `fn` warmup times untimed (first onnxruntime/GPU runs are 3-5x slower), then `runs`
 *  timed runs; the median is what is reported. */
export async function timeRuns(fn: () => Promise<unknown>, warmup: number, runs: number): Promise<Required<RunTimes>> {
  const timed = async (): Promise<number> => {
    const t0 = performance.now();
    await fn();
    return performance.now() - t0;
  };
  const warmupMs: number[] = [];
  for (let i = 0; i < warmup; i++) warmupMs.push(await timed());
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) ms.push(await timed());
  const sorted = [...ms].sort((a, b) => a - b);
  return { ms, median: sorted[Math.floor(sorted.length / 2)], warmupMs };
}

export interface Row { name: string; flops: number; ours: CaseTimes; faiss: CaseTimes; agreement: number }

/** Markdown table: ours beside FAISS per case; speed ratio > 1 means we are faster. */
export function comparisonTable(rows: Row[]): string {
  const gf = (r: RunTimes, f: number) => (f / (r.median * 1e6)).toFixed(0);
  const lines = [
    '| case | ours ms | ours GFLOP/s | FAISS ms | FAISS GFLOP/s | speed ours/FAISS | ids equal to FAISS | peak RSS ours / FAISS, MB |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.name} | ${r.ours.median.toFixed(1)} | ${gf(r.ours, r.flops)} | ${r.faiss.median.toFixed(1)} | ` +
      `${gf(r.faiss, r.flops)} | ${(r.faiss.median / r.ours.median).toFixed(2)} | ${(100 * r.agreement).toFixed(2)}% | ` +
      `${r.ours.maxRssMb.toFixed(0)} / ${r.faiss.maxRssMb.toFixed(0)} |`),
  ];
  return lines.join('\n');
}

export function caseName(c: BenchCase): string {
  if (c.kind === 'kmeans') return `k-means iteration N=${c.points.toLocaleString('en')} K=${c.k.toLocaleString('en')} d=${c.d}`;
  const variant = (c.half ? ', f16 codebook' : '') + (c.f32Gemm ? ', f32 GEMM only' : '');
  return `exact search Q=${c.queries} K=${c.k.toLocaleString('en')} d=${c.d}${variant}`;
}

export const BENCHMARKS_MD = path.join(__dirname, '..', 'BENCHMARKS.md');

/** Replaces the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` in BENCHMARKS.md
 *  (appending the section when it is not there yet), leaving everything else as written. */
export async function updateSection(name: string, markdown: string): Promise<void> {
  const open = `<!-- bench:${name} -->`, close = `<!-- /bench:${name} -->`;
  const current = await fs.readFile(BENCHMARKS_MD, 'utf8').catch(() => '# Benchmarks\n');
  const block = `${open}\n${markdown.trim()}\n${close}`;
  const start = current.indexOf(open), end = current.indexOf(close);
  const next = start >= 0 && end > start
    ? current.slice(0, start) + block + current.slice(end + close.length)
    : `${current.trimEnd()}\n\n${block}\n`;
  await writeFileAtomic(BENCHMARKS_MD, next);
}

export function benchDir(): string {
  const dir = process.env.BENCH_DIR;
  if (!dir) throw new Error('BENCH_DIR is not set: run benchmarks through `npm run bench`');
  return dir;
}

export const quickMode = (): boolean => process.env.BENCH_QUICK === '1';

/** How bench.sh runs FAISS, for benches that start it themselves: Debian's python3, the OpenMP
 *  OpenBLAS first on the library path, OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset (BENCHMARKS.md). */
export function faissProcess(): { python: string; env: NodeJS.ProcessEnv } {
  const blas = process.env.BENCH_FAISS_BLAS_DIR;
  if (!blas) throw new Error('BENCH_FAISS_BLAS_DIR is not set: run benchmarks through `npm run bench`');
  const { OPENBLAS_CORETYPE: _coretype, OPENBLAS_L2_SIZE: _l2, ...env } = process.env;
  return { python: '/usr/bin/python3', env: { ...env, LD_LIBRARY_PATH: [blas, env.LD_LIBRARY_PATH].filter(Boolean).join(':') } };
}

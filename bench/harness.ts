// Shared pieces of `npm run bench`: the benchmark cases, their data (written once as .npy so that
// FAISS and every backend of ours read the very same numbers), the FAISS reference results,
// timing, and the BENCHMARKS.md section writer. Each bench/*.bench.ts uses these.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Matrix } from '../native-gpu/backend.js';
import { readNpy, writeNpy } from '../extension/engine/formats/npy.js';
import { writeFileAtomic } from '../extension/engine/atomic-write.js';
import { seededRandom } from '../extension/engine/sampling.js';

export interface SearchCase { id: string; kind: 'search'; queries: number; k: number; d: number; warmup: number; runs: number }
export interface KMeansCase { id: string; kind: 'kmeans'; points: number; k: number; d: number; warmup: number; runs: number }
export type BenchCase = SearchCase | KMeansCase;

const D = 768;
const FULL: BenchCase[] = [
  { id: 'search-16k', kind: 'search', queries: 729, k: 16_384, d: D, warmup: 2, runs: 5 },
  { id: 'search-131k', kind: 'search', queries: 729, k: 131_072, d: D, warmup: 1, runs: 3 },
  { id: 'kmeans-iter', kind: 'kmeans', points: 200_000, k: 4_096, d: D, warmup: 1, runs: 3 },
];
/** `bench.sh --quick`: same shapes scaled down, to check the harness in seconds */
const QUICK: BenchCase[] = FULL.map((c) => c.kind === 'search'
  ? { ...c, k: c.k / 16, warmup: 1, runs: 2 }
  : { ...c, points: c.points / 16, k: c.k / 4, warmup: 1, runs: 2 });

export function benchCases(quick: boolean): BenchCase[] {
  return quick ? QUICK : FULL;
}

/** multiply-adds x 2 of the distance GEMM, the part every implementation must do */
export function flops(c: BenchCase): number {
  return 2 * (c.kind === 'search' ? c.queries : c.points) * c.k * c.d;
}

/** The data every case reads, as files in `dir`: one codebook serves every search size (its
 *  first k rows); the k-means iteration starts from the first k points. Uniform random values:
 *  the search and assignment cost do not depend on the values. */
export const DATA_FILES = { queries: 'queries.npy', codebook: 'codebook.npy', points: 'points.npy' };

export async function writeBenchData(dir: string, cases: BenchCase[]): Promise<void> {
  const search = cases.filter((c): c is SearchCase => c.kind === 'search');
  const kmeansCase = cases.find((c): c is KMeansCase => c.kind === 'kmeans');
  const random = seededRandom(2025);
  const write = (file: string, rows: number, cols: number) => {
    const data = new Float32Array(rows * cols);
    for (let i = 0; i < data.length; i++) data[i] = random() * 2 - 1;
    return writeNpy(path.join(dir, file), { shape: [rows, cols], dtype: 'float32', data });
  };
  await write(DATA_FILES.queries, Math.max(...search.map((c) => c.queries)), D);
  await write(DATA_FILES.codebook, Math.max(...search.map((c) => c.k)), D);
  if (kmeansCase) await write(DATA_FILES.points, kmeansCase.points, D);
}

export async function readMatrix(dir: string, file: string, rows?: number): Promise<Matrix> {
  const a = await readNpy(path.join(dir, file));
  if (a.dtype !== 'float32') throw new Error(`${file}: expected float32, found ${a.dtype}`);
  const [total, cols] = a.shape;
  const n = Math.min(rows ?? total, total);
  return { rows: n, cols, data: (a.data as Float32Array).subarray(0, n * cols) };
}

export interface RunTimes { ms: number[]; median: number }

export interface FaissReport {
  versions: Record<string, string>;
  threads: number;
  blas: string;
  maxRssMb: number;
  results: Record<string, RunTimes>;
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
export async function timeRuns(fn: () => Promise<unknown>, warmup: number, runs: number): Promise<RunTimes> {
  for (let i = 0; i < warmup; i++) await fn();
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  const sorted = [...ms].sort((a, b) => a - b);
  return { ms, median: sorted[Math.floor(sorted.length / 2)] };
}

export interface Row { name: string; flops: number; ours: RunTimes; faiss: RunTimes; agreement: number }

/** Markdown table: ours beside FAISS per case; speed ratio > 1 means we are faster. */
export function comparisonTable(rows: Row[]): string {
  const gf = (r: RunTimes, f: number) => (f / (r.median * 1e6)).toFixed(0);
  const lines = [
    '| case | ours ms | ours GFLOP/s | FAISS ms | FAISS GFLOP/s | speed ours/FAISS | ids equal to FAISS |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.name} | ${r.ours.median.toFixed(1)} | ${gf(r.ours, r.flops)} | ${r.faiss.median.toFixed(1)} | ` +
      `${gf(r.faiss, r.flops)} | ${(r.faiss.median / r.ours.median).toFixed(2)} | ${(100 * r.agreement).toFixed(2)}% |`),
  ];
  return lines.join('\n');
}

export function caseName(c: BenchCase): string {
  return c.kind === 'search'
    ? `exact search Q=${c.queries} K=${c.k.toLocaleString('en')} d=${c.d}`
    : `k-means iteration N=${c.points.toLocaleString('en')} K=${c.k.toLocaleString('en')} d=${c.d}`;
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

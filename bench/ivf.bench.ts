// IVF search beside our exact search and FAISS's IndexIVFFlat, at the same recall@1, on
// embedding-like data (bench/embedding-data.ts: codes and queries drawn from one mixture).
//
// Per case, each side in its own process, one after the other (neither holds the codebook while
// the other runs):
//   1. ours (this file with --ours): K codes and Q queries from the mixture; the coarse level is
//      plain k-means over the codes (K1 about sqrt(K) cells), codes grouped by cell, as a two-level
//      build stores them; exact search (the ground truth, timed); IVF at increasing nprobe until
//      recall@1 reaches TARGET (and at least the fallback nprobe of an uncalibrated codebook, to report its recall), then the
//      first nprobe that reached it is timed. Codes, queries and exact answers go to the case
//      folder as .npy.
//   2. FAISS (bench/faiss_ivf.py): IndexIVFFlat with nlist = K1 trained on the same codes, searched
//      at increasing nprobe until it reaches the recall ours reached; that nprobe is timed.
// recall@1 counts a query found when it got exact search's code or one as near to f32 rounding
// (engine/search/search.ts foundNearest; the mixture has almost no such ties).
// Prints a table and rewrites the "ivf" section of BENCHMARKS.md.
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Matrix } from '../native-gpu/backend.js';
import { createCpuBackend } from '../native-gpu/cpu/index.js';
import { CpuCodebook, createSearchSession, searchNearest } from '../native-gpu/cpu/nearest.js';
import { writeNpy } from '../extension/engine/io/formats/npy.js';
import { shareFound } from '../extension/engine/search/search.js';
import { UNCALIBRATED_NPROBE } from '../extension/engine/core/defaults.js';
import { EmbeddingMixture } from './embedding-data.js';
import { coarseLevelOf } from './coarse-level.js';
import { benchDir, faissProcess, quickMode, timeRuns, updateSection, type RunTimes } from './harness.js';

interface IvfCase { id: string; k: number; d: number; cells: number; queries: number }

/** queries per case: one 27 x 27 image's patches, as the exact-search benchmarks */
const QUERIES = 729;
const FULL: IvfCase[] = [
  { id: 'ivf-131k', k: 131_072, d: 768, cells: 362, queries: QUERIES },
  { id: 'ivf-500k', k: 500_000, d: 1152, cells: 707, queries: QUERIES },
];
const QUICK: IvfCase[] = [{ id: 'ivf-quick', k: 8_192, d: 64, cells: 90, queries: QUERIES }];

const TARGET = 0.95;
const NPROBES = [1, 2, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 64, 96, 128, 192, 256, 384, 512];
/** queries come from rows of the mixture far past the codes' rows */
const QUERY_ROW = 100_000_000;
/** codes are written for FAISS in shards of this many rows */
const SHARD_ROWS = 65_536;

interface Point { nprobe: number; recall: number; ms: number }
interface OursReport {
  device: string;
  coarseSeconds: number;
  exact: RunTimes;
  exactF32: RunTimes;
  curve: Point[];
  timed: { nprobe: number; recall: number; times: RunTimes };
  maxRssMb: number;
}
interface FaissReport {
  faiss: string;
  threads: number;
  trainSeconds: number;
  addSeconds: number;
  curve: { nprobe: number; recall: number; seconds: number }[];
  timed: { nprobe: number; median: number } | null;
  maxRssMb: number;
}

/** Step 1, in a process of its own. */
async function runOurs(c: IvfCase, dir: string): Promise<OursReport> {
  const mixture = new EmbeddingMixture({ d: c.d });
  const queries: Matrix = { rows: c.queries, cols: c.d, data: mixture.rows(QUERY_ROW, c.queries) };
  const backend = await createCpuBackend();
  const started = performance.now();
  const { codes, coarse } = await coarseLevelOf({ rows: c.k, cols: c.d, data: mixture.rows(0, c.k) }, c.cells, backend, { seed: 1 });
  const coarseSeconds = (performance.now() - started) / 1000;
  for (let r0 = 0; r0 < c.k; r0 += SHARD_ROWS) {
    const rows = Math.min(SHARD_ROWS, c.k - r0);
    await writeNpy(path.join(dir, `codes-${String(r0 / SHARD_ROWS).padStart(4, '0')}.npy`), { shape: [rows, c.d], dtype: 'float32', data: codes.data.subarray(r0 * c.d, (r0 + rows) * c.d) });
  }
  await writeNpy(path.join(dir, 'queries.npy'), { shape: [c.queries, c.d], dtype: 'float32', data: queries.data });

  // Exact search as the backend runs it (int8 prefilter + exact re-ranking once it pays, which it
  // does from the warm-up on), and the plain f32 GEMM search it replaces.
  const flat = await backend.loadCodebook(codes);
  let truth = await backend.nearest(flat, queries);
  const exact = await timeRuns(async () => (truth = await backend.nearest(flat, queries)), 1, 3);
  flat.dispose();
  const f32Session = await createSearchSession();
  const f32Codebook = new CpuCodebook(codes);
  const exactF32 = await timeRuns(() => searchNearest(f32Session, f32Codebook, queries), 1, 3);
  f32Codebook.dispose();
  await f32Session.release();
  await writeNpy(path.join(dir, 'exact.npy'), { shape: [c.queries], dtype: 'int32', data: truth.ids });
  await writeNpy(path.join(dir, 'exact-dist.npy'), { shape: [c.queries], dtype: 'float32', data: truth.distances });

  const index = await backend.loadIvf(codes, coarse);
  await backend.nearestIvf(index, queries, { nprobe: 1 }); // warm-up
  const curve: Point[] = [];
  for (const nprobe of NPROBES.filter((p) => p <= c.cells)) {
    const t0 = performance.now();
    const r = await backend.nearestIvf(index, queries, { nprobe });
    curve.push({ nprobe, recall: shareFound(queries, codes, r, truth), ms: performance.now() - t0 });
    if (curve.at(-1)!.recall >= TARGET && nprobe >= UNCALIBRATED_NPROBE) break;
  }
  const first = curve.find((p) => p.recall >= TARGET) ?? curve.at(-1)!;
  const times = await timeRuns(() => backend.nearestIvf(index, queries, { nprobe: first.nprobe }), 1, 5);
  index.dispose();
  await backend.dispose();
  return { device: backend.device, coarseSeconds, exact, exactF32, curve, timed: { nprobe: first.nprobe, recall: first.recall, times }, maxRssMb: process.resourceUsage().maxRSS / 1024 };
}

/** Runs a child process and returns the JSON document it printed last on stdout. */
function child(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const p = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${command} ${args.join(' ')} exited with ${code}`));
      const last = out.trim().split('\n').at(-1) ?? '';
      try {
        resolve(JSON.parse(last));
      } catch {
        reject(new Error(`${command}: no JSON on stdout (${last.slice(0, 200)})`));
      }
    });
  });
}

const fmtMs = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);

async function main(): Promise<void> {
  if (process.argv[2] === '--ours') {
    console.log(JSON.stringify(await runOurs(JSON.parse(process.argv[3]!) as IvfCase, process.argv[4]!)));
    return;
  }
  const quick = quickMode();
  const faiss = faissProcess();
  const rows: string[] = [];
  const curves: string[] = [];
  let faissVersion = '', faissThreads = 0, device = '';
  for (const c of quick ? QUICK : FULL) {
    const dir = path.join(benchDir(), c.id);
    await fs.mkdir(dir, { recursive: true });
    try {
      const ours = (await child(process.execPath, [...process.execArgv, __filename, '--ours', JSON.stringify(c), dir])) as OursReport;
      console.log(`${c.id} ours: exact ${fmtMs(ours.exact.median)}, IVF nprobe ${ours.timed.nprobe} recall ${ours.timed.recall.toFixed(3)} ${fmtMs(ours.timed.times.median)}; ` +
        `curve ${ours.curve.map((p) => `${p.nprobe}:${p.recall.toFixed(3)}`).join(', ')}`);
      const nprobes = NPROBES.filter((p) => p <= c.cells).join(',');
      const ref = (await child(faiss.python, [path.join(__dirname, 'faiss_ivf.py'), dir, String(c.cells), nprobes],
        { ...faiss.env, TARGET_RECALL: String(ours.timed.recall) })) as FaissReport;
      faissVersion = ref.faiss;
      faissThreads = ref.threads;
      device = ours.device;
      const ivfMs = ours.timed.times.median;
      const faissPoint = ref.timed ? ref.curve.find((p) => p.nprobe === ref.timed!.nprobe)! : null;
      rows.push(`| K=${c.k.toLocaleString('en')} d=${c.d} K1=${c.cells} Q=${c.queries} | ${fmtMs(ours.exact.median)} / ${fmtMs(ours.exactF32.median)} | ${ours.timed.nprobe} | ${ours.timed.recall.toFixed(3)} | ` +
        `${fmtMs(ivfMs)} | **${(ours.exact.median / ivfMs).toFixed(1)}x** / ${(ours.exactF32.median / ivfMs).toFixed(1)}x | ` +
        (faissPoint && ref.timed
          ? `${faissPoint.nprobe} | ${faissPoint.recall.toFixed(3)} | ${fmtMs(ref.timed.median)} | **${(ref.timed.median / ivfMs).toFixed(1)}x** |`
          : `- | ${ref.curve.at(-1)?.recall.toFixed(3) ?? '-'} (max) | - | - |`) +
        ` ${ours.maxRssMb.toFixed(0)} / ${ref.maxRssMb.toFixed(0)} MB |`);
      curves.push(`- ${c.id}: ours (nprobe:recall) ${ours.curve.map((p) => `${p.nprobe}:${p.recall.toFixed(3)}`).join(', ')}; ` +
        `FAISS ${ref.curve.map((p) => `${p.nprobe}:${p.recall.toFixed(3)}`).join(', ')} (train ${ref.trainSeconds.toFixed(1)} s, add ${ref.addSeconds.toFixed(1)} s); ` +
        `our coarse level: k-means over the codes, ${ours.coarseSeconds.toFixed(1)} s`);
      console.log(rows.at(-1));
      console.log(curves.at(-1));
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }
  const section = [
    '## IVF search vs exact search and FAISS IndexIVFFlat (same recall@1)',
    '',
    '| case | ours exact: int8 prefilter / f32 GEMM | ours nprobe | recall@1 | ours IVF | IVF vs exact: prefilter / f32 GEMM | FAISS nprobe | FAISS recall@1 | FAISS IVF | ours vs FAISS | peak RSS ours / FAISS |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
    '',
    ...curves,
    '',
    `- data: embedding-like mixture (bench/embedding-data.ts, 20,000 components, Zipf sizes), codes = its first K rows, ` +
      `queries = ${QUERIES} rows far past them; recall@1 against our exact search (a query is found when it gets the exact code or one as near to f32 rounding)`,
    `- ours: ${device}; exact = the backend's search (int8 prefilter + exact re-ranking, built once the codebook has answered 1,024 queries) and, beside it, ` +
      `the plain f32 GEMM search (median of 3); IVF: coarse level = engine k-means over the codes (10 iterations), codes grouped by cell, fine step on one thread ` +
      `(native-gpu/cpu/ivf.ts); nprobe = the first of ${NPROBES.slice(0, 12).join(', ')}, ... reaching recall@1 ${TARGET}; median of 5 runs after a warm-up`,
    `- FAISS ${faissVersion} (Debian python3-faiss, ${faissThreads} OpenMP threads, OpenMP OpenBLAS): IndexIVFFlat(nlist = K1) trained on the same codes, ` +
      'nprobe = the first of the same ladder reaching our recall; median of 3 runs. Each side in its own process, one after the other',
    `- ${os.availableParallelism()} cores; ratios > 1 mean ours is faster`,
  ].join('\n');
  console.log(`\n${section}\n`);
  if (!quick && !process.env.BENCH_NO_WRITE) await updateSection('ivf', section);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

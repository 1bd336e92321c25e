// The CPU backend (onnxruntime) beside FAISS on the same data: exact nearest-code search (as the
// backend runs it, with the int8 prefilter; with the f32 GEMM only; on an f16 codebook) and one
// k-means iteration. Every case runs in a child process of its own, so its peak RSS is its own and
// no two cases' data share memory. Prints the table and rewrites the "cpu" section of BENCHMARKS.md.
//   node --import tsx bench/cpu.bench.ts            all cases (what bench.sh runs)
//   node --import tsx bench/cpu.bench.ts CASE_ID    one case; prints one line "CASE_RESULT {...}"
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Matrix } from '../native-gpu/backend.js';
import { createCpuBackend } from '../native-gpu/cpu/index.js';
import { CHUNK_ROWS, CpuCodebook, PREFILTER_AFTER_ROWS, createSearchSession, searchNearest } from '../native-gpu/cpu/nearest.js';
import { PREFILTER_CHUNK_ROWS, PREFILTER_SESSION_ROWS } from '../native-gpu/cpu/prefilter.js';
import { updateCentroids } from '../extension/engine/build/kmeans.js';
import {
  agreement, benchCases, benchDir, caseName, comparisonTable, dataFile, faissIds, flops, quickMode,
  readFaiss, readMatrix, readRows, timeRuns, updateSection, type BenchCase, type CaseTimes, type Row,
} from './harness.js';

interface CaseResult { ours: CaseTimes; warmupMs: number[]; agreement: number; device: string }

async function runCase(c: BenchCase): Promise<CaseResult> {
  const dir = benchDir();
  const backend = await createCpuBackend();
  let ids: Int32Array = new Int32Array(0);
  let run: () => Promise<unknown>;
  if (c.kind === 'search') {
    const queries = await readMatrix(dir, dataFile('queries', c.d), c.queries);
    const codes = await readRows(path.join(dir, dataFile(c.half ? 'vectors-f16' : 'vectors', c.d)), c.k);
    if (c.f32Gemm) {
      const session = await createSearchSession();
      const cb = new CpuCodebook(codes); // no prefilter
      run = async () => ({ ids } = await searchNearest(session, cb, queries));
    } else {
      const handle = await backend.loadCodebook(codes);
      run = async () => ({ ids } = await backend.nearest(handle, queries));
    }
  } else {
    const points = await readMatrix(dir, dataFile('vectors', c.d), c.points);
    const init: Matrix = { rows: c.k, cols: c.d, data: points.data.subarray(0, c.k * c.d) };
    // one Lloyd iteration as FAISS times it: upload the centroids, assign + accumulate, divide
    run = async () => {
      const handle = await backend.loadCodebook(init);
      const step = await backend.kmeansStep(handle, points);
      handle.dispose();
      ids = step.ids;
      return updateCentroids(init, step, 0);
    };
  }
  const times = await timeRuns(run, c.warmup, c.runs);
  const device = backend.device;
  await backend.dispose();
  return {
    ours: { ...times, maxRssMb: process.resourceUsage().maxRSS / 1024 },
    warmupMs: times.warmupMs,
    agreement: agreement(ids, await faissIds(dir, (c.kind === 'search' && c.faissCase) || c.id)),
    device,
  };
}

/** Runs one case in a child process (this file with the case id) and reads its result line. */
function runChild(c: BenchCase): CaseResult {
  const out = execFileSync(process.execPath, [...process.execArgv, __filename, c.id], {
    encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24,
  });
  const line = out.split('\n').find((l) => l.startsWith('CASE_RESULT '));
  if (!line) throw new Error(`bench case ${c.id} printed no result:\n${out}`);
  return JSON.parse(line.slice('CASE_RESULT '.length)) as CaseResult;
}

async function main(): Promise<void> {
  const cases = benchCases(quickMode());
  const only = process.argv[2];
  if (only) {
    const c = cases.find((x) => x.id === only);
    if (!c) throw new Error(`no bench case '${only}' (cases: ${cases.map((x) => x.id).join(', ')})`);
    console.log(`CASE_RESULT ${JSON.stringify(await runCase(c))}`);
    return;
  }
  const faiss = await readFaiss(benchDir());
  const rows: Row[] = [];
  const warmups: string[] = [];
  let device = '';
  for (const c of cases) {
    const result = runChild(c);
    device = result.device;
    const row = { name: caseName(c), flops: flops(c), ours: result.ours, faiss: faiss.results[(c.kind === 'search' && c.faissCase) || c.id], agreement: result.agreement };
    rows.push(row);
    console.log(comparisonTable([row]).split('\n').at(-1));
    if (c.kind === 'search' && !c.f32Gemm) warmups.push(`${c.k.toLocaleString('en')}${c.half ? ' f16' : ''}: ${result.warmupMs.map((ms) => (ms / 1000).toFixed(2)).join(' s, ')} s`);
  }

  const section = [
    '## CPU backend (onnxruntime) vs FAISS',
    '',
    comparisonTable(rows),
    '',
    `- ours: ${device}. Exact search as the backend runs it: the int8 prefilter (native-gpu/cpu/prefilter.ts: ` +
      `MatMulIntegerToFloat against int8 codes pre-packed in sessions of ${PREFILTER_SESSION_ROWS.toLocaleString('en')} codes, ` +
      `the smallest group minima per ${PREFILTER_CHUNK_ROWS.toLocaleString('en')}-code chunk, an error bound, exact f64 re-ranking ` +
      `of the codes the bound cannot rule out) once a codebook has searched ${PREFILTER_AFTER_ROWS.toLocaleString('en')} query rows. ` +
      `"f32 GEMM only": Gemm(transB, alpha=-2, C=norms) -> ArgMin/ReduceMin per ${CHUNK_ROWS.toLocaleString('en')}-row chunk, ` +
      'codebook and queries fed as graph inputs. k-means: the same search, then the per-code sums',
    `- warm-up searches per codebook (the first runs the f32 GEMM, the one that crosses ${PREFILTER_AFTER_ROWS.toLocaleString('en')} rows ` +
      `also builds the prefilter; FAISS's index.add is not timed either): ${warmups.join('; ')}`,
    `- FAISS ${faiss.versions.faiss} (Debian python3-faiss), numpy ${faiss.versions.numpy}, ${faiss.threads} OpenMP threads, ` +
      `BLAS: ${faiss.blas}; IndexFlatL2.search(k=1) and faiss.Kmeans(niter=1, init_centroids); the f16 row compares with ` +
      'IndexFlatL2 on the f32 codebook',
    '- FAISS runs with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (this machine may set them to work around old OpenBLAS ' +
      'bugs; they select a slower kernel); nothing else is changed for either side',
    '- peak RSS: each case in a process of its own, its data (codebook, queries or points) included',
    `- GFLOP/s counts the distance GEMM only (2 x queries x K x d; the int8 prefilter does those multiply-adds in int8); ` +
      `${os.availableParallelism()} cores shared by both sides, run one after the other`,
  ].join('\n');
  console.log(`\n${section}\n`);
  if (!quickMode()) await updateSection('cpu', section);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

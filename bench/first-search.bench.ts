// One image against a big codebook, as a user runs it: `unicode2 search --exact` of 729 query
// vectors (one 27 x 27 image) against an f16 codebook file, the whole process timed from its start
// to its exit, beside a FAISS process doing the same (bench/faiss_first_search.py: read the f16
// table, widen, IndexFlatL2.add, search, save). The two alternate, round by round, which goes
// first; the load average is recorded with each round (the machine is shared). Then, in a process
// of ours timed from the inside (the `inner` mode below): opening the codebook (reading it,
// checking it, loading it on the CPU backend) against the bytes read, the first search of the
// process, and a warm one (the same image searched again after the int8 prefilter is built).
// Rewrites the "first-search" section of BENCHMARKS.md.
//
//   node --import tsx bench/first-search.bench.ts          (through `npm run bench`: BENCH_DIR set;
//                                                           BENCH_FIRST_SEARCH_K=131072: one case)
//   node --import tsx bench/first-search.bench.ts inner CODEBOOK QUERIES
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createCpuBackend } from '../native-gpu/cpu/index.js';
import { f32ToF16 } from '../common/half.js';
import { inMemory, readCodebook, writeCodebook, type Codebook } from '../extension/engine/codebook/codebook.js';
import type { CodebookHandle } from '../native-gpu/backend.js';
import { readNpy, writeNpy } from '../extension/engine/io/formats/npy.js';
import type { EncoderDescriptor } from '../extension/engine/embed/encoders/index.js';
import { EmbeddingMixture, CHUNK_ROWS as MIXTURE_CHUNK } from './embedding-data.js';
import { agreement, benchDir, faissProcess, quickMode, updateSection } from './harness.js';

const ROOT = path.join(__dirname, '..');
const CLI = path.join(ROOT, 'dist/cli.js');
const QUERIES = 729;
/** queries come from the mixture's stream from this row on: not codes, the same distribution */
const QUERY_START = 1_000_000;
/** BENCH_FIRST_SEARCH_K=131072 runs that case only (the 500,000 one takes ~4x as long) */
const ONLY_K = process.env.BENCH_FIRST_SEARCH_K?.split(',').map(Number);
const CASES = (quickMode() ? [{ k: 8_192, d: 768 }] : [{ k: 131_072, d: 768 }, { k: 500_000, d: 1152 }])
  .filter((c) => !ONLY_K || ONLY_K.includes(c.k));
const ROUNDS = quickMode() ? 2 : 5;
const INNER_ROUNDS = quickMode() ? 1 : 3;
/** searches of the one image in the inner process: the first, the second (which builds the int8
 *  prefilter: 1,024 rows searched), then warm ones */
const SEARCHES = 5;

interface Files { codebook: string; queries: string; frozenBytes: number }

/** An f16 codebook file written by the product's own writer, and one image's queries. */
async function writeCase(dir: string, k: number, d: number): Promise<Files> {
  const mixture = new EmbeddingMixture({ d });
  const half = new Uint16Array(k * d);
  for (let r = 0; r < k; r += MIXTURE_CHUNK) half.set(f32ToF16(mixture.rows(r, Math.min(MIXTURE_CHUNK, k - r))), r * d);
  const frozen = { rows: k, cols: d, half };
  const encoder = { kind: 'onnx', id: 'external', patch: 0, inputSize: [0, 0], d } as unknown as EncoderDescriptor;
  const meta = {
    formatVersion: 1 as const, encoder, k, d, lambda: 0, iterations: 0, seed: 0, corpusFingerprint: 'first-search-bench',
    atlas: 'none' as const, createdAt: new Date(0).toISOString(),
  };
  const codebook = path.join(dir, `codebook-${k}-${d}.safetensors`), queries = path.join(dir, `queries-${d}.npy`);
  await writeCodebook(codebook, { frozen, trainable: inMemory(frozen), counts: null, meta });
  await writeNpy(queries, { shape: [QUERIES, d], dtype: 'float32', data: mixture.rows(QUERY_START, QUERIES) });
  return { codebook, queries, frozenBytes: half.byteLength };
}

interface Whole { seconds: number; peakMb: number; json: Record<string, unknown> }

/** A command as its own process under /usr/bin/time -v: wall seconds from spawn to exit, peak RSS. */
function whole(file: string, args: string[], env?: NodeJS.ProcessEnv): Promise<Whole> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    execFile('/usr/bin/time', ['-v', file, ...args], { maxBuffer: 1 << 26, env }, (err, stdout, stderr) => {
      const seconds = (performance.now() - t0) / 1000;
      if (err) return reject(new Error(`${file} ${args.join(' ')}: ${err.message}\n${stderr}`));
      const kb = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
      if (!kb) return reject(new Error('no peak RSS in /usr/bin/time\'s report'));
      resolve({ seconds, peakMb: Number(kb[1]) / 1024, json: JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown> });
    });
  });
}

/** ms of wall time, and of CPU time (all threads; less bent by other processes on a shared machine) */
interface Phase { ms: number; cpuMs: number }
interface Inner { read: Phase; load: Phase; searches: Phase[] }

async function timed(fn: () => Promise<unknown>): Promise<Phase> {
  const c0 = process.cpuUsage(), t0 = performance.now();
  await fn();
  const c = process.cpuUsage(c0);
  return { ms: performance.now() - t0, cpuMs: (c.user + c.system) / 1000 };
}

/** `inner` mode: our phases timed inside one process (JSON on stdout). */
async function inner(codebookFile: string, queriesFile: string): Promise<void> {
  const q = await readNpy(queriesFile);
  const queries = { rows: q.shape[0]!, cols: q.shape[1]!, data: q.data as Float32Array };
  const backend = await createCpuBackend();
  let cb!: Codebook, handle!: CodebookHandle;
  const read = await timed(async () => (cb = await readCodebook(codebookFile)));
  const load = await timed(async () => (handle = await backend.loadCodebook(cb.frozen)));
  const searches: Phase[] = [];
  for (let i = 0; i < SEARCHES; i++) searches.push(await timed(() => backend.nearest(handle, queries)));
  handle.dispose();
  await backend.dispose();
  console.log(JSON.stringify({ read, load, searches } satisfies Inner));
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const load = (): number => os.loadavg()[0]!;

interface CaseResult {
  k: number; d: number; frozenGb: number;
  ours: Whole[]; faiss: Whole[]; inner: Inner[]; loads: number[]; idsEqual: number;
}

/** One case: its files, then rounds with each side in its own process, alternating, then ours from the inside. */
async function runCase(dir: string, k: number, d: number): Promise<CaseResult> {
  const files = await writeCase(dir, k, d);
  const faiss = faissProcess();
  const oursOut = path.join(dir, 'ours.npy'), faissOut = path.join(dir, 'faiss.npy');
  const runOurs = () => whole(process.execPath, [CLI, 'search', '--exact', '--codebook', files.codebook, '--queries', files.queries,
    '--out', oursOut, '--json', '--quiet', '--device', 'cpu']);
  const runFaiss = () => whole(faiss.python, [path.join(__dirname, 'faiss_first_search.py'), files.codebook, files.queries, faissOut], faiss.env);
  // one untimed run of each: the file in the page cache for both, as for a user who just wrote it
  await runOurs();
  await runFaiss();
  const result: CaseResult = { k, d, frozenGb: files.frozenBytes / 1e9, ours: [], faiss: [], inner: [], loads: [], idsEqual: 0 };
  for (let r = 0; r < ROUNDS; r++) {
    result.loads.push(load());
    for (const side of r % 2 === 0 ? ['ours', 'faiss'] as const : ['faiss', 'ours'] as const) {
      const m = side === 'ours' ? await runOurs() : await runFaiss();
      result[side].push(m);
      console.log(`K=${k} d=${d} round ${r + 1} ${side}: ${m.seconds.toFixed(2)} s, peak ${m.peakMb.toFixed(0)} MB, load ${load().toFixed(2)}`);
    }
  }
  const ids = async (file: string) => Int32Array.from((await readNpy(file)).data as Int32Array);
  result.idsEqual = agreement(await ids(oursOut), await ids(faissOut));
  for (let r = 0; r < INNER_ROUNDS; r++) {
    const m = await whole(process.execPath, ['--import', 'tsx', __filename, 'inner', files.codebook, files.queries]);
    result.inner.push(m.json as unknown as Inner);
    console.log(`K=${k} d=${d} inner ${r + 1}: ${JSON.stringify(m.json)}`);
  }
  await fs.rm(files.codebook);
  return result;
}

function row(c: CaseResult): string {
  const ours = median(c.ours.map((m) => m.seconds)), faiss = median(c.faiss.map((m) => m.seconds));
  const oursSearch = median(c.ours.map((m) => m.json.seconds as number));
  const faissSearch = median(c.faiss.map((m) => m.json.search as number));
  const open = median(c.inner.map((i) => i.read.ms + i.load.ms)) / 1000;
  const openCpu = median(c.inner.map((i) => i.read.cpuMs + i.load.cpuMs)) / 1000;
  const search = (n: number) => median(c.inner.map((i) => i.searches[n]!.ms)) / 1000;
  const first = search(0), second = search(1);
  const warm = median(c.inner.flatMap((i) => i.searches.slice(2).map((p) => p.ms))) / 1000;
  const rss = (ms: Whole[]) => median(ms.map((m) => m.peakMb)).toFixed(0);
  return `| ${c.k.toLocaleString('en')} x ${c.d} (${c.frozenGb.toFixed(2)} GB f16) | ${ours.toFixed(2)} | ${faiss.toFixed(2)} | ` +
    `**${(faiss / ours).toFixed(2)}** | ${oursSearch.toFixed(3)} | ${faissSearch.toFixed(3)} | ${open.toFixed(3)} (${(open / c.frozenGb).toFixed(2)} s/GB; CPU ${(openCpu / c.frozenGb).toFixed(2)} s/GB) | ` +
    `${first.toFixed(3)} / ${second.toFixed(3)} / ${warm.toFixed(3)} (**${(first / warm).toFixed(2)}x**) | ` +
    `${(100 * c.idsEqual).toFixed(2)}% | ${rss(c.ours)} / ${rss(c.faiss)} | ${Math.min(...c.loads).toFixed(1)}-${Math.max(...c.loads).toFixed(1)} |`;
}

async function main(): Promise<void> {
  if (process.argv[2] === 'inner') return inner(process.argv[3]!, process.argv[4]!);
  const dir = path.join(benchDir(), 'first-search');
  await fs.mkdir(dir, { recursive: true });
  const results: CaseResult[] = [];
  try {
    for (const { k, d } of CASES) results.push(await runCase(dir, k, d));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
  const section = [
    '## One image, whole process: `unicode2 search --exact` vs FAISS',
    '',
    `${QUERIES} queries (one 27 x 27 image) against an f16 codebook file (bench/embedding-data.ts rows, written by the product's writer), ` +
      `each side a process of its own, timed from start to exit, ${ROUNDS} rounds alternating which side goes first (medians; ` +
      'one untimed run of each first, so the file is in the page cache for both). FAISS: bench/faiss_first_search.py (read the f16 table, ' +
      'widen to f32, IndexFlatL2.add, search k=1, save), Debian\'s python3-faiss with the OpenMP OpenBLAS. ' +
      `Open, first, second and warm searches: a process of ours timed from the inside (\`bench/first-search.bench.ts inner\`), median of ${INNER_ROUNDS}; ` +
      'open = reading the codebook file (checks included) + loading it on the CPU backend (row norms), per GB of frozen read, in wall and in CPU time (all threads); the second search builds the int8 prefilter.',
    '',
    '| codebook | ours s | FAISS s | speed ours/FAISS | ours search s (--json) | FAISS search s | open s | first / second / warm search s (first/warm) | ids equal | peak RSS ours / FAISS, MB | load (1 min) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...results.map(row),
    '',
    `- ${new Date().toISOString()}, ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.availableParallelism()} cores; load average at the end ${os.loadavg().map((l) => l.toFixed(2)).join(', ')}`,
  ].join('\n');
  console.log(`\n${section}\n`);
  if (!quickMode() && !process.env.BENCH_NO_WRITE) await updateSection('first-search', section);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

// The CPU backend (onnxruntime graphs) beside FAISS on the same data: exact nearest-code search
// and one k-means iteration. Prints the table and rewrites the "cpu" section of BENCHMARKS.md.
import * as os from 'node:os';
import { createCpuBackend } from '../native-gpu/cpu/index.js';
import { CHUNK_ROWS } from '../native-gpu/cpu/nearest.js';
import { updateCentroids } from '../extension/engine/kmeans.js';
import {
  DATA_FILES, agreement, benchCases, benchDir, caseName, comparisonTable, faissIds, flops, quickMode,
  readFaiss, readMatrix, timeRuns, updateSection, type Row,
} from './harness.js';

async function main(): Promise<void> {
  const dir = benchDir();
  const faiss = await readFaiss(dir);
  const backend = await createCpuBackend();
  const rows: Row[] = [];
  for (const c of benchCases(quickMode())) {
    let ids: Int32Array = new Int32Array(0);
    let ours;
    if (c.kind === 'search') {
      const queries = await readMatrix(dir, DATA_FILES.queries, c.queries);
      const handle = await backend.loadCodebook(await readMatrix(dir, DATA_FILES.codebook, c.k));
      ours = await timeRuns(async () => ({ ids } = await backend.nearest(handle, queries)), c.warmup, c.runs);
      handle.dispose();
    } else {
      const points = await readMatrix(dir, DATA_FILES.points, c.points);
      const init = { rows: c.k, cols: c.d, data: points.data.subarray(0, c.k * c.d) };
      // one Lloyd iteration as FAISS times it: upload the centroids, assign + accumulate, divide
      ours = await timeRuns(async () => {
        const handle = await backend.loadCodebook(init);
        const step = await backend.kmeansStep(handle, points);
        handle.dispose();
        ids = step.ids;
        return updateCentroids(init, step, 0);
      }, c.warmup, c.runs);
    }
    const row = { name: caseName(c), flops: flops(c), ours, faiss: faiss.results[c.id], agreement: agreement(ids, await faissIds(dir, c.id)) };
    rows.push(row);
    console.log(comparisonTable([row]).split('\n').at(-1));
  }
  await backend.dispose();

  const table = comparisonTable(rows);
  const rssMb = process.resourceUsage().maxRSS / 1024;
  const section = [
    '## CPU backend (onnxruntime) vs FAISS',
    '',
    table,
    '',
    `- ours: ${backend.device}; Gemm(transB, alpha=-2, C=norms) -> ArgMin/ReduceMin per ${CHUNK_ROWS}-row codebook chunk, ` +
      `codebook and queries fed as graph inputs; peak RSS ${rssMb.toFixed(0)} MB (includes the benchmark data)`,
    `- FAISS ${faiss.versions.faiss} (Debian python3-faiss), numpy ${faiss.versions.numpy}, ${faiss.threads} OpenMP threads, ` +
      `BLAS: ${faiss.blas}; IndexFlatL2.search(k=1) and faiss.Kmeans(niter=1, init_centroids); peak RSS ${faiss.maxRssMb.toFixed(0)} MB`,
    '- FAISS runs with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (this machine may set them to work around old OpenBLAS ' +
      'bugs; they select a slower kernel); nothing else is changed for either side',
    `- GFLOP/s counts the distance GEMM only (2 x queries x K x d); ${os.availableParallelism()} cores shared by both sides, run one after the other`,
  ].join('\n');
  console.log(`\n${section}\n`);
  if (!quickMode()) await updateSection('cpu', section);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

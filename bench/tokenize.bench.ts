// End-to-end tokenization rate, in images and tokens per second: decode + resize (sharp, in worker
// threads), the built-in DCT encoder, nearest-code search, token grids out — the whole `unicode2
// tokenize` path minus file output. With the DCT stretched to 224 x 224 ('dct:224:square', 196
// tokens per image, the rows earlier versions measured) and, for exact search, also keeping each
// photo's shape ('dct': short side 224, so the 3:2 fixtures give 294 tokens; images of one batch
// share one [sum of L, d] block whatever their shapes). On the CPU backend always, with exact search and with IVF search (the
// codebook given a coarse level: k-means over its codes, codes grouped by cell); on WebGPU when a
// hardware adapter is present (a software adapter would take minutes per image at these K).
// Prints a table and one line "BENCH_JSON {...}".
import * as path from 'node:path';
import type { ComputeBackend, Matrix } from '../native-gpu/backend.js';
import { createCpuBackend } from '../native-gpu/cpu/index.js';
import { openBackend } from '../native-gpu/index.js';
import { probeHardwareAdapterQuietly } from '../native-gpu/webgpu/device.js';
import { openEncoder, type Encoder } from '../extension/engine/embed/encoders/index.js';
import { listImages } from '../extension/engine/embed/image.js';
import { tokenizeImages } from '../extension/engine/search/tokenize.js';
import { inMemory, type Codebook } from '../extension/engine/codebook/codebook.js';
import { seededRandom } from '../extension/engine/core/sampling.js';
import { calibrateCodebook, openSearch, shareFound, type SearchOptions } from '../extension/engine/search/search.js';
import { UNCALIBRATED_NPROBE } from '../extension/engine/core/defaults.js';
import { coarseLevelOf } from './coarse-level.js';
import { quickMode, updateSection } from './harness.js';

const ROOT = path.join(__dirname, '..');
const TARGET = 0.95;
const NPROBES = [1, 2, 4, 8, 16, 32];

interface Row {
  device: string; k: number; encoder: string; search: string; recall: number | null;
  images: number; tokens: number; seconds: number; imagesPerSecond: number; tokensPerSecond: number;
}

const SQUARE = 'dct:224:square';
const KEEP_ASPECT = 'dct';

/** A codebook of K real DCT patch vectors (with a little noise so repeated patches differ):
 *  search cost depends only on K and d, but real vectors keep the token ids meaningful. */
function codebookFrom(patches: Matrix, k: number): Codebook {
  const random = seededRandom(7);
  const data = new Float32Array(k * patches.cols);
  for (let row = 0; row < k; row++) {
    const src = Math.floor(random() * patches.rows) * patches.cols;
    for (let j = 0; j < patches.cols; j++) data[row * patches.cols + j] = patches.data[src + j] + (random() - 0.5) * 0.01;
  }
  const frozen = { rows: k, cols: patches.cols, data };
  return {
    frozen,
    trainable: inMemory(frozen),
    counts: null,
    fingerprint: `bench-k${k}`,
    meta: {
      formatVersion: 1, encoder: { kind: 'dct', id: 'dct:224', patch: 16, inputSize: [224, 224], d: 768, resize: 'keep-aspect' }, k, d: patches.cols,
      lambda: 0, iterations: 0, seed: 7, corpusFingerprint: 'bench', atlas: 'dct', createdAt: new Date(0).toISOString(),
    },
  };
}

/** The same codebook with a coarse level of about sqrt(K) cells, codes grouped by cell. */
async function withCoarse(cb: Codebook, backend: ComputeBackend): Promise<Codebook> {
  const frozen = cb.frozen as Matrix;
  const { codes, coarse } = await coarseLevelOf(frozen, Math.round(Math.sqrt(frozen.rows)), backend, { seed: 1 });
  return { ...cb, frozen: codes, trainable: inMemory(codes), coarse, fingerprint: `${cb.fingerprint}-ivf` };
}

/** recall@1 of a search over `queries` against exact search (engine/search/search.ts shareFound). */
async function recallOf(cb: Codebook, backend: ComputeBackend, queries: Matrix, options: SearchOptions): Promise<number> {
  const [ivf, exact] = [await openSearch(cb, backend, options), await openSearch(cb, backend, { search: 'exact' })];
  try {
    return shareFound(queries, cb.frozen, await ivf.nearest(queries), await exact.nearest(queries));
  } finally {
    ivf.dispose();
    exact.dispose();
  }
}

async function measure(backend: ComputeBackend, cb: Codebook, images: string[], options: SearchOptions, recall: number | null, spec = SQUARE, note = ''): Promise<Row> {
  const encoder = await openEncoder(spec, backend);
  try {
    await tokenizeImages(cb, encoder, images.slice(0, 16), backend, { search: options }); // warm-up: sessions, workers, pipelines
    const t0 = performance.now();
    const { results } = await tokenizeImages(cb, encoder, images, backend, { search: options });
    const seconds = (performance.now() - t0) / 1000;
    if (results.length !== images.length) throw new Error(`tokenized ${results.length} of ${images.length} images`);
    const { method, nprobe } = results[0]!.search!;
    const search = method === 'ivf' ? `IVF, ${cb.coarse!.centroids.rows} cells, nprobe ${nprobe}${note}` : 'exact';
    const tokens = results.reduce((n, r) => n + r.ids.length, 0);
    return { device: backend.device, k: cb.frozen.rows, encoder: spec, search, recall, images: images.length, tokens, seconds, imagesPerSecond: images.length / seconds, tokensPerSecond: tokens / seconds };
  } finally {
    await encoder.dispose();
  }
}

async function main(): Promise<void> {
  const quick = quickMode();
  const sources = [...await listImages(path.join(ROOT, 'test/fixtures/images')), ...await listImages(path.join(ROOT, 'media/samples'))];
  const count = quick ? 32 : 256;
  const images = Array.from({ length: count }, (_, i) => sources[i % sources.length]!);
  const sizes = quick ? [1024] : [16_384, 131_072];

  const cpu = await createCpuBackend();
  const encoder: Encoder = await openEncoder(SQUARE, cpu);
  const patches = await encoder.encode(await Promise.all(sources.map((s) => encoder.load(s))));
  await encoder.dispose();

  const backends: ComputeBackend[] = [cpu];
  if (await probeHardwareAdapterQuietly()) backends.push(await openBackend('webgpu'));
  else console.log('tokenize bench: no hardware GPU adapter, CPU backend only');

  const rows: Row[] = [];
  const report = (row: Row) => {
    rows.push(row);
    console.log(`${row.device.padEnd(40)} K=${String(row.k).padStart(7)} ${row.encoder.padEnd(15)} ${row.search.padEnd(30)} ${row.images} images in ${row.seconds.toFixed(2)} s = ${row.imagesPerSecond.toFixed(1)} images/s, ${Math.round(row.tokensPerSecond)} tokens/s` +
      (row.recall === null ? '' : `, recall@1 ${row.recall.toFixed(3)}`));
  };
  try {
    for (const k of sizes) {
      const cb = codebookFrom(patches, k);
      for (const backend of backends) {
        report(await measure(backend, cb, images, { search: 'exact' }, null));
        report(await measure(backend, cb, images, { search: 'exact' }, null, KEEP_ASPECT));
      }
      // IVF: the first nprobe whose recall@1 on every patch of the source photos reaches TARGET,
      // the fallback nprobe (a codebook without a calibrated one), and the default a user gets: the
      // codebook's calibrated nprobe (engine/search/search.ts calibrateCodebook on the same patches)
      const uncalibrated = await withCoarse(cb, cpu);
      const calibration = await calibrateCodebook(uncalibrated, cpu, patches);
      const ivf = { ...uncalibrated, meta: { ...uncalibrated.meta, nprobe: calibration.nprobe } };
      const chosen: { nprobe: number; recall: number }[] = [];
      for (const nprobe of NPROBES) {
        const recall = await recallOf(ivf, cpu, patches, { nprobe });
        if (recall >= TARGET) {
          chosen.push({ nprobe, recall });
          break;
        }
      }
      if (!chosen.some((c) => c.nprobe === UNCALIBRATED_NPROBE)) chosen.push({ nprobe: UNCALIBRATED_NPROBE, recall: await recallOf(ivf, cpu, patches, { nprobe: UNCALIBRATED_NPROBE }) });
      for (const { nprobe, recall } of chosen) report(await measure(cpu, ivf, images, { nprobe }, recall));
      report(await measure(cpu, ivf, images, {}, await recallOf(ivf, cpu, patches, {}), SQUARE, ' (default: calibrated)'));
    }
  } finally {
    for (const b of backends) await b.dispose();
  }
  console.log(`BENCH_JSON ${JSON.stringify({ bench: 'tokenize', rows })}`);

  const table = [
    '| device | K | encoder | search | recall@1 | images | tokens | seconds | images/s | tokens/s |',
    '|---|---:|---|---|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.device} | ${r.k.toLocaleString('en')} | ${r.encoder} | ${r.search} | ${r.recall === null ? '1 (exact)' : r.recall.toFixed(3)} | ${r.images} | ${r.tokens.toLocaleString('en')} | ${r.seconds.toFixed(2)} | ${r.imagesPerSecond.toFixed(1)} | ${Math.round(r.tokensPerSecond).toLocaleString('en')} |`),
  ].join('\n');
  if (!quick && !process.env.BENCH_NO_WRITE) {
    await updateSection('tokenize', `## End-to-end tokenization (images/s)\n\nDCT encoder stretched to 224x224 (\`${SQUARE}\`: 196 tokens, d = 768), ` +
      `and for exact search also keeping each photo's shape (\`${KEEP_ASPECT}\`: short side 224; the 3:2 fixtures give 14 x 21 = 294 tokens), ` +
      `images decoded from disk each time (fixtures + samples, cycled), decode + resize + DCT in worker threads (one per core) while the main thread searches; ` +
      `K real patch vectors as the codebook. IVF rows: the codebook with a coarse level of about sqrt(K) cells (k-means over its codes), at the first nprobe ` +
      `of ${NPROBES.join(', ')} whose recall@1 over every patch of the source photos reaches ${TARGET}, at the fallback nprobe of a codebook without a calibrated one ` +
      `(${UNCALIBRATED_NPROBE}), and at the default a user gets, the codebook's calibrated nprobe (\`unicode2 calibrate\` on the same photos' patches); ` +
      `recall@1 against exact search, near-ties to f32 rounding counted as found.\n\n${table}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

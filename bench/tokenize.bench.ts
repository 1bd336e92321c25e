// End-to-end tokenization rate, in images per second: decode + resize (sharp), the built-in DCT
// encoder, nearest-code search, token grids out — the whole `unicode2 tokenize` path minus file
// output. On the CPU backend always; on WebGPU when a hardware adapter is present (a software
// adapter would take minutes per image at these K). Prints a table and one line "BENCH_JSON {...}".
import * as path from 'node:path';
import type { ComputeBackend, Matrix } from '../native-gpu/backend.js';
import { createCpuBackend } from '../native-gpu/cpu/index.js';
import { openBackend } from '../native-gpu/index.js';
import { probeHardwareAdapterQuietly } from '../native-gpu/webgpu/device.js';
import { openEncoder } from '../extension/engine/encoders/index.js';
import { listImages } from '../extension/engine/image.js';
import { tokenizeImages } from '../extension/engine/tokenize.js';
import { inMemory, type Codebook } from '../extension/engine/codebook.js';
import { seededRandom } from '../extension/engine/sampling.js';
import { quickMode, updateSection } from './harness.js';

const ROOT = path.join(__dirname, '..');

interface Row { device: string; k: number; images: number; seconds: number; imagesPerSecond: number }

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
      formatVersion: 1, encoder: { kind: 'dct', id: 'dct', patch: 16, inputSize: [224, 224], d: 768 }, k, d: patches.cols,
      lambda: 0, iterations: 0, seed: 7, corpusFingerprint: 'bench', atlas: 'dct', createdAt: new Date(0).toISOString(),
    },
  };
}

async function measure(backend: ComputeBackend, cb: Codebook, images: string[]): Promise<Row> {
  const encoder = await openEncoder('dct', backend);
  try {
    await tokenizeImages(cb, encoder, images.slice(0, 4), backend); // warm-up: sessions, pipelines
    const t0 = performance.now();
    const { results } = await tokenizeImages(cb, encoder, images, backend);
    const seconds = (performance.now() - t0) / 1000;
    if (results.length !== images.length) throw new Error(`tokenized ${results.length} of ${images.length} images`);
    return { device: backend.device, k: cb.frozen.rows, images: images.length, seconds, imagesPerSecond: images.length / seconds };
  } finally {
    await encoder.dispose();
  }
}

async function main(): Promise<void> {
  const quick = quickMode();
  const sources = [...await listImages(path.join(ROOT, 'test/fixtures/images')), ...await listImages(path.join(ROOT, 'media/samples'))];
  const count = quick ? 16 : 128;
  const images = Array.from({ length: count }, (_, i) => sources[i % sources.length]);
  const sizes = quick ? [1024] : [16_384, 131_072];

  const cpu = await createCpuBackend();
  const encoder = await openEncoder('dct', cpu);
  const patches = await encoder.encode(await Promise.all(sources.map((s) => encoder.load(s))));
  await encoder.dispose();

  const backends: ComputeBackend[] = [cpu];
  if (await probeHardwareAdapterQuietly()) backends.push(await openBackend('webgpu'));
  else console.log('tokenize bench: no hardware GPU adapter, CPU backend only');

  const rows: Row[] = [];
  try {
    for (const k of sizes) {
      const cb = codebookFrom(patches, k);
      for (const backend of backends) {
        const row = await measure(backend, cb, images);
        rows.push(row);
        console.log(`${row.device.padEnd(40)} K=${String(k).padStart(7)}  ${row.images} images in ${row.seconds.toFixed(2)} s = ${row.imagesPerSecond.toFixed(1)} images/s`);
      }
    }
  } finally {
    for (const b of backends) await b.dispose();
  }
  console.log(`BENCH_JSON ${JSON.stringify({ bench: 'tokenize', rows })}`);

  const table = [
    '| device | K | images | seconds | images/s |',
    '|---|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.device} | ${r.k.toLocaleString('en')} | ${r.images} | ${r.seconds.toFixed(2)} | ${r.imagesPerSecond.toFixed(1)} |`),
  ].join('\n');
  if (!quick && !process.env.BENCH_NO_WRITE) {
    await updateSection('tokenize', `## End-to-end tokenization (images/s)\n\nDCT encoder at 224x224 (196 tokens, d = 768), ` +
      `images decoded from disk each time (fixtures + samples, cycled), K real patch vectors as the codebook.\n\n${table}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

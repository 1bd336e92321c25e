// Vision towers' speed: images/s of `embed` through a SigLIP-base-sized and a SigLIP-so400m-sized
// ViT (bench/vit-model.ts: random weights of the real shapes, in a SigLIP export's layout), the
// whole per-image path a user gets (decode, resize and normalize as the processor does, the
// forward pass), on onnxruntime's CPU execution provider, and on its WebGPU one when a hardware
// adapter is present. One image warms the session up; then IMAGES photos are timed. Prints a
// table and one line "BENCH_JSON {...}"; rewrites its BENCHMARKS.md section unless --quick.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BackendName } from '../native-gpu/backend.js';
import { probeHardwareAdapterQuietly } from '../native-gpu/webgpu/device.js';
import { openBackend } from '../native-gpu/index.js';
import { openEncoder } from '../extension/engine/embed/encoders/index.js';
import { embedImages } from '../extension/engine/embed/embed.js';
import { quickMode, updateSection } from './harness.js';
import { SIGLIP_BASE, SIGLIP_SO400M, tokensOf, vitFlops, writeVitFolder, type VitSpec } from './vit-model.js';

const PHOTOS = ['astronaut.jpg', 'coffee.jpg', 'chelsea.png', 'rocket.jpg', 'china.jpg', 'flower.jpg', 'brick.png', 'motorcycle_left.jpg']
  .map((name) => path.join(__dirname, '../test/fixtures/images', name));

interface Row { model: string; device: string; images: number; seconds: number; imagesPerSecond: number; gflopsPerSecond: number }

async function measure(dir: string, spec: VitSpec, device: BackendName, count: number): Promise<Row> {
  const backend = await openBackend(device);
  const encoder = await openEncoder(dir, backend);
  try {
    const images = Array.from({ length: count }, (_, i) => PHOTOS[i % PHOTOS.length]!);
    await embedImages(encoder, images.slice(0, 1)); // warm-up: the session's first run allocates and pre-packs
    const start = performance.now();
    const r = await embedImages(encoder, images);
    const seconds = (performance.now() - start) / 1000;
    if (r.embeddings.rows !== count * tokensOf(spec)) throw new Error(`${spec.name}: ${r.embeddings.rows} rows, expected ${count * tokensOf(spec)}`);
    return { model: spec.name, device: encoder.device, images: count, seconds, imagesPerSecond: count / seconds, gflopsPerSecond: (count * vitFlops(spec)) / seconds / 1e9 };
  } finally {
    await encoder.dispose();
    await backend.dispose();
  }
}

async function main(): Promise<void> {
  const quick = quickMode();
  const cases: [VitSpec, number][] = quick
    ? [[{ ...SIGLIP_BASE, name: 'ViT 2 layers (quick)', layers: 2 }, 2]]
    : [[SIGLIP_BASE, 16], [SIGLIP_SO400M, 4]];
  const devices: BackendName[] = ['cpu'];
  if (await probeHardwareAdapterQuietly()) devices.push('webgpu');
  else console.log('encoder bench: no hardware GPU adapter, CPU only');
  const rows: Row[] = [];
  for (const [spec, count] of cases) {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-encoder-bench-'));
    try {
      const built = Date.now();
      await writeVitFolder(dir, spec);
      console.log(`encoder bench: ${spec.name}, ${(vitFlops(spec) / 1e9).toFixed(0)} GFLOP an image, written in ${((Date.now() - built) / 1000).toFixed(1)} s`);
      for (const device of devices) {
        const row = await measure(dir, spec, device, count);
        rows.push(row);
        console.log(`${row.model} on ${row.device}: ${row.imagesPerSecond.toFixed(2)} images/s (${row.images} in ${row.seconds.toFixed(1)} s, ${row.gflopsPerSecond.toFixed(0)} GFLOP/s)`);
      }
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }
  console.log(`BENCH_JSON ${JSON.stringify({ bench: 'encoder', rows })}`);
  const table = [
    '| model | GFLOP / image | tokens | device | images | seconds | images/s | GFLOP/s |',
    '|---|---:|---:|---|---:|---:|---:|---:|',
    ...rows.map((r) => {
      const spec = cases.find(([s]) => s.name === r.model)![0];
      return `| ${r.model} | ${(vitFlops(spec) / 1e9).toFixed(0)} | ${tokensOf(spec)} | ${r.device} | ${r.images} | ${r.seconds.toFixed(1)} | ${r.imagesPerSecond.toFixed(2)} | ${r.gflopsPerSecond.toFixed(0)} |`;
    }),
  ].join('\n');
  if (!quick && !process.env.BENCH_NO_WRITE) {
    await updateSection('encoder', '## Vision towers: images/s of `embed`\n\n' +
      'ViTs of SigLIP-base-patch16-224 and SigLIP-so400m-patch14-384 shapes (bench/vit-model.ts: random f32 weights, the ' +
      'export layout `config.json` + `preprocessor_config.json` + `model.onnx` + `model.onnx_data`), the whole per-image path of ' +
      '`unicode2 embed` (decode, the processor\'s resize and normalization, the forward pass), after one warm-up image. ' +
      `Command: \`BENCH_QUICK=0 node --import tsx bench/encoder.bench.ts\` (also run by \`npm run bench\`); ${os.cpus().length} CPU cores.\n\n${table}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

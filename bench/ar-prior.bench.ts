// Autoregressive prior speed: tokens/s of a GPT-sized causal transformer (test/helpers/ar-model.ts:
// 12 layers, 768 wide, 12 heads, MLP 3072, random weights) over a K = 16,384 codebook plus 1,000
// class tokens, sampling a 16x16 grid in raster order with the KV cache, with classifier-free
// guidance (one batch of two rows per token) and without; on the CPU execution provider, and on
// the WebGPU one when a hardware adapter is present. Each token is timed from the sampler's own
// callback; the median is reported. Prints a table and one line "BENCH_JSON {...}"; rewrites its
// BENCHMARKS.md section unless --quick.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BackendName } from '../native-gpu/backend.js';
import { probeHardwareAdapterQuietly } from '../native-gpu/webgpu/device.js';
import { openArModel, readArFolder, sampleArGrid } from '../extension/engine/generate/ar/index.js';
import { writeArFolder, type ArModelSpec } from '../test/helpers/ar-model.js';
import { quickMode, updateSection } from './harness.js';

interface Row { device: string; guidance: number; batch: number; tokenMs: number; tokensPerSecond: number; firstMs: number }

const CLASSES = 1000;

async function measure(dir: string, device: BackendName, grid: number, guidance: number): Promise<Row> {
  const model = await openArModel(await readArFolder(dir), { device });
  try {
    const run = async (side: number) => {
      const at: number[] = [performance.now()];
      await sampleArGrid(model, [side, side], { seed: 1, classId: 7, guidance, topK: 0, onToken: () => at.push(performance.now()) });
      return at.slice(1).map((t, i) => t - at[i]!);
    };
    await run(2); // warm-up: onnxruntime's first runs allocate and pre-pack
    const times = await run(grid);
    const firstMs = times[0]!;
    const rest = times.slice(1).sort((a, b) => a - b);
    const tokenMs = rest[Math.floor(rest.length / 2)]!;
    return { device: model.session.device, guidance, batch: guidance === 1 ? 1 : 2, tokenMs, tokensPerSecond: 1000 / tokenMs, firstMs };
  } finally {
    await model.session.release();
  }
}

async function main(): Promise<void> {
  const quick = quickMode();
  const k = quick ? 1024 : 16_384;
  const spec: ArModelSpec = quick
    ? { vocab: k + CLASSES + 1, hidden: 128, heads: 4, layers: 2, mlp: 512, maxPositions: 1024, externalFile: 'model.onnx_data' }
    : { vocab: k + CLASSES + 1, hidden: 768, heads: 12, layers: 12, mlp: 3072, maxPositions: 1024, externalFile: 'model.onnx_data' };
  const grid = quick ? 6 : 16;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-ar-bench-'));
  try {
    const built = Date.now();
    await writeArFolder(dir, spec, {
      image_token_offset: 0, num_image_tokens: k, grid: [grid, grid],
      condition: { type: 'class', token_offset: k, num_classes: CLASSES, null_token: k + CLASSES },
    });
    const params = spec.vocab * spec.hidden * 2 + spec.layers * (4 * spec.hidden ** 2 + 2 * spec.hidden * spec.mlp!);
    console.log(`ar-prior bench: ${(params / 1e6).toFixed(1)}M parameters, built in ${((Date.now() - built) / 1000).toFixed(1)} s`);
    const devices: BackendName[] = ['cpu'];
    if (await probeHardwareAdapterQuietly()) devices.push('webgpu');
    else console.log('ar-prior bench: no hardware GPU adapter, CPU only');
    const rows: Row[] = [];
    for (const device of devices) {
      for (const guidance of [1, 4]) {
        const row = await measure(dir, device, grid, guidance);
        rows.push(row);
        console.log(`${row.device.padEnd(50)} batch ${row.batch}: ${row.tokenMs.toFixed(1)} ms/token = ${row.tokensPerSecond.toFixed(1)} tokens/s (first token ${row.firstMs.toFixed(0)} ms)`);
      }
    }
    console.log(`BENCH_JSON ${JSON.stringify({ bench: 'ar-prior', params, k, grid, rows })}`);
    const table = [
      '| device | guidance | batch per token | ms / token | tokens/s | first token (ms) |',
      '|---|---:|---:|---:|---:|---:|',
      ...rows.map((r) => `| ${r.device} | ${r.guidance} | ${r.batch} | ${r.tokenMs.toFixed(1)} | ${r.tokensPerSecond.toFixed(1)} | ${r.firstMs.toFixed(0)} |`),
    ].join('\n');
    if (!quick && !process.env.BENCH_NO_WRITE) {
      await updateSection('ar-prior', '## Autoregressive prior: tokens/s\n\n' +
        `A GPT-style causal transformer in the decoder-with-past layout (bench/ar-prior.bench.ts, built by test/helpers/ar-model.ts: ` +
        `${spec.layers} layers, ${spec.hidden} wide, ${spec.heads} heads, MLP ${spec.mlp}, random f32 weights, ${(params / 1e6).toFixed(0)}M parameters) ` +
        `over K = ${k.toLocaleString('en-US')} image tokens and ${CLASSES} classes, sampling a ${grid}x${grid} grid with the KV cache ` +
        '(the median token after the first; the first token includes the prompt). Guidance != 1 runs one batch of two rows per token. ' +
        `Command: \`BENCH_QUICK=0 node --import tsx bench/ar-prior.bench.ts\` (also run by \`npm run bench\`).\n\n${table}`);
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

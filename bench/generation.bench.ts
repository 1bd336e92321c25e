// Diffusion decoder speed: denoiser steps per second of a small UNet-like model (bench/unet-model.ts)
// at 64x64 latents (a 512x512 image with an 8x VAE), conditioned on a 14x14 token grid (L = 196,
// c = 768), with classifier-free guidance (one batch of two per step) and without; on the CPU
// execution provider, and on the WebGPU one when a hardware adapter is present. Each step is timed
// from the decoder's own step callback; the median step is reported. Prints a table and one line
// "BENCH_JSON {...}"; rewrites its BENCHMARKS.md section unless --quick.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BackendName } from '../native-gpu/backend.js';
import { probeHardwareAdapterQuietly } from '../native-gpu/webgpu/device.js';
import { openDiffusionDecoder } from '../extension/engine/generate/diffusion/decoder.js';
import { seededNormals } from '../extension/engine/core/sampling.js';
import { sdSchedulerConfig, vaeDecoderModel, writeDiffusionFolder } from '../test/helpers/diffusion-model.js';
import { quickMode, updateSection } from './harness.js';
import { unetFlops, unetLikeDenoiser } from './unet-model.js';

interface Row { device: string; latent: number; guidance: number; batch: number; stepMs: number; stepsPerSecond: number; gflops: number }

const TOKENS = 196;
const CONTEXT = 768;

async function measure(dir: string, device: BackendName, latent: number, guidance: number, steps: number): Promise<Row> {
  const decoder = await openDiffusionDecoder(dir, { device });
  try {
    const conditioning = { rows: TOKENS, cols: CONTEXT, data: seededNormals(TOKENS * CONTEXT, 3) };
    const initNoise = { shape: [1, 4, latent, latent], data: seededNormals(4 * latent * latent, 4) };
    const run = async (n: number) => {
      const at: number[] = [performance.now()];
      await decoder.generate({ conditioning, scheduler: 'ddim', steps: n, guidance, seed: 0, initNoise }, { onStep: () => at.push(performance.now()) });
      return at.slice(1).map((t, i) => t - at[i]!);
    };
    await run(2); // warm-up: onnxruntime's first runs allocate and pre-pack
    const times = (await run(steps)).sort((a, b) => a - b);
    const stepMs = times[Math.floor(times.length / 2)]!;
    const batch = guidance > 1 ? 2 : 1;
    return { device: decoder.device, latent, guidance, batch, stepMs, stepsPerSecond: 1000 / stepMs, gflops: (batch * unetFlops(latent, latent, TOKENS)) / (stepMs * 1e6) };
  } finally {
    await decoder.dispose();
  }
}

async function main(): Promise<void> {
  const quick = quickMode();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-gen-bench-'));
  try {
    await writeDiffusionFolder(dir, { denoiser: { model: unetLikeDenoiser({ context: CONTEXT }) }, vae: vaeDecoderModel().model, scheduler: sdSchedulerConfig() });
    const latent = quick ? 16 : 64;
    const steps = quick ? 3 : 10;
    const devices: BackendName[] = ['cpu'];
    if (await probeHardwareAdapterQuietly()) devices.push('webgpu');
    else console.log('generation bench: no hardware GPU adapter, CPU only');
    const rows: Row[] = [];
    for (const device of devices) {
      for (const guidance of [7.5, 1]) {
        const row = await measure(dir, device, latent, guidance, steps);
        rows.push(row);
        console.log(`${row.device.padEnd(50)} ${latent}x${latent} latents, batch ${row.batch}: ${row.stepMs.toFixed(1)} ms/step = ${row.stepsPerSecond.toFixed(2)} steps/s (${row.gflops.toFixed(1)} GFLOP/s)`);
      }
    }
    console.log(`BENCH_JSON ${JSON.stringify({ bench: 'generation', rows })}`);
    const table = [
      '| device | latents | guidance | batch per step | ms / step | steps/s | GFLOP/s |',
      '|---|---|---:|---:|---:|---:|---:|',
      ...rows.map((r) => `| ${r.device} | 4x${r.latent}x${r.latent} | ${r.guidance} | ${r.batch} | ${r.stepMs.toFixed(1)} | ${r.stepsPerSecond.toFixed(2)} | ${r.gflops.toFixed(1)} |`),
    ].join('\n');
    if (!quick && !process.env.BENCH_NO_WRITE) {
      const flops = (unetFlops(latent, latent, TOKENS) / 1e9).toFixed(2);
      await updateSection('generation', '## Diffusion decoder: denoiser steps/s\n\n' +
        `A small UNet-like noise predictor (bench/unet-model.ts: 3x3 convolutions at 64 and 128 channels, one cross-attention ` +
        `over L = ${TOKENS} tokens of width ${CONTEXT}; ${flops} GFLOP per latent per step) through the diffusion decoder ` +
        `(DDIM; the median of ${steps} steps after a warm-up run). Guidance > 1 runs one batch of two per step.\n\n${table}`);
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

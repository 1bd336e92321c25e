// ONNX models on onnxruntime's WebGPU execution provider (its own Dawn, over Vulkan: lavapipe from
// scripts/setup-lavapipe.sh on a machine without a GPU) against its CPU provider: the diffusion
// decoder (tiny and UNet-like denoisers, f16, guidance), a SigLIP-style encoder under the WebGPU
// compute backend, and both Dawns -- the webgpu package's and onnxruntime's -- in one process.
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { BackendName } from '../../native-gpu/backend.js';
import { ortWebGpuDevice, openModelSession } from '../../native-gpu/onnx-session.js';
import { openDiffusionDecoder, type DiffusionResult } from '../../extension/engine/generate/diffusion/decoder.js';
import { openEncoder } from '../../extension/engine/embed/encoders/index.js';
import { codebookFingerprint, inMemory, type Codebook } from '../../extension/engine/codebook/codebook.js';
import { tokenizeImages } from '../../extension/engine/search/tokenize.js';
import { seededNormals } from '../../extension/engine/core/sampling.js';
import { denoiserModel, sdSchedulerConfig, vaeDecoderModel, writeDiffusionFolder } from '../helpers/diffusion-model.js';
import { dctVisionTower, siglipConfig, writeModelFolder } from '../helpers/siglip-model.js';
import { unetLikeDenoiser } from '../../bench/unet-model.js';
import { after, before, maxAbsDiff, openCpu, openGpu, test } from './harness.js';

const PHOTOS = ['astronaut.jpg', 'coffee.jpg', 'brick.png'].map((n) => path.join(__dirname, '../fixtures/images', n));
let tmp: string;

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-ort-webgpu-'));
});
after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

/** Runs the folder's decoder on one provider; the WebGPU run must really be on WebGPU. */
async function decodeOn(dir: string, device: BackendName, opts: { latent?: number; guidance?: number; context?: number } = {}): Promise<DiffusionResult> {
  const warnings: string[] = [];
  const decoder = await openDiffusionDecoder(dir, { device, onWarning: (m) => warnings.push(m) });
  try {
    const context = opts.context ?? 8;
    const latent = opts.latent ?? 6;
    const result = await decoder.generate({
      conditioning: { rows: 10, cols: context, data: seededNormals(10 * context, 1) },
      scheduler: 'ddim', steps: 3, guidance: opts.guidance ?? 4, seed: 0,
      initNoise: { shape: [1, 4, latent, latent], data: seededNormals(4 * latent * latent, 2) },
    });
    if (device === 'webgpu') {
      assert.deepEqual(warnings, [], 'the WebGPU provider must run the models (on a machine without a GPU: scripts/setup-lavapipe.sh, which npm test runs for the gpu tier)');
      assert.equal(result.device, ortWebGpuDevice());
    }
    return result;
  } finally {
    await decoder.dispose();
  }
}

test('the diffusion decoder on the WebGPU provider equals the CPU provider (f32 and f16, int64 timestep, guidance)', async () => {
  for (const dtype of ['float32', 'float16'] as const) {
    const dir = await writeDiffusionFolder(path.join(tmp, `tiny-${dtype}`), {
      denoiser: denoiserModel({ context: 8, dtype, timestep: 'int64' }),
      vae: vaeDecoderModel({ dtype }).model,
      scheduler: sdSchedulerConfig(),
    });
    const gpu = await decodeOn(dir, 'webgpu');
    const cpu = await decodeOn(dir, 'cpu');
    const tolerance = dtype === 'float16' ? 2e-2 : 1e-4;
    assert.ok(maxAbsDiff(gpu.latents, cpu.latents) < tolerance, `${dtype} latents differ by ${maxAbsDiff(gpu.latents, cpu.latents)}`);
    assert.ok(maxAbsDiff(gpu.image.data, cpu.image.data) < tolerance, `${dtype} image differs by ${maxAbsDiff(gpu.image.data, cpu.image.data)}`);
  }
});

test('a UNet-like denoiser (3x3 convolutions, cross-attention, resize) on the WebGPU provider equals the CPU provider', async () => {
  const dir = await writeDiffusionFolder(path.join(tmp, 'unet'), {
    denoiser: { model: unetLikeDenoiser({ channels: 16, context: 32 }) },
    vae: vaeDecoderModel().model,
    scheduler: sdSchedulerConfig({ timestep_spacing: 'trailing' }),
  });
  const gpu = await decodeOn(dir, 'webgpu', { latent: 16, context: 32 });
  const cpu = await decodeOn(dir, 'cpu', { latent: 16, context: 32 });
  const scale = Math.max(...Array.from(cpu.latents, Math.abs));
  assert.ok(maxAbsDiff(gpu.latents, cpu.latents) < 1e-3 * scale, `latents differ by ${maxAbsDiff(gpu.latents, cpu.latents)} (scale ${scale})`);
});

test('an ONNX vision encoder runs on the WebGPU provider under the WebGPU backend; its tokens equal the CPU run', async () => {
  const folder = await writeModelFolder(path.join(tmp, 'siglip'), dctVisionTower(), siglipConfig());
  const gpu = await openGpu();
  const cpu = await openCpu();
  try {
    const onGpu = await openEncoder(folder, gpu);
    const onCpu = await openEncoder(folder, cpu);
    try {
      assert.equal(onGpu.device, ortWebGpuDevice());
      assert.match(onCpu.device, /^cpu \(onnxruntime/);
      const images = await Promise.all(PHOTOS.map((p) => onCpu.load(p)));
      const a = await onGpu.encode(images);
      const b = await onCpu.encode(images);
      assert.ok(maxAbsDiff(a.data, b.data) < 1e-3, `embeddings differ by ${maxAbsDiff(a.data, b.data)}`);
      // tokens: a codebook of every 7th patch; the WebGPU backend searches, the WebGPU provider encodes
      const rows = Math.floor(b.rows / 7);
      const frozen = { rows, cols: b.cols, data: new Float32Array(rows * b.cols) };
      for (let r = 0; r < rows; r++) frozen.data.set(b.data.subarray(r * 7 * b.cols, (r * 7 + 1) * b.cols), r * b.cols);
      const cb: Codebook = {
        frozen, trainable: inMemory(frozen), counts: null, fingerprint: codebookFingerprint(frozen),
        meta: { formatVersion: 1, encoder: onCpu.descriptor, k: rows, d: b.cols, lambda: 0, iterations: 0, seed: 0, corpusFingerprint: 'test', atlas: 'none', createdAt: '' },
      };
      const tg = await tokenizeImages(cb, onGpu, PHOTOS, gpu);
      const tc = await tokenizeImages(cb, onCpu, PHOTOS, cpu);
      assert.deepEqual(tg.results.map((r) => r.ids), tc.results.map((r) => r.ids));
      assert.equal(tg.results[0]!.device, `encoder: ${ortWebGpuDevice()}; search: ${gpu.device}`);
    } finally {
      await onGpu.dispose();
      await onCpu.dispose();
    }
  } finally {
    await gpu.dispose();
    await cpu.dispose();
  }
});

test("both Dawns in one process: WGSL kernels and onnxruntime's WebGPU provider, interleaved, give the CPU's answers", async () => {
  const gpu = await openGpu();
  const cpu = await openCpu();
  const d = 24;
  const codes = { rows: 40, cols: d, data: seededNormals(40 * d, 5) };
  const queries = { rows: 30, cols: d, data: seededNormals(30 * d, 6) };
  const { GraphBuilder } = await import('../../native-gpu/cpu/onnx-graph.js');
  const g = new GraphBuilder('scores');
  g.input('q', 'float32', ['n', d]);
  g.initializer('codes', { type: 'float32', dims: [40, d], data: codes.data });
  g.node('Gemm', ['q', 'codes'], ['scores'], { transB: 1 });
  g.output('scores', 'float32', ['n', 40]);
  const warnings: string[] = [];
  const session = await openModelSession(g.toModel(), 'scores', { device: 'webgpu', onWarning: (m) => warnings.push(m) });
  const reference = await openModelSession(g.toModel(), 'scores', { device: 'cpu' });
  const gh = await gpu.loadCodebook(codes);
  const ch = await cpu.loadCodebook(codes);
  try {
    assert.equal(session.device, ortWebGpuDevice(), warnings.join('; '));
    const feeds = { q: new ort.Tensor('float32', queries.data, [30, d]) };
    const expected = (await reference.run(feeds)).scores!.data as Float32Array;
    const expectedIds = (await cpu.nearest(ch, queries)).ids;
    for (let round = 0; round < 3; round++) {
      assert.deepEqual((await gpu.nearest(gh, queries)).ids, expectedIds, `WGSL search, round ${round}`);
      const scores = (await session.run(feeds)).scores!.data as Float32Array;
      assert.ok(maxAbsDiff(scores, expected) < 1e-4, `WebGPU provider, round ${round}`);
    }
    const [a, b] = await Promise.all([gpu.nearest(gh, queries), session.run(feeds)]);
    assert.deepEqual(a.ids, expectedIds);
    assert.ok(maxAbsDiff(b.scores!.data as Float32Array, expected) < 1e-4);
  } finally {
    gh.dispose();
    ch.dispose();
    await session.release();
    await reference.release();
    await gpu.dispose();
    await cpu.dispose();
  }
});

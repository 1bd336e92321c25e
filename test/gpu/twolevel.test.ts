// The two-level build on the WebGPU backend (the software adapter here, a hardware GPU on a GPU
// machine): every heavy step goes through the backend it is given — the coarse and per-cell
// k-means (kmeansStep), the partition pass (nearest) and refinement (nearestIvf) — with no CPU
// fallback, and it clusters as well as the same build on the CPU backend.
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ComputeBackend } from '../../native-gpu/backend.js';
import { buildCodebook } from '../../extension/engine/build/build.js';
import { readCodebook } from '../../extension/engine/codebook/codebook.js';
import { writeNpy } from '../../extension/engine/io/formats/npy.js';
import { f32ToF16 } from '../../common/half.js';
import { EmbeddingMixture } from '../../bench/embedding-data.js';
import { suiteBackends, test } from './harness.js';

/** The backend with a count of the calls made to each of its methods. */
function counting(backend: ComputeBackend): { backend: ComputeBackend; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const proxy = new Proxy(backend, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.set(String(name), (calls.get(String(name)) ?? 0) + 1);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { backend: proxy, calls };
}

const suite = suiteBackends();

test('two-level k-means runs its k-means, partition and refinement on the WebGPU backend', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-gpu-twolevel-'));
  try {
    const embeddings = path.join(dir, 'emb.npy');
    const mixture = new EmbeddingMixture({ d: 32, components: 100, seed: 3 });
    await writeNpy(embeddings, { shape: [4000, 32], dtype: 'float16', data: f32ToF16(mixture.rows(0, 4000)) });
    const request = (out: string) => ({ embeddings, encoder: 'external', k: 64, iterations: 8, seed: 2, method: 'two-level' as const, out: path.join(dir, out) });

    const { backend, calls } = counting(suite.gpu);
    const gpu = await buildCodebook(request('gpu.safetensors'), backend);
    assert.equal(suite.gpu.fallbackReason, null);
    assert.equal(gpu.device, suite.gpu.device);
    assert.match(gpu.device, /^webgpu/);
    for (const method of ['kmeansStep', 'nearest', 'loadIvf', 'nearestIvf']) assert.ok((calls.get(method) ?? 0) > 0, `${method} was not called on the GPU backend`);

    const cpu = await buildCodebook(request('cpu.safetensors'), suite.cpu);
    assert.ok(Math.abs(gpu.mse - cpu.mse) <= 0.02 * cpu.mse, `MSE webgpu ${gpu.mse} vs cpu ${cpu.mse}`);
    const cb = await readCodebook(gpu.out);
    assert.equal(cb.coarse!.centroids.rows, 8);
    // a tenth held out of training, on which the IVF search's nprobe was calibrated (on the GPU too)
    assert.equal(gpu.calibration!.queries, 400);
    assert.equal(cb.counts!.reduce((a, b) => a + b, 0), 3600);
    assert.equal(cb.meta.nprobe, gpu.calibration!.nprobe);
    assert.ok(gpu.calibration!.recall >= 0.95 && cpu.calibration!.recall >= 0.95, `${JSON.stringify(gpu.calibration)} ${JSON.stringify(cpu.calibration)}`);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

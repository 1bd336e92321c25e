// Shared set-up of the GPU tests: the WebGPU backend on whatever adapter this machine has (a
// hardware GPU first, else the software one: the tier runs with UNICODE2_ALLOW_SOFTWARE_GPU=1),
// the CPU backend it is held equal to, and seeded data without near ties.
// A GPU test that finds no adapter fails. Only a run that says so leaves them out:
// UNICODE2_NO_GPU_TESTS=<why> (e.g. "no Vulkan driver on this runner") prints the reason once
// and reports every GPU test as skipped, so the closing line shows them (", N skipped").
// UNICODE2_REQUIRE_HARDWARE_GPU=1 refuses a software adapter.
import { test as nodeTest, before as nodeBefore, after as nodeAfter } from 'node:test';
import assert from 'node:assert/strict';
import type { ComputeBackend, Matrix } from '../../native-gpu/backend.js';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import { seededNormals } from '../../extension/engine/core/sampling.js';
import { createWebGpuBackend, type WebGpuBackend, type WebGpuTuning } from '../../native-gpu/webgpu/index.js';
import { squaredDistance } from '../helpers/nearest.js';

/** Why the GPU tests are left out of this run, or undefined when they run. */
const skipReason = (() => {
  const why = process.env.UNICODE2_NO_GPU_TESTS;
  if (!why) return undefined;
  const reason = `no GPU tests: ${why === '1' ? 'UNICODE2_NO_GPU_TESTS=1 is set (no reason given)' : why}`;
  console.log(reason);
  return reason;
})();

/** node:test's test, before and after for GPU tests: skipped with the reason when the run leaves
 *  the GPU tests out (hooks then do nothing: they would open the GPU). */
export function test(name: string, fn: () => Promise<void>): void {
  if (skipReason) nodeTest(name, { skip: skipReason }, fn);
  else nodeTest(name, fn);
}
export function before(fn: () => Promise<void>): void {
  if (!skipReason) nodeBefore(fn);
}
export function after(fn: () => Promise<void>): void {
  if (!skipReason) nodeAfter(fn);
}

/** The WebGPU backend, or a failure that says what to do on a machine without an adapter. */
export async function openGpu(tuning?: WebGpuTuning, warnings: string[] = [], deviceChanges: string[] = []): Promise<WebGpuBackend> {
  let backend: WebGpuBackend;
  try {
    backend = await createWebGpuBackend({
      allowSoftware: true,
      tuning,
      onWarning: (m) => warnings.push(m),
      onDeviceChange: (d) => deviceChanges.push(d),
    });
  } catch (err) {
    throw new Error(`the GPU tests need a WebGPU adapter and found none: ${(err as Error).message} ` +
      '(set UNICODE2_NO_GPU_TESTS=<why> to report the GPU tests as skipped on such a machine)');
  }
  // On a GPU machine (scripts/gpu-device-check.sh) a software adapter must not stand in silently.
  if (process.env.UNICODE2_REQUIRE_HARDWARE_GPU === '1' && /software/.test(backend.device)) {
    await backend.dispose();
    throw new Error(`UNICODE2_REQUIRE_HARDWARE_GPU=1 but only ${backend.device} was found`);
  }
  return backend;
}

export function openCpu(): Promise<ComputeBackend> {
  return createCpuBackend();
}

/** One WebGPU and one CPU backend for the tests of a file: opened before them, disposed after. */
export function suiteBackends(): { readonly gpu: WebGpuBackend; readonly cpu: ComputeBackend } {
  let gpu: WebGpuBackend | undefined;
  let cpu: ComputeBackend | undefined;
  before(async () => {
    gpu = await openGpu();
    cpu = await openCpu();
  });
  after(async () => {
    await gpu?.dispose();
    await cpu?.dispose();
  });
  const opened = <T>(b: T | undefined): T => {
    if (!b) throw new Error('the suite backends are not open yet');
    return b;
  };
  return {
    get gpu() {
      return opened(gpu);
    },
    get cpu() {
      return opened(cpu);
    },
  };
}

/** Reproducible normal samples: the engine's seeded Box-Muller */
export const normals = seededNormals;

export function matrix(rows: number, cols: number, seed: number): Matrix {
  return { rows, cols, data: normals(rows * cols, seed) };
}

/** Same ids as the reference, except where both ids are exactly as near (within 1e-5 relative). */
export function assertSameNearest(ids: Int32Array, reference: Int32Array, codes: Float32Array, queries: Matrix): void {
  assert.equal(ids.length, reference.length);
  let differing = 0;
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] === reference[i]) continue;
    differing++;
    const mine = squaredDistance(queries.data, i, codes, ids[i], queries.cols);
    const theirs = squaredDistance(queries.data, i, codes, reference[i], queries.cols);
    assert.ok(Math.abs(mine - theirs) <= 1e-5 * Math.max(theirs, 1e-12), `query ${i}: code ${ids[i]} at ${mine} vs reference code ${reference[i]} at ${theirs}`);
  }
  // Random normal data has no ties to speak of: more than a stray one means a real difference.
  assert.ok(differing <= Math.max(1, ids.length / 100), `${differing} of ${ids.length} ids differ`);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

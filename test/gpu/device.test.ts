// Adapter choice and device loss: what openBackend picks, the error when nothing fits, and the
// CPU fallback when the device dies mid-run.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { openBackend } from '../../native-gpu/index.js';
import { openEncoder } from '../../extension/engine/embed/encoders/index.js';
import { tokenizeImages } from '../../extension/engine/search/tokenize.js';
import type { Codebook } from '../../extension/engine/codebook/codebook.js';
import { hasHardwareAdapter } from '../../native-gpu/webgpu/device.js';
import { UserError } from '../../common/errors.js';
import { assertSameNearest, matrix, openCpu, openGpu, test } from './harness.js';

test("openBackend('webgpu') without allowSoftware: a hardware adapter, or a clear UserError", async () => {
  if (await hasHardwareAdapter()) {
    const backend = await openBackend('webgpu', { allowSoftware: false });
    try {
      assert.match(backend.device, /^webgpu: /);
      assert.doesNotMatch(backend.device, /software/);
    } finally {
      await backend.dispose();
    }
  } else {
    await assert.rejects(openBackend('webgpu', { allowSoftware: false }), (err: Error) => {
      assert.ok(err instanceof UserError, `expected a UserError, got ${err}`);
      assert.match(err.message, /^no WebGPU adapter found \(tried .+\).*; use --device cpu$/);
      assert.doesNotMatch(err.message, /\n/);
      return true;
    });
  }
});

test("openBackend('auto') never picks a software adapter", async () => {
  const backend = await openBackend('auto');
  try {
    if (await hasHardwareAdapter()) assert.equal(backend.name, 'webgpu');
    else assert.equal(backend.name, 'cpu');
    assert.doesNotMatch(backend.device, /software/);
  } finally {
    await backend.dispose();
  }
});

test('the device string names the adapter and its backend', async () => {
  const gpu = await openGpu();
  try {
    assert.match(gpu.device, /^webgpu: .+ \((software, )?(vulkan|opengles)\)$/);
  } finally {
    await gpu.dispose();
  }
});

test('device lost mid-run: the pending call and later calls finish on the CPU with a warning', async () => {
  const warnings: string[] = [];
  const gpu = await openGpu(undefined, warnings);
  const cpu = await openCpu();
  try {
    const codes = matrix(257, 24, 21), queries = matrix(90, 24, 22);
    const handle = await gpu.loadCodebook(codes);
    const ref = await cpu.nearest(await cpu.loadCodebook(codes), queries);
    const before = await gpu.nearest(handle, queries);
    assertSameNearest(before.ids, ref.ids, codes.data, queries);
    assert.equal(warnings.length, 0);

    const pending = gpu.nearest(handle, queries);
    gpu.gpuDevice.destroy(); // while the call is queued / in flight
    const during = await pending;
    assertSameNearest(during.ids, ref.ids, codes.data, queries);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /device lost.*CPU backend/);

    const step = await gpu.kmeansStep(handle, queries);
    assertSameNearest(step.ids, ref.ids, codes.data, queries);
    assert.equal(step.counts.reduce((a, b) => a + b, 0), queries.rows);
    assert.deepEqual(Array.from(await gpu.histogram(Int32Array.from([0, 2, 2]), 3)), [1, 0, 2]);
    assert.match(gpu.fallbackReason ?? '', /device lost/);
    assert.equal(warnings.length, 1, 'one warning, not one per call');
  } finally {
    await gpu.dispose();
    await cpu.dispose();
  }
});

test('after a loss, results name the CPU that computed them, and the device change is announced once', async () => {
  const changes: string[] = [];
  const gpu = await openGpu(undefined, [], changes);
  const cpu = await openCpu();
  const encoder = await openEncoder('dct', gpu);
  try {
    // tokenizeImages reads only the frozen table, the fingerprint and the encoder of a codebook
    const cb = { frozen: matrix(64, encoder.d, 31), fingerprint: 'test-codebook', meta: { encoder: encoder.descriptor } } as unknown as Codebook;
    const image = path.resolve(__dirname, '../fixtures/images/coffee.jpg');
    const gpuLabel = gpu.device;
    assert.match(gpuLabel, /^webgpu: /);
    const onGpu = (await tokenizeImages(cb, encoder, [image], gpu)).results[0]!;
    assert.equal(onGpu.device, gpuLabel);
    assert.deepEqual(changes, []);

    gpu.gpuDevice.destroy();
    const onCpu = (await tokenizeImages(cb, encoder, [image], gpu)).results[0]!;
    const fallback = `${cpu.device} (fallback from ${gpuLabel})`;
    assert.equal(onCpu.device, fallback, 'the grid names the CPU backend, not the lost GPU');
    assert.equal(gpu.device, fallback);
    assert.deepEqual(changes, [fallback]);
    assert.equal(onCpu.ids.length, onGpu.ids.length);
  } finally {
    await encoder.dispose();
    await gpu.dispose();
    await cpu.dispose();
  }
});

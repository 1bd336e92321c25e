// ONNX sessions on the compute backend's device (native-gpu/onnx-session.ts). In this tier there
// is usually no Vulkan adapter, so asking for WebGPU shows the fallback: one warning, the CPU
// provider, the same numbers. (The gpu tier runs the WebGPU provider itself.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../../native-gpu/cpu/onnx-graph.js';
import { ortCpuDevice, ortWebGpuDevice, describeTensors, openModelSession } from '../../native-gpu/onnx-session.js';
import { UserError } from '../../common/errors.js';

function doubler(): Uint8Array {
  const g = new GraphBuilder('doubler');
  g.input('x', 'float32', ['n', 3]);
  g.input('steps', 'int64', []);
  g.node('Add', ['x', 'x'], ['y']);
  g.output('y', 'float32', ['n', 3]);
  return g.toModel();
}

const feeds = () => ({ x: new ort.Tensor('float32', Float32Array.of(1, 2, 3, 4, 5, 6), [2, 3]), steps: new ort.Tensor('int64', BigInt64Array.of(1n), []) });

test('webgpu: the WebGPU provider runs the model, or (no adapter) the CPU does after one warning; the numbers are the same', async () => {
  const warnings: string[] = [];
  const session = await openModelSession(doubler(), 'doubler', { device: 'webgpu', onWarning: (m) => warnings.push(m) });
  try {
    const y = (await session.run(feeds(), ['y'])).y!.data as Float32Array;
    assert.deepEqual(Array.from(y), [2, 4, 6, 8, 10, 12]);
    if (session.device === ortWebGpuDevice()) {
      assert.deepEqual(warnings, []);
    } else {
      assert.equal(session.device, ortCpuDevice());
      assert.equal(warnings.length, 1, warnings.join('\n'));
      assert.match(warnings[0]!, /^onnxruntime's WebGPU provider could not run doubler \(.+\); it runs on the CPU$/);
    }
  } finally {
    await session.release();
  }
});

test('cpu: inputs and outputs as the model declares them; a bad model or a bad feed is one clear line', async () => {
  const session = await openModelSession(doubler(), 'doubler', { device: 'cpu' });
  try {
    assert.equal(session.device, ortCpuDevice());
    assert.equal(describeTensors(session.inputs), "'x' [n,3], 'steps' [] int64");
    assert.equal(describeTensors(session.outputs), "'y' [n,3]");
    await assert.rejects(session.run({ ...feeds(), x: new ort.Tensor('float32', new Float32Array(4), [2, 2]) }), (e) => e instanceof UserError && /^doubler: inference failed \(/.test(e.message) && !e.message.includes('\n'));
  } finally {
    await session.release();
  }
  await assert.rejects(openModelSession(Uint8Array.of(1, 2, 3), 'garbage.onnx', { device: 'cpu' }), (e) => e instanceof UserError && /^garbage\.onnx: cannot load ONNX model \(/.test(e.message));
});

test('outputs: with a step named, a NaN or an infinity in an f32 or f16 output is one line naming the model, the output and the step', async () => {
  // y = log(x): log(0) = -Infinity, log(-1) = NaN, finite elsewhere
  for (const type of ['float32', 'float16'] as const) {
    const g = new GraphBuilder('log');
    g.input('x', type, [3]);
    g.node('Log', ['x'], ['y']);
    g.output('y', type, [3]);
    const session = await openModelSession(g.toModel(), 'log.onnx', { device: 'cpu' });
    const x = (values: number[]) => ({ x: type === 'float32' ? new ort.Tensor('float32', Float32Array.from(values), [3]) : new ort.Tensor('float16', Uint16Array.from(values, (v) => (v === 1 ? 0x3c00 : v === 0 ? 0 : 0xbc00)), [3]) });
    try {
      await assert.rejects(session.run(x([1, 1, 0]), ['y'], 'step 2 of 5'), (e) => e instanceof UserError && e.message === "log.onnx: output 'y' holds -Infinity (value 2 of 3) at step 2 of 5; a model must give finite numbers");
      await assert.rejects(session.run(x([1, -1, 1]), ['y'], 'step 3 of 5'), (e) => e instanceof UserError && e.message === "log.onnx: output 'y' holds NaN (value 1 of 3) at step 3 of 5; a model must give finite numbers");
      assert.equal((await session.run(x([1, 1, 1]), ['y'], 'step 4 of 5')).y!.data.length, 3);
      // without a step the caller checks what it reads (logits may hold -Infinity where a model masks)
      assert.equal((await session.run(x([1, 1, 0]), ['y'])).y!.data.length, 3);
    } finally {
      await session.release();
    }
  }
});

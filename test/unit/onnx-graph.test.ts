// The hand-written ONNX writer is checked the only way that matters: onnxruntime must load the
// bytes and compute the expected numbers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { GraphBuilder, float, floats } from '../../native-gpu/cpu/onnx-graph.js';
import { seededRandom } from '../../extension/engine/core/sampling.js';

async function run(g: GraphBuilder, feeds: Record<string, ort.Tensor>): Promise<ort.InferenceSession.OnnxValueMapType> {
  const session = await ort.InferenceSession.create(g.toModel());
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

test('Gemm(transB, alpha=-2, C) -> ArgMin with a symbolic batch size matches a brute-force search', async () => {
  const rand = seededRandom(7);
  const k = 37, d = 11;
  const codes = Float32Array.from({ length: k * d }, () => rand() * 2 - 1);
  const norms = new Float32Array(k);
  for (let c = 0; c < k; c++) for (let j = 0; j < d; j++) norms[c] += codes[c * d + j] ** 2;

  const g = new GraphBuilder('nearest');
  g.input('q', 'float32', ['N', d]);
  g.initializer('codes', { type: 'float32', dims: [k, d], data: codes });
  g.initializer('norms', { type: 'float32', dims: [k], data: norms });
  g.node('Gemm', ['q', 'codes', 'norms'], ['scores'], { transB: 1, alpha: float(-2) });
  g.node('ArgMin', ['scores'], ['ids'], { axis: 1, keepdims: 0 });
  g.output('ids', 'int64', ['N']);
  const session = await ort.InferenceSession.create(g.toModel());

  for (const n of [1, 50]) {
    const q = Float32Array.from({ length: n * d }, () => rand() * 2 - 1);
    const out = await session.run({ q: new ort.Tensor('float32', q, [n, d]) });
    const ids = out.ids.data as BigInt64Array;
    assert.equal(ids.length, n);
    for (let i = 0; i < n; i++) {
      let best = -1, bestDist = Infinity;
      for (let c = 0; c < k; c++) {
        let dist = 0;
        for (let j = 0; j < d; j++) dist += (q[i * d + j] - codes[c * d + j]) ** 2;
        if (dist < bestDist) { bestDist = dist; best = c; }
      }
      assert.equal(Number(ids[i]), best, `query ${i} of ${n}`);
    }
  }
  await session.release();
});

test('float16, int64 and int32 initializers are read back exactly', async () => {
  // 0x3c00 = 1, 0xc000 = -2, 0x3800 = 0.5, 0x6400 = 1024 (IEEE binary16)
  const ok = new GraphBuilder('halves');
  ok.input('x', 'float32', [2, 2]);
  ok.initializer('h', { type: 'float16', dims: [2, 2], data: new Uint16Array([0x3c00, 0xc000, 0x3800, 0x6400]) });
  ok.initializer('shape', { type: 'int64', dims: [2], data: new BigInt64Array([4n, 1n]) });
  ok.initializer('offset', { type: 'int32', dims: [1], data: new Int32Array([-3]) });
  ok.node('Cast', ['h'], ['h32'], { to: 1 });
  ok.node('Add', ['x', 'h32'], ['sum']);
  ok.node('Reshape', ['sum', 'shape'], ['y']);
  ok.node('Cast', ['offset'], ['offset32'], { to: 1 });
  ok.node('Add', ['y', 'offset32'], ['z']);
  ok.output('z', 'float32', [4, 1]);
  const out = await run(ok, { x: new ort.Tensor('float32', new Float32Array([10, 20, 30, 40]), [2, 2]) });
  assert.deepEqual(out.z.dims, [4, 1]);
  assert.deepEqual(Array.from(out.z.data as Float32Array), [8, 15, 27.5, 1061]);
});

test('attributes of every supported kind reach the operator (Constant value_*, negative ints)', async () => {
  const g = new GraphBuilder('constants');
  g.input('x', 'float32', [2, 3]);
  g.node('Constant', [], ['f'], { value_float: float(0.25) });
  g.node('Constant', [], ['fs'], { value_floats: floats([1.5, -2.5, 3]) });
  g.node('Constant', [], ['i'], { value_int: -7 });
  g.node('Constant', [], ['is'], { value_ints: [-1, 2, 300000, -4000000000] });
  g.node('Constant', [], ['s'], { value_string: 'café' });
  g.node('Constant', [], ['t'], { value: { type: 'float32', dims: [1, 3], data: new Float32Array([1, 2, 3]) } });
  g.node('Mul', ['x', 't'], ['xt']);
  g.node('ReduceMin', ['xt'], ['m'], { axes: [-1], keepdims: 0 }); // -1: 10-byte varint
  g.node('LeakyRelu', ['m'], ['lr'], { alpha: float(0.5) });
  g.output('f', 'float32', []);
  g.output('fs', 'float32', [3]);
  g.output('i', 'int64', []);
  g.output('is', 'int64', [4]);
  g.output('s', 'string', []);
  g.output('lr', 'float32', [2]);
  const out = await run(g, { x: new ort.Tensor('float32', new Float32Array([1, -1, 2, 3, 1, 0]), [2, 3]) });
  assert.deepEqual(Array.from(out.f.data as Float32Array), [0.25]);
  assert.deepEqual(Array.from(out.fs.data as Float32Array), [1.5, -2.5, 3]);
  assert.deepEqual(Array.from(out.i.data as BigInt64Array), [-7n]);
  assert.deepEqual(Array.from(out.is.data as BigInt64Array), [-1n, 2n, 300000n, -4000000000n]);
  assert.deepEqual(out.s.data, ['café']);
  // rows x*t: [1,-2,6] -> min -2 -> LeakyRelu(0.5) -1 ; [3,2,0] -> 0
  assert.deepEqual(Array.from(out.lr.data as Float32Array), [-1, 0]);
});

test('mistakes are refused when the graph is built, not inside onnxruntime', () => {
  const g = new GraphBuilder('bad');
  assert.throws(() => g.node('LeakyRelu', ['x'], ['y'], { alpha: 0.5 }), /float\(\)/);
  assert.throws(() => g.node('Foo', ['x'], ['y'], { list: [1, 0.5] }), /floats\(\)/);
  assert.throws(() => g.initializer('w', { type: 'float32', dims: [2, 2], data: new Float32Array(3) }), /3 values for dims \[2, 2\]/);
  g.node('Relu', ['x'], ['y'], {}, { name: 'r' });
  assert.throws(() => g.node('Relu', ['y'], ['z'], {}, { name: 'r' }), /duplicate node name/);
});

// Histogram of token ids: one thread per id, atomicAdd on u32 counters. Ids are range-checked on
// the host first (an out-of-range id is the user's data problem, not a GPU fault).
import { REMEDIES, UserError } from '../../../common/errors.js';
import { checkTokenIds } from '../../token-ids.js';
import { STORAGE, readBack } from '../buffers.js';
import { dispatch, grid2d, type ProgramInfo } from '../program.js';
import type { Runtime } from '../runtime.js';

const WORKGROUP = 256;

export function histogramProgram(): ProgramInfo {
  return {
    name: 'histogram',
    cacheKey: `${WORKGROUP}`,
    source: () => /* wgsl */ `
struct Params { count: u32, rowsPerY: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read_write> counts: array<atomic<u32>>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.y * params.rowsPerY + gid.x;
  if (i >= params.count) { return; }
  atomicAdd(&counts[ids[i]], 1u);
}
`,
  };
}

export async function histogram(rt: Runtime, ids: Int32Array, k: number): Promise<Uint32Array> {
  if (!Number.isInteger(k) || k < 1) throw new UserError(`the codebook size must be a positive integer, got ${k}`);
  checkTokenIds(ids, k);
  const { device, pool } = rt;
  if (k * 4 > device.limits.maxStorageBufferBindingSize) throw new UserError(`a histogram of ${k} codes is too large for this GPU`, REMEDIES.useCpu);
  const pipeline = await rt.pipelines.get(histogramProgram());
  const counts = pool.acquire(k * 4, STORAGE);
  const temporaries: GPUBuffer[] = [counts];
  try {
    const encoder = device.createCommandEncoder();
    encoder.clearBuffer(counts);
    const batch = Math.floor(rt.batchBytes / 4);
    for (let start = 0; start < ids.length; start += batch) {
      const part = ids.subarray(start, Math.min(ids.length, start + batch));
      const idBuffer = pool.upload(part);
      temporaries.push(idBuffer);
      const [gx, gy] = grid2d(Math.ceil(part.length / WORKGROUP), device.limits.maxComputeWorkgroupsPerDimension);
      const params = pool.uniform(new Uint32Array([part.length, gx * WORKGROUP, 0, 0]));
      temporaries.push(params);
      dispatch(device, encoder, pipeline, [idBuffer, counts, params], [gx, gy]);
    }
    device.queue.submit([encoder.finish()]);
    return new Uint32Array(await readBack(device, pool, counts, k * 4));
  } finally {
    for (const b of temporaries) pool.release(b);
  }
}

// Histogram of token ids: one thread per id, atomicAdd on u32 counters. Ids are range-checked on
// the host first (an out-of-range id is the user's data problem, not a GPU fault).
import { REMEDIES, UserError } from '../../../common/errors.js';
import { checkTokenIds } from '../../token-ids.js';
import { grid2d, run, type DispatchSpec, type ProgramInfo } from '../program.js';
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
  const limits = rt.device.limits;
  if (k * 4 > limits.maxStorageBufferBindingSize) throw new UserError(`a histogram of ${k} codes is too large for this GPU`, REMEDIES.useCpu);
  // Ids go up in batches that fit one binding, each counted by its own dispatch into `counts`.
  const batch = Math.floor(rt.batchBytes / 4);
  const inputs: Int32Array[] = [];
  const dispatches: DispatchSpec[] = [];
  for (let start = 0; start < ids.length; start += batch) {
    const part = ids.subarray(start, Math.min(ids.length, start + batch));
    const [gx, gy] = grid2d(Math.ceil(part.length / WORKGROUP), limits.maxComputeWorkgroupsPerDimension);
    const uniform = new Uint32Array([part.length, gx * WORKGROUP, 0, 0]);
    dispatches.push({ program: histogramProgram(), bindings: [{ input: inputs.length }, { output: 0 }, { uniform }], workgroups: [gx, gy] });
    inputs.push(part);
  }
  const [counts] = await run(rt, { inputs, outputs: [{ bytes: k * 4, clear: true }], dispatches });
  return new Uint32Array(counts);
}

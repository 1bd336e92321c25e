// k-means sums: per-code sums of the assigned points, deterministic (no float atomics).
// The host counting-sorts the batch's point indices by code (it has the ids anyway, exact and
// O(N + K)); one thread per (code, vec4 of dimensions) then adds its code's points in increasing
// point order into the code's f32 running sum, which persists across query batches. Same input,
// same bits, on every run. Counts come from the same counting sort, exactly.
import { STORAGE } from '../buffers.js';
import { grid2d, run, type DispatchSpec, type ProgramInfo } from '../program.js';
import type { Runtime } from '../runtime.js';

const WORKGROUP = 64;

export function accumulateProgram(): ProgramInfo {
  return {
    name: 'kmeans-accumulate',
    cacheKey: `${WORKGROUP}`,
    source: () => /* wgsl */ `
struct Params { codeRows: u32, codeBase: u32, dVec: u32, rowsPerY: u32 }
@group(0) @binding(0) var<storage, read> points: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> order: array<u32>;   // batch rows sorted by code
@group(0) @binding(2) var<storage, read> offsets: array<u32>; // code k's rows: order[offsets[k] .. offsets[k+1])
@group(0) @binding(3) var<storage, read_write> sums: array<vec4<f32>>; // this chunk's codes x dVec
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = gid.y * params.rowsPerY + gid.x;
  let code = t / params.dVec;
  if (code >= params.codeRows) { return; }
  let dv = t % params.dVec;
  let first = offsets[params.codeBase + code];
  let last = offsets[params.codeBase + code + 1u];
  if (first == last) { return; }
  var s = vec4<f32>(0.0);
  for (var j = first; j < last; j++) { s += points[order[j] * params.dVec + dv]; }
  sums[code * params.dVec + dv] += s;
}
`,
  };
}

/** Counting sort of batch rows by code: order (rows grouped by code, ascending row within a code)
 *  and offsets (K + 1 prefix sums). */
export function sortByCode(ids: Int32Array, k: number): { order: Uint32Array; offsets: Uint32Array } {
  const offsets = new Uint32Array(k + 1);
  for (let i = 0; i < ids.length; i++) offsets[ids[i] + 1]++;
  for (let c = 0; c < k; c++) offsets[c + 1] += offsets[c];
  const next = offsets.slice(0, k);
  const order = new Uint32Array(ids.length);
  for (let i = 0; i < ids.length; i++) order[next[ids[i]]++] = i;
  return { order, offsets };
}

/** Per-chunk f32 sum buffers that live for one k-means step. */
export class SumBuffers {
  readonly buffers: GPUBuffer[];

  constructor(private readonly rt: Runtime, chunks: { rows: number }[], private readonly dPad: number) {
    const encoder = rt.device.createCommandEncoder();
    this.buffers = chunks.map((c) => {
      const b = rt.pool.acquire(c.rows * dPad * 4, STORAGE);
      encoder.clearBuffer(b); // pooled buffers hold old data
      return b;
    });
    rt.device.queue.submit([encoder.finish()]);
  }

  /** Adds one batch of points (already on the GPU) into the sums of every chunk. */
  async add(points: GPUBuffer, ids: Int32Array, chunks: { base: number; rows: number }[], k: number): Promise<void> {
    const { order, offsets } = sortByCode(ids, k);
    const dVec = this.dPad / 4;
    const maxPerDimension = this.rt.device.limits.maxComputeWorkgroupsPerDimension;
    const dispatches = chunks.map((chunk, i): DispatchSpec => {
      const [gx, gy] = grid2d(Math.ceil((chunk.rows * dVec) / WORKGROUP), maxPerDimension);
      const uniform = new Uint32Array([chunk.rows, chunk.base, dVec, gx * WORKGROUP]);
      return { program: accumulateProgram(), bindings: [points, { input: 0 }, { input: 1 }, this.buffers[i], { uniform }], workgroups: [gx, gy] };
    });
    await run(this.rt, { inputs: [order, offsets], dispatches });
  }

  release(): void {
    for (const b of this.buffers) this.rt.pool.release(b);
  }
}

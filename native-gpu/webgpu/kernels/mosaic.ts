// Atlas mosaic: token grid -> planar RGB pixels, one thread per output value. Only the atlas rows
// the grid uses go to the GPU (compacted on the host), so a 500K-code atlas costs nothing here.
import type { Matrix } from '../../backend.js';
import { REMEDIES, UserError } from '../../../common/errors.js';
import { grid2d, run, type ProgramInfo } from '../program.js';
import { checkTokenIds } from '../../token-ids.js';
import type { Runtime } from '../runtime.js';

const WORKGROUP = 256;

export function mosaicProgram(): ProgramInfo {
  return {
    name: 'mosaic',
    cacheKey: `${WORKGROUP}`,
    source: () => /* wgsl */ `
struct Params { gridW: u32, patchSize: u32, width: u32, height: u32, rowsPerY: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<storage, read> atlas: array<f32>;   // used rows only, [rows x 3*p*p]
@group(0) @binding(1) var<storage, read> slots: array<u32>;   // grid cell -> atlas row
@group(0) @binding(2) var<storage, read_write> image: array<f32>; // planar [3][height][width]
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.y * params.rowsPerY + gid.x;
  let plane = params.width * params.height;
  if (i >= 3u * plane) { return; }
  let c = i / plane;
  let y = (i % plane) / params.width;
  let x = i % params.width;
  let p = params.patchSize;
  let row = slots[(y / p) * params.gridW + x / p];
  image[i] = atlas[row * 3u * p * p + c * p * p + (y % p) * p + x % p];
}
`,
  };
}

export async function mosaic(rt: Runtime, atlas: Matrix, ids: Int32Array, gridH: number, gridW: number, patch: number): Promise<Float32Array> {
  const p = patch;
  if (!Number.isInteger(p) || p < 1) throw new UserError(`the patch size must be a positive integer, got ${p}`);
  if (atlas.cols !== 3 * p * p) throw new UserError(`the atlas rows have ${atlas.cols} values but patches of ${p}x${p} RGB need ${3 * p * p}`);
  if (ids.length !== gridH * gridW) throw new UserError(`the token grid ${gridH}x${gridW} needs ${gridH * gridW} ids, got ${ids.length}`);
  checkTokenIds(ids, atlas.rows);
  const limits = rt.device.limits;
  const width = gridW * p, height = gridH * p;
  const outBytes = 3 * width * height * 4;
  if (outBytes > limits.maxStorageBufferBindingSize) throw new UserError(`a ${width}x${height} mosaic is too large for this GPU's buffers`, REMEDIES.useCpu);
  if (outBytes === 0) return new Float32Array(0);

  const { used, slots } = compact(atlas, ids);
  const [gx, gy] = grid2d(Math.ceil(outBytes / 4 / WORKGROUP), limits.maxComputeWorkgroupsPerDimension);
  const uniform = new Uint32Array([gridW, p, width, height, gx * WORKGROUP, 0, 0, 0]);
  const [image] = await run(rt, {
    inputs: [used, slots],
    outputs: [{ bytes: outBytes }],
    dispatches: [{ program: mosaicProgram(), bindings: [{ input: 0 }, { input: 1 }, { output: 0 }, { uniform }], workgroups: [gx, gy] }],
  });
  return new Float32Array(image);
}

/** Each distinct id gets one row of a small atlas (`used`); `slots` maps grid cells to its rows. */
function compact(atlas: Matrix, ids: Int32Array): { used: Float32Array; slots: Uint32Array } {
  const rowOf = new Map<number, number>();
  const slots = new Uint32Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    let row = rowOf.get(ids[i]);
    if (row === undefined) rowOf.set(ids[i], (row = rowOf.size));
    slots[i] = row;
  }
  const used = new Float32Array(rowOf.size * atlas.cols);
  for (const [id, row] of rowOf) used.set(atlas.data.subarray(id * atlas.cols, (id + 1) * atlas.cols), row * atlas.cols);
  return { used, slots };
}

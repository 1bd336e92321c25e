// Orthonormal 2-D DCT-II of p x p patches, and its inverse, as two separable matrix products per
// (patch, channel) workgroup through workgroup memory:
//   forward  X = D x D^T   (D[u][y] = a(u) cos(pi (2y+1) u / 2p), a(0) = sqrt(1/p), else sqrt(2/p))
//   inverse  x = D^T X D
// Both are out[a][b] = sum_c sum_e M[a][c] in[c][e] M[b][e] with M = D or D^T, so one program
// serves both directions; only where values are read from and written to differs (image pixels
// vs coefficient rows). The basis is computed on the host in f64. Coefficients of a patch are
// channel-major [c][u][v], u the vertical frequency, as in the CPU backend.
import type { Matrix } from '../../backend.js';
import { REMEDIES, UserError } from '../../../common/errors.js';
import { grid2d, run, type ProgramInfo } from '../program.js';
import type { Runtime } from '../runtime.js';

type Direction = 'forward' | 'inverse';
const WORKGROUP = 64;

export function dctProgram(direction: Direction, p: number): ProgramInfo {
  // forward: read the image, write coefficient rows; inverse: the opposite.
  const imageIndex = '(c * params.height + gy * P + a) * params.width + gx * P + b';
  const coefIndex = '(patchIndex * 3u + c) * P * P + a * P + b';
  const [readIndex, writeIndex] = direction === 'forward' ? [imageIndex, coefIndex] : [coefIndex, imageIndex];
  return {
    name: 'dct',
    cacheKey: `${direction}/p${p}`,
    source: () => /* wgsl */ `
struct Params { gridW: u32, patches: u32, width: u32, height: u32, patchesPerY: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> basis: array<f32>; // M, row-major p x p
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

const P = ${p}u;
var<workgroup> tile: array<f32, ${p * p}>;
var<workgroup> mid: array<f32, ${p * p}>;

fn readAt(patchIndex: u32, gy: u32, gx: u32, c: u32, a: u32, b: u32) -> f32 { return src[${readIndex}]; }

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let patchIndex = wid.y * params.patchesPerY + wid.x;
  let c = wid.z;
  // A padding workgroup (grid rounded up) must still reach the barriers: it just does no I/O.
  let live = patchIndex < params.patches;
  let gy = patchIndex / params.gridW;
  let gx = patchIndex % params.gridW;
  for (var e = lid; e < P * P; e += ${WORKGROUP}u) {
    if (live) { tile[e] = readAt(patchIndex, gy, gx, c, e / P, e % P); }
  }
  workgroupBarrier();
  for (var e = lid; e < P * P; e += ${WORKGROUP}u) {
    let a = e / P;
    let b = e % P;
    var s = 0.0;
    for (var k = 0u; k < P; k++) { s = fma(basis[a * P + k], tile[k * P + b], s); }
    mid[e] = s;
  }
  workgroupBarrier();
  for (var e = lid; e < P * P; e += ${WORKGROUP}u) {
    let a = e / P;
    let b = e % P;
    var s = 0.0;
    for (var k = 0u; k < P; k++) { s = fma(mid[a * P + k], basis[b * P + k], s); }
    if (live) { dst[${writeIndex}] = s; }
  }
}
`,
  };
}

/** D[u][y] of the orthonormal DCT-II (forward) or its transpose (inverse), row-major. */
function basis(p: number, direction: Direction): Float32Array {
  const m = new Float32Array(p * p);
  for (let u = 0; u < p; u++)
    for (let y = 0; y < p; y++) {
      const v = (u === 0 ? Math.sqrt(1 / p) : Math.sqrt(2 / p)) * Math.cos((Math.PI * (2 * y + 1) * u) / (2 * p));
      if (direction === 'forward') m[u * p + y] = v;
      else m[y * p + u] = v;
    }
  return m;
}

function checkPatch(rt: Runtime, p: number): void {
  if (!Number.isInteger(p) || p < 1) throw new UserError(`the patch size must be a positive integer, got ${p}`);
  if (2 * p * p * 4 > rt.device.limits.maxComputeWorkgroupStorageSize) throw new UserError(`patches of ${p}x${p} are too large for the GPU DCT`, REMEDIES.useCpu);
}

async function transform(rt: Runtime, direction: Direction, src: Float32Array, gridH: number, gridW: number, p: number): Promise<Float32Array> {
  const limits = rt.device.limits;
  const bytes = src.length * 4;
  if (bytes > limits.maxStorageBufferBindingSize) throw new UserError(`an image of ${gridW * p}x${gridH * p} is too large for the GPU DCT`, REMEDIES.useCpu);
  if (bytes === 0) return new Float32Array(0);
  const patches = gridH * gridW;
  const [gx, gy] = grid2d(patches, limits.maxComputeWorkgroupsPerDimension);
  const uniform = new Uint32Array([gridW, patches, gridW * p, gridH * p, gx, 0, 0, 0]);
  const [dst] = await run(rt, {
    inputs: [src, basis(p, direction)],
    outputs: [{ bytes }],
    // one workgroup per (patch, channel)
    dispatches: [{ program: dctProgram(direction, p), bindings: [{ input: 0 }, { input: 1 }, { output: 0 }, { uniform }], workgroups: [gx, gy, 3] }],
  });
  return new Float32Array(dst);
}

export async function dctPatches(rt: Runtime, image: Float32Array, height: number, width: number, p: number): Promise<Matrix> {
  checkPatch(rt, p);
  if (height % p || width % p) throw new UserError(`the image is ${width}x${height}, not a whole number of ${p}x${p} patches`);
  if (image.length !== 3 * height * width) throw new UserError(`the image has ${image.length} values, expected 3 x ${height} x ${width}`);
  const gridH = height / p, gridW = width / p;
  return { rows: gridH * gridW, cols: 3 * p * p, data: await transform(rt, 'forward', image, gridH, gridW, p) };
}

export async function idctPatches(rt: Runtime, coefficients: Matrix, gridH: number, gridW: number, p: number): Promise<Float32Array> {
  checkPatch(rt, p);
  if (coefficients.cols !== 3 * p * p) throw new UserError(`the coefficient rows have ${coefficients.cols} values but ${p}x${p} RGB patches need ${3 * p * p}`);
  if (coefficients.rows !== gridH * gridW) throw new UserError(`the grid ${gridH}x${gridW} needs ${gridH * gridW} coefficient rows, got ${coefficients.rows}`);
  return transform(rt, 'inverse', coefficients.data, gridH, gridW, p);
}

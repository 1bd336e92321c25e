// Nearest code: a tiled distance GEMM fused with argmin.
//
// score(q, c) = ||c||^2 - 2 q.c  (||q||^2 is the same for every code, so it does not change the
// argmin). A workgroup of WGX x WGY threads owns a tile of TILE_M = WGY*TM queries and walks a
// split of the codebook chunk in tiles of TILE_N = WGX*TN codes; each thread holds TM x TN
// accumulators in registers (register tiling), and d is consumed TK at a time through workgroup
// memory with vec4 loads. After each code tile a thread folds its scores into a running
// (min, argmin) per query; at the end the WGX threads sharing a query row reduce in workgroup
// memory and write one partial minimum per (split, query). The merge program then reduces the
// partials of every split of every chunk.
//
// Grouped variant (IVF search, webgpu/ivf.ts): the same tile program, but each workgroup row
// (wid.y) takes its query block and code range from a table instead of the uniforms: entry t =
// (first query row, query rows <= TILE_M, first code in the chunk, code rows), so ONE dispatch
// searches every (cell, block of that cell's queries) pair against that cell's codes. Workgroup
// column wid.x is the split of the cell's range; splits past a short cell's end write "no code"
// (index 0xffffffff). Partials go to partial[(wid.x * tileCount + t) * TILE_M + row].
//
// Ties: a thread visits its codes in increasing index and keeps only strictly lower scores;
// every cross-thread / cross-split comparison is lexicographic on (score, index). So the lowest
// index wins among exact ties, as ArgMin does on the CPU backend.
import type { ProgramInfo } from '../program.js';

export interface NearestTile {
  /** threads along codes */
  wgX: number;
  /** threads along queries */
  wgY: number;
  /** queries per thread (multiple of 4) */
  tm: number;
  /** codes per thread (multiple of 4) */
  tn: number;
  /** depth of one workgroup-memory stage (multiple of 4) */
  tk: number;
}

/** 128 x 128 outputs per workgroup, 8 x 8 per thread: enough arithmetic per shared load for a big GPU. */
export const HARDWARE_TILE: NearestTile = { wgX: 16, wgY: 16, tm: 8, tn: 8, tk: 16 };
/** small tiles: software adapters run workgroups on a few CPU threads, and tests use small K */
export const SOFTWARE_TILE: NearestTile = { wgX: 8, wgY: 8, tm: 4, tn: 4, tk: 16 };

export function tileName(t: NearestTile): string {
  return `${t.wgX}x${t.wgY}/${t.tm}x${t.tn}/k${t.tk}`;
}

export function tileRows(t: NearestTile): { queries: number; codes: number } {
  return { queries: t.wgY * t.tm, codes: t.wgX * t.tn };
}

/** bytes of workgroup memory the program declares */
export function tileSharedBytes(t: NearestTile): number {
  const { queries, codes } = tileRows(t);
  return 4 * (t.tk * queries + t.tk * codes + codes + 2 * queries);
}

/** Throws when the tile cannot run on a device with these limits (a programming/bench error). */
export function checkTile(t: NearestTile, limits: GPUSupportedLimits): void {
  const problems: string[] = [];
  if (t.tm % 4 || t.tn % 4 || t.tk % 4) problems.push('tm, tn and tk must be multiples of 4');
  if (t.wgX * t.wgY > limits.maxComputeInvocationsPerWorkgroup) problems.push(`${t.wgX * t.wgY} threads > ${limits.maxComputeInvocationsPerWorkgroup}`);
  if (tileSharedBytes(t) > limits.maxComputeWorkgroupStorageSize) problems.push(`${tileSharedBytes(t)} bytes of workgroup memory > ${limits.maxComputeWorkgroupStorageSize}`);
  if (problems.length) throw new Error(`nearest tile ${tileName(t)} does not fit the device: ${problems.join('; ')}`);
}

/** Uniforms of one nearest dispatch, in the order of the WGSL struct. */
export function nearestParams(p: { queryRows: number; codeRows: number; codeBase: number; dVec: number; codesPerSplit: number; slotBase: number; slotStride: number }): Uint32Array {
  return new Uint32Array([p.queryRows, p.codeRows, p.codeBase, p.dVec, p.codesPerSplit, p.slotBase, p.slotStride, 0]);
}

/** Uniforms of one grouped dispatch (same struct; the per-tile fields come from the table). */
export function groupedParams(p: { codeBase: number; dVec: number; codesPerSplit: number; tileCount: number }): Uint32Array {
  return new Uint32Array([0, 0, p.codeBase, p.dVec, p.codesPerSplit, 0, 0, p.tileCount]);
}

const BEST_STRUCT = 'struct Best { score: f32, index: u32 }';
// Largest finite f32: scores of padding codes, and the starting "best", so no real score loses to them.
const FLT_MAX = '3.40282346638528859812e+38f';

export function nearestProgram(t: NearestTile, half: boolean, grouped = false): ProgramInfo {
  return {
    name: grouped ? 'nearest-grouped' : 'nearest',
    cacheKey: `${tileName(t)}/${half ? 'f16' : 'f32'}`,
    source: () => nearestSource(t, half, grouped),
  };
}

/** The unrolled pieces of the tile loop for one tile shape: unrolled so the accumulators and
 *  running minima stay in registers. */
function unrolled(t: NearestTile): { inner: string; fold: string; resetAcc: string } {
  const { tm, tn } = t;
  const tm4 = tm / 4, tn4 = tn / 4;
  // The inner product step.
  const lines: string[] = [];
  for (let i4 = 0; i4 < tm4; i4++) lines.push(`      let a${i4} = As[k * TILE_M4 + ty * ${tm4}u + ${i4}u];`);
  for (let j4 = 0; j4 < tn4; j4++) lines.push(`      let b${j4} = Bs[k * TILE_N4 + tx * ${tn4}u + ${j4}u];`);
  for (let i = 0; i < tm; i++)
    for (let j4 = 0; j4 < tn4; j4++) lines.push(`      acc[${i * tn4 + j4}] = fma(vec4<f32>(a${i >> 2}[${i & 3}]), b${j4}, acc[${i * tn4 + j4}]);`);
  // Folding a finished code tile into the running minima; codes are visited in increasing index,
  // so a strict < keeps the lowest index among ties.
  const foldLines: string[] = [];
  for (let j = 0; j < tn; j++) foldLines.push(`    let norm${j} = normTile[tx * TN + ${j}u];`);
  for (let i = 0; i < tm; i++)
    for (let j = 0; j < tn; j++)
      foldLines.push(`    { let s = norm${j} - 2.0 * acc[${i * tn4 + (j >> 2)}][${j & 3}]; if (s < best[${i}]) { best[${i}] = s; bestIndex[${i}] = params.codeBase + n0 + tx * TN + ${j}u; } }`);
  // Explicit zeroing per code tile: a zero-initialized var declared inside the loop was NOT reset
  // on each iteration on NVIDIA's Vulkan driver (measured: wrong ids once a workgroup walks more
  // than one code tile), though it was on Mesa.
  const resetAcc = Array.from({ length: tm * tn4 }, (_, i) => `    acc[${i}] = vec4<f32>(0.0);`).join('\n');
  return { inner: lines.join('\n'), fold: foldLines.join('\n'), resetAcc };
}

/** What differs between the f32 / f16 codebook and the plain / grouped variants. */
function variant(half: boolean, grouped: boolean): { codeDecl: string; range: string; output: string; tableDecl: string } {
  const codeDecl = half
    ? `@group(0) @binding(1) var<storage, read> codes: array<vec2<u32>>; // 4 halves per element
fn loadCode(i: u32) -> vec4<f32> { let p = codes[i]; return vec4<f32>(unpack2x16float(p.x), unpack2x16float(p.y)); }`
    : `@group(0) @binding(1) var<storage, read> codes: array<vec4<f32>>;
fn loadCode(i: u32) -> vec4<f32> { return codes[i]; }`;

  // Where a workgroup's queries, codes and output are: from the uniforms, or from its table entry.
  const range = grouped
    ? `  let entry = tiles[wid.y];
  let qTile = entry.x;
  let qEnd = entry.x + entry.y;
  let splitStart = entry.z + wid.x * params.codesPerSplit;
  let splitEnd = min(splitStart + params.codesPerSplit, entry.z + entry.w);`
    : `  let qTile = wid.y * TILE_M;
  let qEnd = params.queryRows;
  let splitStart = wid.x * params.codesPerSplit;
  let splitEnd = min(splitStart + params.codesPerSplit, params.codeRows);`;
  const output = grouped ? '(wid.x * params.tileCount + wid.y) * TILE_M + l' : '(params.slotBase + wid.x) * params.slotStride + qTile + l';
  const tableDecl = grouped ? '@group(0) @binding(5) var<storage, read> tiles: array<vec4<u32>>; // (first query, queries, first code, codes)\n' : '';
  return { codeDecl, range, output, tableDecl };
}

// The whole WGSL of the nearest kernels; the host-generated pieces come from unrolled() and variant().
// long: one shader, kept whole so it reads top to bottom as the shader it is
function nearestSource(t: NearestTile, half: boolean, grouped: boolean): string {
  const { tm, tn } = t;
  const tn4 = tn / 4;
  const { inner, fold, resetAcc } = unrolled(t);
  const { codeDecl, range, output, tableDecl } = variant(half, grouped);
  return /* wgsl */ `
${BEST_STRUCT}
struct Params { queryRows: u32, codeRows: u32, codeBase: u32, dVec: u32, codesPerSplit: u32, slotBase: u32, slotStride: u32, tileCount: u32 }
@group(0) @binding(0) var<storage, read> queries: array<vec4<f32>>;
${codeDecl}
@group(0) @binding(2) var<storage, read> norms: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<Best>;
@group(0) @binding(4) var<uniform> params: Params;
${tableDecl}
const WGX = ${t.wgX}u;
const WGY = ${t.wgY}u;
const TM = ${tm}u;
const TN = ${tn}u;
const TK = ${t.tk}u;
const KV = TK / 4u;
const NT = WGX * WGY;
const TILE_M = WGY * TM;
const TILE_N = WGX * TN;
const TILE_M4 = TILE_M / 4u;
const TILE_N4 = TILE_N / 4u;
const FLT_MAX = ${FLT_MAX};

// Stage k of a tile: As[k * TILE_M4 + m / 4][m % 4] = query m, coordinate k (transposed, so a
// thread's TM queries at one depth are TM/4 consecutive vec4s). Bs likewise for codes.
var<workgroup> As: array<vec4<f32>, TK * TILE_M4>;
var<workgroup> Bs: array<vec4<f32>, TK * TILE_N4>;
var<workgroup> normTile: array<f32, TILE_N>;
var<workgroup> redScore: array<f32, TILE_M>;
var<workgroup> redIndex: array<u32, TILE_M>;

@compute @workgroup_size(WGX, WGY)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let tx = lid.x;
  let ty = lid.y;
  let tid = ty * WGX + tx;
${range}

  var acc: array<vec4<f32>, ${tm * tn4}>;
  var best: array<f32, TM>;
  var bestIndex: array<u32, TM>;
  for (var i = 0u; i < TM; i++) { best[i] = FLT_MAX; bestIndex[i] = 0xffffffffu; }

  for (var n0 = splitStart; n0 < splitEnd; n0 += TILE_N) {
    workgroupBarrier(); // everyone is done reading the previous tile's norms
    for (var l = tid; l < TILE_N; l += NT) {
      var norm = FLT_MAX; // padding codes can never win
      if (n0 + l < splitEnd) { norm = norms[params.codeBase + n0 + l]; }
      normTile[l] = norm;
    }
${resetAcc}
    for (var k0 = 0u; k0 < params.dVec; k0 += KV) {
      for (var l = tid; l < TILE_M * KV; l += NT) {
        let r = l / KV;
        let kv = l % KV;
        var v = vec4<f32>(0.0);
        if (qTile + r < qEnd && k0 + kv < params.dVec) { v = queries[(qTile + r) * params.dVec + k0 + kv]; }
        let base = kv * 4u * TILE_M4 + r / 4u;
        let c = r % 4u;
        As[base][c] = v.x; As[base + TILE_M4][c] = v.y; As[base + 2u * TILE_M4][c] = v.z; As[base + 3u * TILE_M4][c] = v.w;
      }
      for (var l = tid; l < TILE_N * KV; l += NT) {
        let r = l / KV;
        let kv = l % KV;
        var v = vec4<f32>(0.0);
        if (n0 + r < splitEnd && k0 + kv < params.dVec) { v = loadCode((n0 + r) * params.dVec + k0 + kv); }
        let base = kv * 4u * TILE_N4 + r / 4u;
        let c = r % 4u;
        Bs[base][c] = v.x; Bs[base + TILE_N4][c] = v.y; Bs[base + 2u * TILE_N4][c] = v.z; Bs[base + 3u * TILE_N4][c] = v.w;
      }
      workgroupBarrier();
      for (var k = 0u; k < TK; k++) {
${inner}
      }
      workgroupBarrier();
    }
${fold}
  }

  // The WGX threads of a query row take turns folding their minima into workgroup memory.
  for (var t = 0u; t < WGX; t++) {
    if (tx == t) {
      for (var i = 0u; i < TM; i++) {
        let row = ty * TM + i;
        if (t == 0u || best[i] < redScore[row] || (best[i] == redScore[row] && bestIndex[i] < redIndex[row])) {
          redScore[row] = best[i];
          redIndex[row] = bestIndex[i];
        }
      }
    }
    workgroupBarrier();
  }
  for (var l = tid; l < TILE_M; l += NT) {
    if (qTile + l < qEnd) {
      partial[${output}] = Best(redScore[l], redIndex[l]);
    }
  }
}
`;
}

/** Reduces the partial minima of `slots` splits (in code order) to one Best per query. */
export function mergeProgram(): ProgramInfo {
  return {
    name: 'nearest-merge',
    cacheKey: '64',
    source: () => /* wgsl */ `
${BEST_STRUCT}
struct Params { queryRows: u32, slots: u32, slotStride: u32, rowsPerY: u32 }
@group(0) @binding(0) var<storage, read> partial: array<Best>;
@group(0) @binding(1) var<storage, read_write> result: array<Best>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let q = gid.y * params.rowsPerY + gid.x;
  if (q >= params.queryRows) { return; }
  var b = partial[q];
  for (var s = 1u; s < params.slots; s++) {
    let c = partial[s * params.slotStride + q];
    if (c.score < b.score || (c.score == b.score && c.index < b.index)) { b = c; }
  }
  result[q] = b;
}
`,
  };
}

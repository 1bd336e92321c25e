// Orthonormal 2-D DCT-II of p x p patches of a planar RGB image, and its inverse, with the layout
// ComputeBackend.dctPatches fixes: one row per patch in raster order, each row channel-major
// [c][u][v] (u = vertical frequency, v = horizontal). Separable: C = D X D^T and X = D^T C D with
// D the p x p DCT-II matrix, whose rows are orthonormal, so the transform is exactly invertible.
import type { Matrix } from '../backend.js';

const bases = new Map<number, { d: Float64Array; dT: Float64Array }>();

/** D[u*p + x] = a(u) cos(pi (2x+1) u / 2p), a(0) = sqrt(1/p), a(u>0) = sqrt(2/p), and its transpose
 *  dT[x*p + u]; built once per p. */
function dctMatrix(p: number): { d: Float64Array; dT: Float64Array } {
  let basis = bases.get(p);
  if (!basis) {
    const d = new Float64Array(p * p), dT = new Float64Array(p * p);
    for (let u = 0; u < p; u++) {
      const a = Math.sqrt((u === 0 ? 1 : 2) / p);
      for (let x = 0; x < p; x++) dT[x * p + u] = d[u * p + x] = a * Math.cos((Math.PI * (2 * x + 1) * u) / (2 * p));
    }
    basis = { d, dT };
    bases.set(p, basis);
  }
  return basis;
}

function checkGrid(height: number, width: number, patch: number): void {
  if (!(patch > 0) || height % patch !== 0 || width % patch !== 0) {
    throw new Error(`dct: image ${width}x${height} is not a whole number of ${patch}x${patch} patches`);
  }
}

// The 1-D transforms below use the basis's symmetry D[u][p-1-x] = (-1)^u D[u][x]: even
// frequencies see only x[i] + x[p-1-i], odd ones only x[i] - x[p-1-i], so each output is a sum
// over half of the inputs (half the multiply-adds of a plain matrix-vector product; the 2-D
// transform of a 16 x 16 patch takes 4,096 instead of 8,192). Each reads its input and writes its
// output with a stride, so rows and columns of a patch go straight from the image and into the
// result. For odd p the middle input only reaches even frequencies (cos(pi u / 2) = 0 for odd u).

/** dst[d0 + u ds] = sum_x D[u][x] src[s0 + x ss]; `even`, `odd`: scratch of p / 2. */
function forward1d(src: Float64Array, s0: number, ss: number, dst: Float64Array, d0: number, ds: number,
                   p: number, d: Float64Array, even: Float64Array, odd: Float64Array): void {
  const half = p >> 1;
  for (let x = 0; x < half; x++) {
    const a = src[s0 + x * ss], b = src[s0 + (p - 1 - x) * ss];
    even[x] = a + b;
    odd[x] = a - b;
  }
  const middle = p & 1 ? src[s0 + half * ss] : 0;
  for (let u = 0; u < p; u++) {
    const folded = u & 1 ? odd : even, row = u * p;
    let s = u & 1 ? 0 : middle * d[row + half];
    for (let x = 0; x < half; x++) s += d[row + x] * folded[x];
    dst[d0 + u * ds] = s;
  }
}

/** dst[d0 + x ds] = sum_u D[u][x] src[s0 + u ss] (dT: D transposed). */
function inverse1d(src: Float64Array, s0: number, ss: number, dst: Float64Array, d0: number, ds: number,
                   p: number, dT: Float64Array): void {
  const half = p >> 1;
  for (let x = 0; x < half + (p & 1); x++) {
    const row = x * p;
    let sumEven = 0, sumOdd = 0;
    for (let u = 0; u < p; u += 2) sumEven += dT[row + u] * src[s0 + u * ss];
    for (let u = 1; u < p; u += 2) sumOdd += dT[row + u] * src[s0 + u * ss];
    dst[d0 + x * ds] = sumEven + sumOdd;
    if (x < half) dst[d0 + (p - 1 - x) * ds] = sumEven - sumOdd;
  }
}

export function dctPatches(image: Float32Array, height: number, width: number, patch: number): Matrix {
  checkGrid(height, width, patch);
  if (image.length !== 3 * height * width) throw new Error(`dctPatches: expected ${3 * height * width} values for 3x${height}x${width}, got ${image.length}`);
  const p = patch;
  const { d } = dctMatrix(p);
  const gridH = height / p;
  const gridW = width / p;
  const cols = 3 * p * p;
  const out = new Float32Array(gridH * gridW * cols);
  // f64 scratch only, so the 1-D transforms see one array type (V8 keeps them monomorphic)
  const block = new Float64Array(p * p), rowsDone = new Float64Array(p * p), done = new Float64Array(p * p);
  const even = new Float64Array(p >> 1), odd = new Float64Array(p >> 1);
  for (let gy = 0; gy < gridH; gy++) {
    for (let gx = 0; gx < gridW; gx++) {
      for (let c = 0; c < 3; c++) {
        const origin = c * height * width + gy * p * width + gx * p;
        const first = (gy * gridW + gx) * cols + c * p * p; // this patch's channel c: [u][v]
        for (let y = 0; y < p; y++) {
          for (let x = 0, src = origin + y * width; x < p; x++) block[y * p + x] = image[src + x];
          forward1d(block, y * p, 1, rowsDone, y * p, 1, p, d, even, odd);
        }
        for (let v = 0; v < p; v++) forward1d(rowsDone, v, p, done, v, p, p, d, even, odd);
        out.set(done, first);
      }
    }
  }
  return { rows: gridH * gridW, cols, data: out };
}

export function idctPatches(coefficients: Matrix, gridH: number, gridW: number, patch: number): Float32Array {
  const p = patch;
  if (coefficients.rows !== gridH * gridW || coefficients.cols !== 3 * p * p) {
    throw new Error(`idctPatches: expected [${gridH * gridW} x ${3 * p * p}] coefficients, got [${coefficients.rows} x ${coefficients.cols}]`);
  }
  const { dT } = dctMatrix(p);
  const height = gridH * p;
  const width = gridW * p;
  const out = new Float32Array(3 * height * width);
  const block = new Float64Array(p * p), columnsDone = new Float64Array(p * p), done = new Float64Array(p * p);
  for (let gy = 0; gy < gridH; gy++) {
    for (let gx = 0; gx < gridW; gx++) {
      for (let c = 0; c < 3; c++) {
        const first = (gy * gridW + gx) * coefficients.cols + c * p * p; // [u][v]
        const origin = c * height * width + gy * p * width + gx * p;
        for (let i = 0; i < p * p; i++) block[i] = coefficients.data[first + i];
        for (let v = 0; v < p; v++) inverse1d(block, v, p, columnsDone, v, p, p, dT);
        for (let y = 0; y < p; y++) {
          inverse1d(columnsDone, y * p, 1, done, y * p, 1, p, dT);
          for (let x = 0, dst = origin + y * width; x < p; x++) out[dst + x] = done[y * p + x];
        }
      }
    }
  }
  return out;
}

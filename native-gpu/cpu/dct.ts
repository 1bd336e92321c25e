// Orthonormal 2-D DCT-II of p x p patches of a planar RGB image, and its inverse, with the layout
// ComputeBackend.dctPatches fixes: one row per patch in raster order, each row channel-major
// [c][u][v] (u = vertical frequency, v = horizontal). Separable: C = D X D^T and X = D^T C D with
// D the p x p DCT-II matrix, whose rows are orthonormal, so the transform is exactly invertible.
import type { Matrix } from '../backend';

const bases = new Map<number, Float64Array>();

/** D[u*p + x] = a(u) cos(pi (2x+1) u / 2p), a(0) = sqrt(1/p), a(u>0) = sqrt(2/p); built once per p. */
function dctMatrix(p: number): Float64Array {
  let d = bases.get(p);
  if (!d) {
    d = new Float64Array(p * p);
    for (let u = 0; u < p; u++) {
      const a = Math.sqrt((u === 0 ? 1 : 2) / p);
      for (let x = 0; x < p; x++) d[u * p + x] = a * Math.cos((Math.PI * (2 * x + 1) * u) / (2 * p));
    }
    bases.set(p, d);
  }
  return d;
}

function checkGrid(height: number, width: number, patch: number): void {
  if (!(patch > 0) || height % patch !== 0 || width % patch !== 0) {
    throw new Error(`dct: image ${width}x${height} is not a whole number of ${patch}x${patch} patches`);
  }
}

/**
 * out = A * B * A^T for p x p blocks when transposeFirst is false (forward: D X D^T), and
 * out = A^T * B * A when it is true (inverse: D^T C D). tmp is scratch of p*p.
 */
function sandwich(a: Float64Array, b: Float64Array, out: Float64Array, tmp: Float64Array, p: number, transposeFirst: boolean): void {
  // tmp = op(A) * B, op(A) = A or A^T
  for (let i = 0; i < p; i++) {
    for (let j = 0; j < p; j++) {
      let s = 0;
      for (let k = 0; k < p; k++) s += (transposeFirst ? a[k * p + i] : a[i * p + k]) * b[k * p + j];
      tmp[i * p + j] = s;
    }
  }
  // out = tmp * op(A)^T
  for (let i = 0; i < p; i++) {
    for (let j = 0; j < p; j++) {
      let s = 0;
      for (let k = 0; k < p; k++) s += tmp[i * p + k] * (transposeFirst ? a[k * p + j] : a[j * p + k]);
      out[i * p + j] = s;
    }
  }
}

export function dctPatches(image: Float32Array, height: number, width: number, patch: number): Matrix {
  checkGrid(height, width, patch);
  if (image.length !== 3 * height * width) throw new Error(`dctPatches: expected ${3 * height * width} values for 3x${height}x${width}, got ${image.length}`);
  const p = patch;
  const d = dctMatrix(p);
  const gridH = height / p;
  const gridW = width / p;
  const cols = 3 * p * p;
  const out = new Float32Array(gridH * gridW * cols);
  const block = new Float64Array(p * p);
  const coeffs = new Float64Array(p * p);
  const tmp = new Float64Array(p * p);
  for (let gy = 0; gy < gridH; gy++) {
    for (let gx = 0; gx < gridW; gx++) {
      const row = (gy * gridW + gx) * cols;
      for (let c = 0; c < 3; c++) {
        const plane = c * height * width;
        for (let y = 0; y < p; y++) {
          const src = plane + (gy * p + y) * width + gx * p;
          for (let x = 0; x < p; x++) block[y * p + x] = image[src + x];
        }
        sandwich(d, block, coeffs, tmp, p, false);
        out.set(coeffs, row + c * p * p);
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
  const d = dctMatrix(p);
  const height = gridH * p;
  const width = gridW * p;
  const out = new Float32Array(3 * height * width);
  const coeffs = new Float64Array(p * p);
  const block = new Float64Array(p * p);
  const tmp = new Float64Array(p * p);
  for (let gy = 0; gy < gridH; gy++) {
    for (let gx = 0; gx < gridW; gx++) {
      const row = (gy * gridW + gx) * coefficients.cols;
      for (let c = 0; c < 3; c++) {
        for (let i = 0; i < p * p; i++) coeffs[i] = coefficients.data[row + c * p * p + i];
        sandwich(d, coeffs, block, tmp, p, true);
        const plane = c * height * width;
        for (let y = 0; y < p; y++) {
          const dst = plane + (gy * p + y) * width + gx * p;
          for (let x = 0; x < p; x++) out[dst + x] = block[y * p + x];
        }
      }
    }
  }
  return out;
}

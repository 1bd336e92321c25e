// Token grid -> pixels: tiles each token's atlas row (a channel-major p x p RGB patch) into a
// planar RGB image [3 x gridH*p x gridW*p], as ComputeBackend.mosaic specifies.
import type { Matrix } from '../backend.js';

export function mosaic(atlas: Matrix, ids: Int32Array, gridH: number, gridW: number, patch: number): Float32Array {
  const p = patch;
  if (atlas.cols !== 3 * p * p) throw new Error(`mosaic: atlas rows have ${atlas.cols} values, a ${p}x${p} RGB patch needs ${3 * p * p}`);
  if (ids.length !== gridH * gridW) throw new Error(`mosaic: ${ids.length} ids for a ${gridH}x${gridW} grid`);
  const width = gridW * p;
  const planeSize = gridH * p * width;
  const out = new Float32Array(3 * planeSize);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (id < 0 || id >= atlas.rows) throw new Error(`mosaic: token id ${id} is outside [0, ${atlas.rows})`);
    const gy = Math.floor(t / gridW);
    const gx = t % gridW;
    for (let c = 0; c < 3; c++) {
      const src = id * atlas.cols + c * p * p;
      for (let y = 0; y < p; y++) {
        const dst = c * planeSize + (gy * p + y) * width + gx * p;
        out.set(atlas.data.subarray(src + y * p, src + y * p + p), dst);
      }
    }
  }
  return out;
}

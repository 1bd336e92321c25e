// Reading rows of a codebook-like table whatever its storage: f32 (Matrix) or raw f16 bits
// (HalfMatrix, kept as stored so a 500,000 x 1152 table costs 1.15 GB, not 2.3).
import type { CodebookData, HalfMatrix } from './backend.js';
import { f16ToF32 } from '../common/half.js';

export function isHalf(table: CodebookData): table is HalfMatrix {
  return 'half' in table;
}

/** values held (rows x cols when consistent) */
export function valueCount(table: CodebookData): number {
  return isHalf(table) ? table.half.length : table.data.length;
}

/** Rows [r0, r0 + n) as f32: a view of f32 data; f16 data decoded into `scratch` (at least
 *  n x cols long, reused across calls) or else a new array. */
export function rowsF32(table: CodebookData, r0: number, n: number, scratch?: Float32Array): Float32Array {
  const d = table.cols;
  if (!isHalf(table)) return table.data.subarray(r0 * d, (r0 + n) * d);
  const half = table.half.subarray(r0 * d, (r0 + n) * d);
  return scratch ? f16ToF32(half, scratch).subarray(0, half.length) : f16ToF32(half);
}

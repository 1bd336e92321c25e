// IEEE 754 binary16 <-> binary32 (and bfloat16 -> binary32), bit-exact: f16 -> f32 is lossless,
// f32 -> f16 rounds to nearest even (as NumPy's astype(float16) does), overflows to ±Inf and
// keeps NaN a NaN. Codebooks and embedding shards are stored as f16 to halve their size; the
// engine computes in f32.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24; // zero and subnormals
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

function floatToHalf(value: number): number {
  f32[0] = value;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  let mantissa = bits & 0x7fffff;

  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0); // Inf, or a quiet NaN
  const e = exponent - 127 + 15; // rebias
  if (e >= 0x1f) return sign | 0x7c00; // too large for f16: ±Inf
  if (e <= 0) {
    // Result is an f16 subnormal (or zero): shift the mantissa, with its implicit 1, into place.
    if (e < -10) return sign; // below half the smallest subnormal: ±0
    mantissa |= 0x800000;
    const shift = 14 - e;
    const half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const midpoint = 1 << (shift - 1);
    const roundUp = rest > midpoint || (rest === midpoint && (half & 1) === 1);
    return sign | (half + (roundUp ? 1 : 0));
  }
  // Normal: drop 13 mantissa bits with round-to-nearest-even; a carry out of the mantissa bumps
  // the exponent, which is exactly what adding to the packed value does (up to Inf).
  const packed = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  const roundUp = rest > 0x1000 || (rest === 0x1000 && (packed & 1) === 1);
  return sign | (packed + (roundUp ? 1 : 0));
}

// All 65536 half values decode through one table: the decode side is the hot path (every f16
// shard and codebook read goes through it, and the CPU search decodes f16 codebooks chunk by chunk).
let decodeTable: Float32Array | undefined;

/** The f32 value of every f16 bit pattern: `halfTable()[bits]`. */
export function halfTable(): Float32Array {
  if (!decodeTable) {
    decodeTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) decodeTable[i] = halfToFloat(i);
  }
  return decodeTable;
}

/** `out` (default: a new array) receives the values; streaming readers pass one buffer again and
 *  again so that a pass over gigabytes does not leave gigabytes of garbage behind it. */
export function f16ToF32(h: Uint16Array, out: Float32Array = new Float32Array(h.length)): Float32Array {
  const table = halfTable();
  for (let i = 0; i < h.length; i++) out[i] = table[h[i]];
  return out;
}

export function f32ToF16(f: Float32Array, out: Uint16Array = new Uint16Array(f.length)): Uint16Array {
  for (let i = 0; i < f.length; i++) out[i] = floatToHalf(f[i]);
  return out;
}

/** bfloat16 (PyTorch checkpoints) -> f32, exact: a bfloat16 is the top half of an f32's bits. */
export function bf16ToF32(h: Uint16Array): Float32Array {
  const bits = new Uint32Array(h.length);
  for (let i = 0; i < h.length; i++) bits[i] = h[i] << 16;
  return new Float32Array(bits.buffer);
}

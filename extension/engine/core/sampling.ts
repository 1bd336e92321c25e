// Seeded randomness for everything that must be reproducible (k-means init, corpus subsamples):
// the same seed gives the same numbers on every machine. Math.random is never used for these.
import { createHash } from 'node:crypto';
import type { CodebookData, Matrix } from '../../../native-gpu/backend.js';
import { rowsF32 } from '../../../native-gpu/tables.js';

/** splitmix32: small, fast, well-mixed; returns uniform floats in [0, 1) with 53 random bits. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  const next32 = (): number => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  return () => ((next32() >>> 5) * 67108864 + (next32() >>> 6)) / 9007199254740992;
}

/**
 * Standard normal samples from a seeded uniform generator, by Box-Muller: each value takes two
 * uniforms, u1 in (0, 1] (so log(u1) is finite) and u2 in [0, 1), and is
 * sqrt(-2 ln u1) * cos(2 pi u2). The sine half is not used, so value i depends on draws 2i and
 * 2i + 1 only: the same seed gives the same sequence on every machine.
 */
export function normalSampler(random: () => number): () => number {
  return () => {
    const u1 = 1 - random();
    const u2 = random();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  };
}

/** `count` standard normal values from `seed` (normalSampler over seededRandom). */
export function seededNormals(count: number, seed: number): Float32Array {
  const next = normalSampler(seededRandom(seed));
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = next();
  return out;
}

/**
 * The seed of one random stream of a larger job, e.g. derivedSeed(seed, 'cell', 17): the same
 * (seed, parts) always give the same stream and other parts an unrelated one, whatever order the
 * job runs its parts in, so a resumed job draws exactly what an uninterrupted one drew.
 */
export function derivedSeed(seed: number, ...parts: (string | number)[]): number {
  return createHash('sha256').update(JSON.stringify([seed, ...parts])).digest().readUInt32LE(0);
}

/** `count` distinct indices in [0, n), uniform without replacement, in ascending order. */
export function sampleIndices(n: number, count: number, random: () => number): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  // Partial Fisher-Yates: the first `count` slots end up a uniform sample without replacement.
  for (let i = 0; i < count; i++) {
    const j = i + Math.floor(random() * (n - i));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order.slice(0, count).sort();
}

/** The given rows copied into a new f32 matrix, in the given order (f16 rows are decoded). */
export function takeRows(points: CodebookData, rows: ArrayLike<number>): Matrix {
  const d = points.cols;
  const data = new Float32Array(rows.length * d);
  for (let i = 0; i < rows.length; i++) data.set(rowsF32(points, rows[i], 1), i * d);
  return { rows: rows.length, cols: d, data };
}

/** A seeded uniform random subset of `count` rows, kept in corpus order. */
export function sampleRows(points: Matrix, count: number, seed: number): Matrix {
  return takeRows(points, sampleIndices(points.rows, count, seededRandom(seed)));
}

/** The rows of several matrices (of one width) stacked, in order, into one. */
export function stackRows(parts: Matrix[]): Matrix {
  const cols = parts[0]!.cols;
  const data = new Float32Array(parts.reduce((n, m) => n + m.data.length, 0));
  let offset = 0;
  for (const m of parts) {
    data.set(m.data, offset);
    offset += m.data.length;
  }
  return { rows: data.length / cols, cols, data };
}

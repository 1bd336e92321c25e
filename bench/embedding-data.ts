// Embedding-like test data for benchmarks and tests at scale: a seeded mixture on the unit sphere
// that behaves like SigLIP patch embeddings for search and clustering (broad clusters of power-law
// sizes, not point masses). Uniform random data is a poor stand-in for IVF: every point is about
// equally far from every cell, so recall would need nearly all cells probed.
//
//   centres c_1..c_M i.i.d. uniform on the unit sphere (M = 20,000 by default);
//   component weights Zipf: w_m proportional to 1/m;
//   point = normalize(c_m + sigma * g), g ~ N(0, I_d), sigma = 1.5 / sqrt(d).
// Then cos(point, own centre) ~ 0.55 and cos(two points of one component) ~ 0.31.
//
// Points are generated in fixed-size chunks, each from its own seed (seed, chunk index), so any
// prefix of the stream is reproducible and a chunk can be produced without the ones before it.
import { seededRandom } from '../extension/engine/core/sampling.js';

export interface MixtureSpec {
  d: number;
  /** number of mixture components (default 20,000) */
  components?: number;
  seed?: number;
}

/** Rows per independently seeded chunk: part of the data's definition (changing it changes the data). */
export const CHUNK_ROWS = 65_536;

export class EmbeddingMixture {
  readonly d: number;
  readonly components: number;
  readonly seed: number;
  private readonly centres: Float32Array;
  /** cumulative Zipf weights, normalized to end at 1 */
  private readonly cumulative: Float64Array;
  private readonly sigma: number;

  constructor(spec: MixtureSpec) {
    this.d = spec.d;
    this.components = spec.components ?? 20_000;
    this.seed = spec.seed ?? 2025;
    this.sigma = 1.5 / Math.sqrt(this.d);
    const gauss = gaussian(seededRandom(this.seed));
    this.centres = new Float32Array(this.components * this.d);
    for (let m = 0; m < this.components; m++) {
      const row = this.centres.subarray(m * this.d, (m + 1) * this.d);
      for (let j = 0; j < this.d; j++) row[j] = gauss();
      normalize(row);
    }
    this.cumulative = new Float64Array(this.components);
    let total = 0;
    for (let m = 0; m < this.components; m++) this.cumulative[m] = total += 1 / (m + 1);
    for (let m = 0; m < this.components; m++) this.cumulative[m] /= total;
  }

  /** The generating centre of component m (a view). */
  centre(m: number): Float32Array {
    return this.centres.subarray(m * this.d, (m + 1) * this.d);
  }

  /** Rows [start, start + count) of the stream, row-major f32 [count x d]. */
  rows(start: number, count: number): Float32Array {
    const out = new Float32Array(count * this.d);
    let filled = 0;
    while (filled < count) {
      const row = start + filled;
      const chunk = Math.floor(row / CHUNK_ROWS);
      const chunkStart = chunk * CHUNK_ROWS;
      const take = Math.min(count - filled, chunkStart + CHUNK_ROWS - row);
      this.fillFromChunk(chunk, row - chunkStart, take, out.subarray(filled * this.d, (filled + take) * this.d));
      filled += take;
    }
    return out;
  }

  /** Rows [offset, offset + count) of chunk `chunk`: the chunk's generator is run from its start. */
  private fillFromChunk(chunk: number, offset: number, count: number, out: Float32Array): void {
    const random = seededRandom((this.seed * 0x9e3779b1 + chunk + 1) >>> 0);
    const gauss = gaussian(random);
    const point = new Float32Array(this.d);
    for (let i = 0; i < offset + count; i++) {
      const m = this.pickComponent(random());
      const c = this.centre(m);
      for (let j = 0; j < this.d; j++) point[j] = c[j]! + this.sigma * gauss();
      if (i < offset) continue; // the generator must still draw the skipped rows
      normalize(point);
      out.set(point, (i - offset) * this.d);
    }
  }

  private pickComponent(u: number): number {
    let lo = 0, hi = this.components - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.cumulative[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** Standard normal draws (Box-Muller, both values of each pair used). */
function gaussian(random: () => number): () => number {
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    const u = 1 - random(); // (0, 1]: log(u) is finite
    const r = Math.sqrt(-2 * Math.log(u));
    const theta = 2 * Math.PI * random();
    spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  };
}

function normalize(v: Float32Array): void {
  let s = 0;
  for (let j = 0; j < v.length; j++) s += v[j]! * v[j]!;
  const inv = 1 / Math.sqrt(s || 1);
  for (let j = 0; j < v.length; j++) v[j] *= inv;
}

// The CPU backend: the math-bound part (distance GEMM + argmin) runs as an onnxruntime graph on
// all cores; the rest (accumulating k-means sums, histograms, patch tiling, DCT) is plain
// typed-array code, memory-bound and cheap next to the search.
import * as os from 'node:os';
import type * as ort from 'onnxruntime-node';
import { onnxruntime } from '../onnxruntime.js';
import type { CoarseData, CodebookData, CodebookHandle, ComputeBackend, IvfControl, IvfHandle, KMeansStepResult, Matrix, NearestResult, RunControl } from '../backend.js';
import { CpuCodebook, createSearchSession, searchNearestIds } from './nearest.js';
import { exactDistances } from '../distances.js';
import { rowsF32 } from '../tables.js';
import { CpuIvf, createIvfSession, searchIvf } from './ivf.js';
import { checkTokenIds } from '../token-ids.js';
import { accumulateClusters } from './accumulate.js';
import { dctPatches, idctPatches } from './dct.js';
import { mosaic } from './mosaic.js';

export async function createCpuBackend(): Promise<ComputeBackend> {
  const threads = os.availableParallelism();
  return new CpuBackend(await createSearchSession(threads), threads);
}

class CpuBackend implements ComputeBackend {
  readonly name = 'cpu' as const;
  readonly device: string;
  private session: ort.InferenceSession | null;
  /** opened on the first IVF search */
  private ivfSession: Promise<ort.InferenceSession> | null = null;

  constructor(session: ort.InferenceSession, threads: number) {
    const { env } = onnxruntime();
    this.session = session;
    this.device = `cpu (onnxruntime ${env.versions.node ?? env.versions.common}, ${threads} threads)`;
  }

  private live(): ort.InferenceSession {
    if (!this.session) throw new Error('the cpu backend was disposed');
    return this.session;
  }

  private ivfLive(): Promise<ort.InferenceSession> {
    this.live();
    this.ivfSession ??= createIvfSession();
    return this.ivfSession;
  }

  async loadCodebook(codebook: CodebookData): Promise<CodebookHandle> {
    this.live();
    return new CpuCodebook(codebook, { prefilter: 'when it pays' });
  }

  async nearest(handle: CodebookHandle, queries: Matrix, control?: RunControl): Promise<NearestResult> {
    const cb = own(handle);
    const ids = await searchNearestIds(this.live(), cb, queries, control);
    return { ids, distances: exactDistances(queries, ids, (id) => cb.row(id)) };
  }

  async loadIvf(codes: CodebookData, coarse: CoarseData): Promise<IvfHandle> {
    this.live();
    return CpuIvf.create(codes, coarse);
  }

  async nearestIvf(handle: IvfHandle, queries: Matrix, control: IvfControl): Promise<NearestResult> {
    if (!(handle instanceof CpuIvf)) throw new Error('IVF index was not loaded by the cpu backend');
    const best = await searchIvf(await this.ivfLive(), handle, queries, control);
    const grouped = handle.layout.grouped;
    return { ids: best.ids, distances: exactDistances(queries, best.positions, (p) => rowsF32(grouped, p, 1)) };
  }

  async kmeansStep(handle: CodebookHandle, points: Matrix, control?: RunControl): Promise<KMeansStepResult> {
    const cb = own(handle);
    const ids = await searchNearestIds(this.live(), cb, points, control);
    // all of an f16 codebook decoded at once: k-means builds f32 centroids, so only a caller's
    // own f16 codebook comes this way
    return { ids, ...accumulateClusters(points, ids, cb.rowsF32(0, cb.k), cb.k) };
  }

  async histogram(ids: Int32Array, k: number): Promise<Uint32Array> {
    checkTokenIds(ids, k);
    const counts = new Uint32Array(k);
    for (let i = 0; i < ids.length; i++) counts[ids[i]]++;
    return counts;
  }

  async mosaic(atlas: Matrix, ids: Int32Array, gridH: number, gridW: number, patch: number): Promise<Float32Array> {
    return mosaic(atlas, ids, gridH, gridW, patch);
  }

  async dctPatches(image: Float32Array, height: number, width: number, patch: number): Promise<Matrix> {
    return dctPatches(image, height, width, patch);
  }

  async idctPatches(coefficients: Matrix, gridH: number, gridW: number, patch: number): Promise<Float32Array> {
    return idctPatches(coefficients, gridH, gridW, patch);
  }

  async dispose(): Promise<void> {
    const s = this.session, fine = this.ivfSession;
    this.session = null;
    this.ivfSession = null;
    await s?.release();
    await (await fine)?.release();
  }
}

function own(handle: CodebookHandle): CpuCodebook {
  if (!(handle instanceof CpuCodebook)) throw new Error('codebook handle was not loaded by the cpu backend');
  return handle;
}

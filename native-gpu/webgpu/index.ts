// The WebGPU ComputeBackend. Every call runs on the GPU inside error scopes, one call at a time;
// if the device is lost (driver reset, device.destroy(), out of GPU memory) the call that saw it
// and every later call run on the CPU backend instead, after one warning: never a crash, and
// never a result computed by a dead device. From then on `device` names the CPU backend (and the
// GPU it stands in for), so every later result says what computed it, and onDeviceChange tells
// whoever shows the device (the extension's status bar).
import type { CoarseData, CodebookData, CodebookHandle, ComputeBackend, IvfControl, IvfHandle, KMeansStepResult, Matrix, NearestResult, RunControl } from '../backend.js';
import { createCpuBackend } from '../cpu/index.js';
import { CancelledError, UserError } from '../../common/errors.js';
import { openGpuContext, type GpuContext } from './device.js';
import { createRuntime, type Runtime, type WebGpuTuning } from './runtime.js';
import { GpuCodebook } from './gpu-codebook.js';
import { searchNearestIds } from './search.js';
import { GpuIvf, searchIvf } from './ivf.js';
import { rowsF32 } from '../tables.js';
import { exactDistances } from '../distances.js';
import { SumBuffers } from './kernels/accumulate.js';
import { histogram } from './kernels/histogram.js';
import { mosaic } from './kernels/mosaic.js';
import { dctPatches, idctPatches } from './kernels/dct.js';
import { readBack } from './buffers.js';

export { probeHardwareAdapterQuietly } from './device.js';
export type { WebGpuTuning } from './runtime.js';
export type { NearestTile } from './kernels/nearest.js';

export interface WebGpuBackendOptions {
  allowSoftware: boolean;
  /** non-fatal problems (device lost -> CPU fallback, stray GPU errors); default: stderr */
  onWarning?: (message: string) => void;
  /** `device` changed: the GPU was lost and the CPU backend computes from now on */
  onDeviceChange?: (device: string) => void;
  tuning?: WebGpuTuning;
}

export interface WebGpuBackend extends ComputeBackend {
  readonly name: 'webgpu';
  /** the Dawn device (tests destroy it to exercise the CPU fallback) */
  readonly gpuDevice: GPUDevice;
  /** set once work has moved to the CPU backend, with the reason */
  readonly fallbackReason: string | null;
}

type Disposable = { dispose(): void };

/** Something this backend loaded: on the GPU, and on the CPU once a fallback needed it. */
abstract class Loaded<G extends Disposable, C extends Disposable> {
  cpu: C | null = null;
  constructor(readonly codes: CodebookData, public gpu: G | null, private readonly live: Set<Disposable>) {
    live.add(this);
  }
  get k(): number {
    return this.codes.rows;
  }
  get d(): number {
    return this.codes.cols;
  }
  dispose(): void {
    this.gpu?.dispose();
    this.gpu = null;
    this.cpu?.dispose();
    this.cpu = null;
    this.live.delete(this);
  }
}

class Handle extends Loaded<GpuCodebook, CodebookHandle> implements CodebookHandle {}

class IvfIndex extends Loaded<GpuIvf, IvfHandle> implements IvfHandle {
  constructor(codes: CodebookData, readonly coarse: CoarseData, gpu: GpuIvf | null, live: Set<Disposable>) {
    super(codes, gpu, live);
  }
  get cells(): number {
    return this.coarse.centroids.rows;
  }
}

export async function createWebGpuBackend(opts: WebGpuBackendOptions): Promise<WebGpuBackend> {
  const warn = opts.onWarning ?? ((m: string) => process.stderr.write(`warning: ${m}\n`));
  const ctx = await openGpuContext({ allowSoftware: opts.allowSoftware, onUncapturedError: warn });
  let rt: Runtime;
  try {
    rt = createRuntime(ctx, opts.tuning);
  } catch (err) {
    ctx.release();
    throw err;
  }
  return new Backend(ctx, rt, warn, opts.onDeviceChange);
}

class Backend implements WebGpuBackend {
  readonly name = 'webgpu' as const;
  private readonly gpuLabel: string;
  /** the device label once the CPU backend computes instead of the GPU */
  private fallbackLabel: string | null = null;
  fallbackReason: string | null = null;
  private cpuBackend: Promise<ComputeBackend> | null = null;
  private tail: Promise<unknown> = Promise.resolve();
  /** every codebook and IVF index loaded and not yet disposed */
  private readonly loaded = new Set<Disposable>();
  private disposed = false;

  constructor(
    private readonly ctx: GpuContext,
    private readonly rt: Runtime,
    private readonly warn: (m: string) => void,
    private readonly onDeviceChange: ((device: string) => void) | undefined,
  ) {
    this.gpuLabel = `webgpu: ${ctx.description}`;
  }

  /** What computes now: the GPU, or after a loss the CPU backend standing in for it. */
  get device(): string {
    return this.fallbackLabel ?? this.gpuLabel;
  }

  get gpuDevice(): GPUDevice {
    return this.ctx.device;
  }

  private cpu(): Promise<ComputeBackend> {
    this.cpuBackend ??= createCpuBackend();
    return this.cpuBackend;
  }

  /** One call at a time: error scopes are per device, and the buffer pool is not re-entrant. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    if (this.disposed) return Promise.reject(new Error('the webgpu backend was disposed'));
    const result = this.tail.then(fn);
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** Runs gpuOp inside validation / out-of-memory scopes; on device loss runs cpuOp instead. */
  private run<T>(what: string, gpuOp: () => Promise<T>, cpuOp: (cpu: ComputeBackend) => Promise<T>): Promise<T> {
    return this.serial(async () => {
      if (!this.fallbackReason) {
        const { device } = this.ctx;
        device.pushErrorScope('out-of-memory');
        device.pushErrorScope('validation');
        let result: T | undefined;
        let failure: unknown = null;
        try {
          result = await gpuOp();
        } catch (err) {
          failure = err;
        }
        const validation = await device.popErrorScope().catch(() => null);
        const oom = await device.popErrorScope().catch(() => null);
        if (failure instanceof UserError || failure instanceof CancelledError) throw failure;
        // Loss is reported through a promise: give it a moment to land before trusting a result.
        const lost = await settle(this.ctx);
        if (!failure && !validation && !oom && !lost) return result as T;
        if (!lost && !oom) throw validation ? new Error(`WebGPU error in ${what}: ${validation.message}`) : failure;
        this.fallbackReason = lost ?? `WebGPU out of memory: ${oom?.message}`;
        const cpu = await this.cpu();
        this.fallbackLabel = `${cpu.device} (fallback from ${this.gpuLabel})`;
        this.warn(`${this.fallbackReason}; ${what} and everything after it runs on the CPU backend`);
        this.onDeviceChange?.(this.fallbackLabel);
      }
      return cpuOp(await this.cpu());
    });
  }

  private async cpuHandle(cpu: ComputeBackend, handle: Handle): Promise<CodebookHandle> {
    handle.cpu ??= await cpu.loadCodebook(handle.codes);
    return handle.cpu;
  }

  private own(handle: CodebookHandle): Handle {
    if (!(handle instanceof Handle) || !this.loaded.has(handle)) throw new Error('codebook handle was not loaded by this webgpu backend');
    return handle;
  }

  private gpuCodebook(handle: Handle): GpuCodebook {
    if (!handle.gpu) throw new Error('the codebook handle was disposed');
    return handle.gpu;
  }

  async loadCodebook(codebook: CodebookData): Promise<CodebookHandle> {
    return this.run(
      'loading the codebook',
      async () => new Handle(codebook, new GpuCodebook(this.rt, codebook), this.loaded),
      async (cpu) => {
        const h = new Handle(codebook, null, this.loaded);
        h.cpu = await cpu.loadCodebook(codebook);
        return h;
      },
    );
  }

  nearest(codebook: CodebookHandle, queries: Matrix, control?: RunControl): Promise<NearestResult> {
    const handle = this.own(codebook);
    return this.run(
      'nearest-code search',
      async () => {
        const cb = this.gpuCodebook(handle);
        const ids = await searchNearestIds(this.rt, cb, queries, control);
        return { ids, distances: exactDistances(queries, ids, (id) => cb.rowsF32(id, 1)) };
      },
      async (cpu) => cpu.nearest(await this.cpuHandle(cpu, handle), queries, control),
    );
  }

  async loadIvf(codes: CodebookData, coarse: CoarseData): Promise<IvfHandle> {
    return this.run(
      'loading the IVF index',
      async () => new IvfIndex(codes, coarse, await GpuIvf.create(this.rt, codes, coarse), this.loaded),
      async (cpu) => {
        const index = new IvfIndex(codes, coarse, null, this.loaded);
        index.cpu = await cpu.loadIvf(codes, coarse);
        return index;
      },
    );
  }

  nearestIvf(index: IvfHandle, queries: Matrix, control: IvfControl): Promise<NearestResult> {
    if (!(index instanceof IvfIndex) || !this.loaded.has(index)) throw new Error('IVF index was not loaded by this webgpu backend');
    return this.run(
      'IVF search',
      async () => {
        if (!index.gpu) throw new Error('the IVF index was disposed');
        const best = await searchIvf(this.rt, index.gpu, queries, control);
        const grouped = index.gpu.layout.grouped;
        return { ids: best.ids, distances: exactDistances(queries, best.positions, (p) => rowsF32(grouped, p, 1)) };
      },
      async (cpu) => {
        index.cpu ??= await cpu.loadIvf(index.codes, index.coarse);
        return cpu.nearestIvf(index.cpu, queries, control);
      },
    );
  }

  kmeansStep(codebook: CodebookHandle, points: Matrix, control?: RunControl): Promise<KMeansStepResult> {
    const handle = this.own(codebook);
    return this.run(
      'the k-means step',
      async () => {
        const cb = this.gpuCodebook(handle);
        const sums = new SumBuffers(this.rt, cb.chunks, cb.dPad);
        try {
          const ids = await searchNearestIds(this.rt, cb, points, control, (batch) => sums.add(batch.buffer, batch.ids, cb.chunks, cb.k));
          const distances = exactDistances(points, ids, (id) => cb.rowsF32(id, 1));
          return { ids, distances, ...(await this.readSums(cb, sums, ids, distances)) };
        } finally {
          sums.release();
        }
      },
      async (cpu) => cpu.kmeansStep(await this.cpuHandle(cpu, handle), points, control),
    );
  }

  private async readSums(cb: GpuCodebook, sums: SumBuffers, ids: Int32Array, distances: Float32Array): Promise<{ sums: Float64Array; counts: Float64Array; inertia: number }> {
    const { d, dPad } = cb;
    const out = new Float64Array(cb.k * d);
    for (let i = 0; i < cb.chunks.length; i++) {
      const chunk = cb.chunks[i];
      const values = new Float32Array(await readBack(this.rt.device, this.rt.pool, sums.buffers[i], chunk.rows * dPad * 4));
      for (let r = 0; r < chunk.rows; r++)
        for (let j = 0; j < d; j++) out[(chunk.base + r) * d + j] = values[r * dPad + j];
    }
    const counts = new Float64Array(cb.k);
    for (let i = 0; i < ids.length; i++) counts[ids[i]]++;
    let inertia = 0;
    for (let i = 0; i < distances.length; i++) inertia += distances[i];
    return { sums: out, counts, inertia };
  }

  histogram(ids: Int32Array, k: number): Promise<Uint32Array> {
    return this.run('the histogram', () => histogram(this.rt, ids, k), (cpu) => cpu.histogram(ids, k));
  }

  mosaic(atlas: Matrix, ids: Int32Array, gridH: number, gridW: number, patch: number): Promise<Float32Array> {
    return this.run('the mosaic', () => mosaic(this.rt, atlas, ids, gridH, gridW, patch), (cpu) => cpu.mosaic(atlas, ids, gridH, gridW, patch));
  }

  dctPatches(image: Float32Array, height: number, width: number, patch: number): Promise<Matrix> {
    return this.run('the DCT', () => dctPatches(this.rt, image, height, width, patch), (cpu) => cpu.dctPatches(image, height, width, patch));
  }

  idctPatches(coefficients: Matrix, gridH: number, gridW: number, patch: number): Promise<Float32Array> {
    return this.run('the inverse DCT', () => idctPatches(this.rt, coefficients, gridH, gridW, patch), (cpu) => cpu.idctPatches(coefficients, gridH, gridW, patch));
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    await this.tail;
    this.disposed = true;
    for (const loaded of [...this.loaded]) loaded.dispose();
    this.rt.pool.destroyAll();
    this.ctx.release();
    const cpu = this.cpuBackend;
    this.cpuBackend = null;
    if (cpu) await (await cpu).dispose();
  }
}

/** The loss reason if the device is (or within a moment becomes) lost, else null. */
async function settle(ctx: GpuContext): Promise<string | null> {
  if (ctx.lostReason) return ctx.lostReason;
  await new Promise((resolve) => setImmediate(resolve));
  return ctx.lostReason;
}

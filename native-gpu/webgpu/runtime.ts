// What every kernel driver receives: the device context, the buffer pool, the pipeline cache and
// the tuning knobs (tile sizes, chunk sizes) that tests and the bench override.
import type { GpuContext } from './device.js';
import { BufferPool } from './buffers.js';
import { PipelineCache } from './program.js';
import { HARDWARE_TILE, SOFTWARE_TILE, checkTile, type NearestTile } from './kernels/nearest.js';

export interface WebGpuTuning {
  /** distance-GEMM tile; default depends on whether the adapter is hardware or software */
  tile?: NearestTile;
  /** upper bound on one codebook buffer (also capped by the device's binding and buffer limits);
   *  tests set it tiny so the multi-buffer path runs at small K */
  maxChunkBytes?: number;
  /** upper bound on one batch of queries / points uploaded at once */
  maxBatchBytes?: number;
  /** workgroups one nearest dispatch aims for, to fill the GPU when there are few queries */
  targetWorkgroups?: number;
}

export interface Runtime {
  readonly ctx: GpuContext;
  readonly device: GPUDevice;
  readonly pool: BufferPool;
  readonly pipelines: PipelineCache;
  readonly tile: NearestTile;
  /** bytes one storage binding may hold (multiple of 16) */
  readonly chunkBytes: number;
  readonly batchBytes: number;
  readonly targetWorkgroups: number;
}

const GiB = 1024 ** 3;

export function createRuntime(ctx: GpuContext, tuning: WebGpuTuning = {}): Runtime {
  const limits = ctx.device.limits;
  const tile = tuning.tile ?? (ctx.software ? SOFTWARE_TILE : HARDWARE_TILE);
  checkTile(tile, limits);
  // 1 GiB caps a single allocation well below any driver's maximum while keeping a 500K x 1152
  // f32 codebook (2.3 GB) in three buffers.
  const bindingBytes = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize, GiB);
  const chunkBytes = floor16(Math.min(bindingBytes, tuning.maxChunkBytes ?? Infinity));
  const batchBytes = floor16(Math.min(bindingBytes, tuning.maxBatchBytes ?? 256 * 1024 ** 2));
  if (chunkBytes < 16 || batchBytes < 16) throw new Error(`WebGPU chunk sizes too small: ${chunkBytes} / ${batchBytes} bytes`);
  return {
    ctx,
    device: ctx.device,
    pool: new BufferPool(ctx.device),
    pipelines: new PipelineCache(ctx.device),
    tile,
    chunkBytes,
    batchBytes,
    targetWorkgroups: tuning.targetWorkgroups ?? (ctx.software ? 16 : 2048),
  };
}

function floor16(n: number): number {
  return Math.floor(n / 16) * 16;
}

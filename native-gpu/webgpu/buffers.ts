// A pool of GPU buffers keyed by usage and a rounded-up size, so the per-call temporaries of the
// kernels (queries, partial minima, uniforms, staging for readback) are reused across calls
// instead of being created and destroyed each time, as in onnxruntime's webgpu buffer manager.
// Long-lived buffers (uploaded codebooks) are created directly and never pooled.

export const STORAGE = 0x0080 | 0x0008 | 0x0004; // STORAGE | COPY_DST | COPY_SRC
export const UNIFORM = 0x0040 | 0x0008; // UNIFORM | COPY_DST
export const STAGING = 0x0001 | 0x0008; // MAP_READ | COPY_DST
const MAP_MODE_READ = 0x0001;

/** Sizes are bucketed so similar requests share buffers: powers of two up to 1 MiB, then 1 MiB steps. */
function bucket(size: number): number {
  const min = 16;
  if (size <= min) return min;
  if (size <= 1 << 20) return 2 ** Math.ceil(Math.log2(size));
  return Math.ceil(size / (1 << 20)) * (1 << 20);
}

export class BufferPool {
  private readonly free = new Map<string, GPUBuffer[]>();
  private readonly owned = new Set<GPUBuffer>();

  constructor(private readonly device: GPUDevice) {}

  acquire(size: number, usage: number): GPUBuffer {
    const rounded = bucket(size);
    const list = this.free.get(`${usage}:${rounded}`);
    const reused = list?.pop();
    if (reused) return reused;
    const buffer = this.device.createBuffer({ size: rounded, usage });
    this.owned.add(buffer);
    return buffer;
  }

  release(buffer: GPUBuffer): void {
    if (!this.owned.has(buffer)) return;
    const key = `${buffer.usage}:${buffer.size}`;
    const list = this.free.get(key);
    if (list) list.push(buffer);
    else this.free.set(key, [buffer]);
  }

  /** a pooled storage buffer holding `data` (zero-padded to the bucket size is harmless: kernels bound-check) */
  upload(data: ArrayBufferView): GPUBuffer {
    const buffer = this.acquire(Math.max(data.byteLength, 4), STORAGE);
    writeAligned(this.device, buffer, 0, data);
    return buffer;
  }

  uniform(values: Uint32Array | Float32Array): GPUBuffer {
    const buffer = this.acquire(Math.max(16, values.byteLength), UNIFORM);
    this.device.queue.writeBuffer(buffer, 0, values.buffer, values.byteOffset, values.byteLength);
    return buffer;
  }

  destroyAll(): void {
    for (const buffer of this.owned) buffer.destroy();
    this.owned.clear();
    this.free.clear();
  }
}

/** queue.writeBuffer needs a byte length that is a multiple of 4: pad the tail when it is not. */
export function writeAligned(device: GPUDevice, buffer: GPUBuffer, offset: number, data: ArrayBufferView): void {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const whole = bytes.byteLength - (bytes.byteLength % 4);
  if (whole > 0) device.queue.writeBuffer(buffer, offset, bytes.buffer, bytes.byteOffset, whole);
  if (whole < bytes.byteLength) {
    const tail = new Uint8Array(4);
    tail.set(bytes.subarray(whole));
    device.queue.writeBuffer(buffer, offset + whole, tail);
  }
}

/** Copies `size` bytes of `source` through a pooled staging buffer and returns them. */
export async function readBack(device: GPUDevice, pool: BufferPool, source: GPUBuffer, size: number): Promise<ArrayBuffer> {
  const staging = pool.acquire(size, STAGING);
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(source, 0, staging, 0, alignUp(size, 4));
  device.queue.submit([encoder.finish()]);
  try {
    await staging.mapAsync(MAP_MODE_READ, 0, alignUp(size, 4));
    const copy = staging.getMappedRange(0, alignUp(size, 4)).slice(0, size);
    staging.unmap();
    return copy;
  } finally {
    pool.release(staging);
  }
}

export function alignUp(n: number, multiple: number): number {
  return Math.ceil(n / multiple) * multiple;
}

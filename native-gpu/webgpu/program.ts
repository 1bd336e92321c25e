// Each kernel is described as a program: a name, a cache key naming everything that changes its
// WGSL (tile sizes, element type...), and a function producing the source. Pipelines are compiled
// once per key and reused, and `run` does the per-call work every kernel shares (the pattern of
// onnxruntime's jsep/webgpu program manager), so a kernel file holds only its WGSL, shapes and
// uniforms.
import { STORAGE, readBack } from './buffers.js';
import type { Runtime } from './runtime.js';

export interface ProgramInfo {
  name: string;
  /** everything that changes the generated WGSL; same key = same pipeline */
  cacheKey: string;
  source(): string;
}

/** a buffer bound whole, or a byte range of it */
export type Binding = GPUBuffer | { buffer: GPUBuffer; offset: number; size: number };

export class PipelineCache {
  private readonly pipelines = new Map<string, Promise<GPUComputePipeline>>();

  constructor(private readonly device: GPUDevice) {}

  get(program: ProgramInfo): Promise<GPUComputePipeline> {
    const key = `${program.name}|${program.cacheKey}`;
    let pipeline = this.pipelines.get(key);
    if (!pipeline) {
      const code = program.source();
      pipeline = this.device
        .createComputePipelineAsync({ label: key, layout: 'auto', compute: { module: this.device.createShaderModule({ label: key, code }), entryPoint: 'main' } })
        .catch((err: unknown) => {
          this.pipelines.delete(key);
          throw new Error(`WebGPU kernel ${key} failed to compile: ${(err as Error).message}`);
        });
      this.pipelines.set(key, pipeline);
    }
    return pipeline;
  }

  get size(): number {
    return this.pipelines.size;
  }
}

/** What one @binding of a dispatch holds. */
export type Bind =
  /** a buffer the caller owns and keeps (codebook chunks, norms, k-means sums) */
  | Binding
  /** the pooled copy of `inputs[input]` */
  | { input: number }
  /** the pooled buffer of `outputs[output]` */
  | { output: number }
  /** a pooled uniform buffer holding these values */
  | { uniform: Uint32Array | Float32Array };

export interface DispatchSpec {
  program: ProgramInfo;
  /** in @binding order */
  bindings: Bind[];
  workgroups: [number, number?, number?];
}

export interface OutputSpec {
  bytes: number;
  /** zeroed before the first dispatch: pooled buffers hold old data */
  clear?: boolean;
  /** only read by a later dispatch of the same run (partial minima): not read back */
  scratch?: boolean;
}

export interface RunSpec {
  /** host arrays uploaded to pooled storage buffers */
  inputs?: ArrayBufferView[];
  outputs?: OutputSpec[];
  /** recorded in order into one command buffer, submitted once */
  dispatches: DispatchSpec[];
}

/** The pooled buffers of a run, for a caller that reuses them before they are released. */
export interface HeldBuffers {
  inputs: GPUBuffer[];
  outputs: GPUBuffer[];
}

/**
 * Acquires the pooled buffers of `spec` (inputs uploaded, outputs cleared where asked, one uniform
 * buffer per uniform binding), records and submits its dispatches, reads back every output that
 * is not scratch (in output order) and releases everything, also on error. `whileHeld` runs after
 * the read-back and before the release (k-means adds the uploaded queries into its sums).
 */
export async function run(
  rt: Runtime,
  spec: RunSpec,
  whileHeld?: (results: ArrayBuffer[], held: HeldBuffers) => Promise<void> | void,
): Promise<ArrayBuffer[]> {
  const { device, pool } = rt;
  const pipelines = await Promise.all(spec.dispatches.map((d) => rt.pipelines.get(d.program)));
  const outputs = spec.outputs ?? [];
  const taken: GPUBuffer[] = [];
  const take = (b: GPUBuffer): GPUBuffer => (taken.push(b), b);
  try {
    const held: HeldBuffers = {
      inputs: (spec.inputs ?? []).map((data) => take(pool.upload(data))),
      outputs: outputs.map((o) => take(pool.acquire(o.bytes, STORAGE))),
    };
    const encoder = device.createCommandEncoder();
    outputs.forEach((o, i) => {
      if (o.clear) encoder.clearBuffer(held.outputs[i]);
    });
    spec.dispatches.forEach((d, i) => {
      const bindings = d.bindings.map((b) => resolve(b, held, (values) => take(pool.uniform(values))));
      record(device, encoder, pipelines[i], bindings, d.workgroups);
    });
    device.queue.submit([encoder.finish()]);
    const results: ArrayBuffer[] = [];
    for (let i = 0; i < outputs.length; i++) {
      if (!outputs[i].scratch) results.push(await readBack(device, pool, held.outputs[i], outputs[i].bytes));
    }
    await whileHeld?.(results, held);
    return results;
  } finally {
    // Safe even straight after the submit (nothing read back): later writes to these buffers
    // are queued after it.
    for (const b of taken) pool.release(b);
  }
}

function resolve(b: Bind, held: HeldBuffers, uniform: (values: Uint32Array | Float32Array) => GPUBuffer): Binding {
  if ('input' in b) return held.inputs[b.input];
  if ('output' in b) return held.outputs[b.output];
  if ('uniform' in b) return uniform(b.uniform);
  return b;
}

/** Records one dispatch of `pipeline` with `bindings` at @group(0) @binding(0..n-1). */
function record(
  device: GPUDevice,
  encoder: GPUCommandEncoder,
  pipeline: GPUComputePipeline,
  bindings: Binding[],
  workgroups: [number, number?, number?],
): void {
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: bindings.map((b, binding) => ({ binding, resource: 'buffer' in b ? b : { buffer: b } })),
  });
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(workgroups[0], workgroups[1] ?? 1, workgroups[2] ?? 1);
  pass.end();
}

/** Splits `count` workgroups over x and y so neither exceeds the per-dimension limit. */
export function grid2d(count: number, maxPerDimension: number): [number, number] {
  if (count <= maxPerDimension) return [Math.max(count, 1), 1];
  const y = Math.ceil(count / maxPerDimension);
  return [Math.ceil(count / y), y];
}

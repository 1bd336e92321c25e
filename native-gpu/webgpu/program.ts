// Each kernel is described as a program: a name, a cache key naming everything that changes its
// WGSL (tile sizes, element type...), and a function producing the source. Pipelines are compiled
// once per key and reused (the pattern of onnxruntime's jsep/webgpu program manager).

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

/** Records one dispatch of `pipeline` with `bindings` at @group(0) @binding(0..n-1). */
export function dispatch(
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

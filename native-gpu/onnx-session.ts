// ONNX models (SigLIP-style encoders, diffusion noise predictors, VAE decoders, projectors) on
// onnxruntime, on the device the compute backend runs on: the WebGPU execution provider when the
// backend is WebGPU (onnxruntime-node 1.30 for linux-x64 links its own Dawn and reaches the GPU
// through Vulkan), the CPU execution provider otherwise. The fallback follows the WGSL kernels':
// if the WebGPU provider cannot start, or a run fails on it, the model moves to the CPU with one
// warning and stays there, and `device` says where the results now come from.
//
// The `webgpu` package's Dawn and onnxruntime's Dawn are separate copies; they were checked to run
// side by side in one process (both on Mesa lavapipe, interleaved, concurrently: 6 of 6 runs
// clean), so no worker or child process isolates either.
import * as os from 'node:os';
import type * as ort from 'onnxruntime-node';
import type { BackendName } from './backend.js';
import { onnxruntime } from './onnxruntime.js';
import { UserError } from '../common/errors.js';

/** An input or output as the model declares it; symbolic dimensions are strings. */
export interface TensorInfo {
  name: string;
  /** 'float32', 'float16', 'int64'..., or 'non-tensor' */
  type: string;
  shape: ReadonlyArray<number | string>;
}

export interface ModelSession {
  /** what computes this model's results now, e.g. "cpu (onnxruntime 1.30.0, 2 threads)" */
  readonly device: string;
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
  /** Runs the model. With `at` (which step of the caller's work: "denoising step 3 of 20"), a NaN
   *  or an infinity in any float output is a UserError naming the model, the output and the step,
   *  never a result: drawn, it would be a black or garbage image. (Without it the caller checks
   *  what it reads: an LM's logits may hold -Infinity where it masks tokens.) */
  run(feeds: Record<string, ort.Tensor>, outputs?: readonly string[], at?: string): Promise<Record<string, ort.Tensor>>;
  release(): Promise<void>;
}

export interface ModelSessionOptions {
  /** the compute backend's kind: 'webgpu' puts the model on onnxruntime's WebGPU provider */
  device: BackendName;
  /** non-fatal problems (the WebGPU provider failing, work moving to the CPU); default: stderr */
  onWarning?: (message: string) => void;
}

function version(): string {
  const { env } = onnxruntime();
  return env.versions.node ?? env.versions.common;
}
/** The device names of models on onnxruntime's CPU provider (the CPU backend's own wording) and on
 *  its WebGPU provider. Functions: onnxruntime loads on first use. */
export const ortCpuDevice = (): string => `cpu (onnxruntime ${version()}, ${os.availableParallelism()} threads)`;
export const ortWebGpuDevice = (): string => `webgpu (onnxruntime ${version()} WebGPU execution provider)`;

function infos(metas: readonly ort.InferenceSession.ValueMetadata[]): TensorInfo[] {
  return metas.map((m) => (m.isTensor ? { name: m.name, type: m.type, shape: m.shape } : { name: m.name, type: 'non-tensor', shape: [] }));
}

/** "'sample' [batch,4,64,64], 'timestep' [1] int64" -- for messages naming what a model has. */
export function describeTensors(list: readonly TensorInfo[]): string {
  return list.map((m) => `'${m.name}' [${m.shape.join(',')}]${m.type === 'float32' ? '' : ` ${m.type}`}`).join(', ') || 'nothing';
}

/** The first NaN or infinity of a float tensor as [index, value], or null (f16: raw halves whose
 *  exponent bits are all ones). */
function firstNonFinite(t: ort.Tensor): [number, number] | null {
  if (t.type !== 'float32' && t.type !== 'float16' && t.type !== 'float64') return null;
  const data = t.data as ArrayLike<number>;
  const halves = data instanceof Uint16Array;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (halves ? (v & 0x7c00) === 0x7c00 : !Number.isFinite(v)) return [i, halves ? (v & 0x3ff ? NaN : v & 0x8000 ? -Infinity : Infinity) : v];
  }
  return null;
}

/** Throws when an output holds a NaN or an infinity (ModelSession.run). */
function checkFinite(label: string, results: Record<string, ort.Tensor>, at: string | undefined): Record<string, ort.Tensor> {
  if (at === undefined) return results;
  for (const [name, tensor] of Object.entries(results)) {
    const bad = firstNonFinite(tensor);
    if (bad) throw new UserError(`${label}: output '${name}' holds ${bad[1]} (value ${bad[0]} of ${tensor.data.length}) at ${at}; a model must give finite numbers`);
  }
  return results;
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!.trim();
}

async function create(model: string | Uint8Array, provider: 'cpu' | 'webgpu'): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = { executionProviders: [provider], graphOptimizationLevel: 'all' };
  const { InferenceSession } = onnxruntime();
  return typeof model === 'string' ? InferenceSession.create(model, options) : InferenceSession.create(model, options);
}

/** Opens a model; `label` names it in messages (its file, usually). */
export async function openModelSession(model: string | Uint8Array, label: string, opts: ModelSessionOptions): Promise<ModelSession> {
  const warn = opts.onWarning ?? ((m: string) => process.stderr.write(`warning: ${m}\n`));
  let session: ort.InferenceSession | null = null;
  let device = ortCpuDevice();
  if (opts.device === 'webgpu') {
    try {
      session = await create(model, 'webgpu');
      device = ortWebGpuDevice();
    } catch (err) {
      warn(`onnxruntime's WebGPU provider could not run ${label} (${firstLine(err)}); it runs on the CPU`);
    }
  }
  if (!session) {
    try {
      session = await create(model, 'cpu');
    } catch (err) {
      throw new UserError(`${label}: cannot load ONNX model (${firstLine(err)})`);
    }
  }
  let live: ort.InferenceSession = session;
  const run = async (feeds: Record<string, ort.Tensor>, outputs?: readonly string[], at?: string): Promise<Record<string, ort.Tensor>> => {
    let results: Record<string, ort.Tensor>;
    try {
      results = outputs ? await live.run(feeds, [...outputs]) : await live.run(feeds);
    } catch (err) {
      if (device === ortCpuDevice()) throw new UserError(`${label}: inference failed (${firstLine(err)})`);
      warn(`${label} failed on onnxruntime's WebGPU provider (${firstLine(err)}); this and every later run of it is on the CPU`);
      const failed = live;
      live = await create(model, 'cpu');
      device = ortCpuDevice();
      await failed.release().catch(() => undefined);
      return run(feeds, outputs, at);
    }
    return checkFinite(label, results, at);
  };
  return {
    get device() {
      return device;
    },
    inputs: infos(live.inputMetadata),
    outputs: infos(live.outputMetadata),
    run,
    async release() {
      await live.release();
    },
  };
}

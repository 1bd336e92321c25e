// SigLIP-style ONNX vision towers: input pixel_values [B, 3, H, W] -> output last_hidden_state
// [B, L, d], run by onnxruntime-node on the compute backend's device (its WebGPU execution
// provider when the backend is WebGPU, the CPU otherwise: native-gpu/onnx-session.ts). Given either a Hugging Face
// style folder (model file + preprocessor_config.json) or a bare .onnx file (SigLIP defaults).
// The model's inputs and outputs are checked when it is opened, so a wrong model fails with one
// line saying what was expected and what was found, not deep inside a run.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type * as ort from 'onnxruntime-node';
import { onnxruntime } from '../../../../native-gpu/onnxruntime.js';
import type { ComputeBackend, Matrix, RunControl } from '../../../../native-gpu/backend.js';
import { describeTensors, openModelSession, type ModelSession, type TensorInfo } from '../../../../native-gpu/onnx-session.js';
import { UserError, throwIfCancelled } from '../../../../common/errors.js';
import { onFile, requireRegularFile } from '../../io/files.js';
import { loadImage, type ResizeTo, type RgbImage } from '../image.js';
import { checkGridSize, checkInputSize, MAX_EMBEDDING_DIM, MAX_FIXED_BATCH } from '../../core/limits.js';
import type { Encoder, EncoderDescriptor } from './index.js';
import { DEFAULT_PREPROCESS, readPreprocessorConfig, toPixelValues, type Preprocess } from './preprocess.js';

/** Where Hugging Face style repositories keep the vision tower, first match wins. */
export const MODEL_CANDIDATES = ['model.onnx', 'vision_model.onnx', 'onnx/vision_model.onnx', 'onnx/model.onnx'];
const DEFAULT_SIZE = 224;
/** Images per session.run when the batch dimension is free. */
const MAX_BATCH = 8;

interface ModelFiles {
  model: string;
  config: string | null;
}

/** Whether anything is at `file` (a folder or FIFO there is found, and refused when read). */
async function present(file: string): Promise<boolean> {
  return fs.stat(file).then(
    () => true,
    () => false,
  );
}

/** The model file and its preprocessor config, each checked to be a regular file: onnxruntime
 *  would block forever opening a FIFO. */
async function locate(spec: string): Promise<ModelFiles> {
  if (!(await onFile(spec, 'open the encoder', () => fs.stat(spec))).isDirectory()) {
    await requireRegularFile(spec, 'an ONNX model');
    return { model: spec, config: null };
  }
  for (const candidate of MODEL_CANDIDATES) {
    const model = path.join(spec, candidate);
    if (await present(model)) {
      await requireRegularFile(model, 'an ONNX model');
      const config = path.join(spec, 'preprocessor_config.json');
      return { model, config: (await present(config)) ? config : null };
    }
  }
  throw new UserError(`${spec}: no ONNX model found (looked for ${MODEL_CANDIDATES.join(', ')})`);
}

/** The pixel input: 'pixel_values' (or the only input), float32 [B, 3, H, W]. */
function pickInput(file: string, inputs: readonly TensorInfo[]): TensorInfo {
  const input = inputs.find((m) => m.name === 'pixel_values') ?? (inputs.length === 1 ? inputs[0] : undefined);
  const ok = input && inputs.length === 1 && input.type === 'float32' && input.shape.length === 4 && (input.shape[1] === 3 || typeof input.shape[1] === 'string');
  if (!ok) throw new UserError(`${file}: expected input 'pixel_values' [B,3,H,W] float32, found ${describeTensors(inputs)}`);
  return input;
}

/** The patch embeddings: 'last_hidden_state' (or the first rank-3 output), float32 [B, L, d]. */
function pickOutput(file: string, outputs: readonly TensorInfo[]): TensorInfo {
  const output = outputs.find((m) => m.name === 'last_hidden_state') ?? outputs.find((m) => m.shape.length === 3);
  if (!output || output.type !== 'float32' || output.shape.length !== 3) {
    throw new UserError(`${file}: expected output 'last_hidden_state' [B,L,d] float32, found ${describeTensors(outputs)}`);
  }
  return output;
}

/** Grid and patch size for L tokens over an H x W input. A ViT with a CLS token returns
 *  L = gridH*gridW + 1 with the CLS token first; it is not a patch, so it is dropped. */
function gridOf(file: string, tokens: number, [h, w]: [number, number]): { grid: [number, number]; patch: number; skip: number } {
  for (const skip of [0, 1]) {
    const patch = Math.round(Math.sqrt((h * w) / (tokens - skip)));
    if (patch > 0 && h % patch === 0 && w % patch === 0 && (h / patch) * (w / patch) === tokens - skip) {
      return { grid: [h / patch, w / patch], patch, skip };
    }
  }
  throw new UserError(`${file}: ${tokens} output tokens do not form a grid of square patches over a ${h}x${w} input`);
}

/** A dimension the model fixes (a positive number); symbolic or unknown dimensions are free. */
function fixedDim(dim: number | string | undefined): number | null {
  return typeof dim === 'number' && dim > 0 ? dim : null;
}

/** Input size: the config's, else the model's fixed H and W, else 224; they must agree. */
function inputSizeOf(file: string, input: TensorInfo, configured: [number, number] | null): [number, number] {
  const [mh, mw] = [fixedDim(input.shape[2]), fixedDim(input.shape[3])];
  const fixed = mh !== null && mw !== null ? ([mh, mw] as [number, number]) : null;
  // Checked from the model's metadata, before anything is allocated for an input of that size.
  if (fixed) checkInputSize(fixed, file);
  if (configured && fixed && (configured[0] !== fixed[0] || configured[1] !== fixed[1])) {
    throw new UserError(`${file}: preprocessor_config.json resizes to ${configured[0]}x${configured[1]} but the model takes ${fixed[0]}x${fixed[1]}`);
  }
  return configured ?? fixed ?? [DEFAULT_SIZE, DEFAULT_SIZE];
}

/** The model's pixel input and embedding output, the input size, and the batch it fixes (null: open). */
interface ModelIo {
  input: TensorInfo;
  output: TensorInfo;
  inputSize: [number, number];
  fixedBatch: number | null;
}

/** The model's inputs and outputs checked against a vision tower's, within the limits. */
function checkModel(file: string, session: ModelSession, configured: [number, number] | null): ModelIo {
  const input = pickInput(file, session.inputs);
  const output = pickOutput(file, session.outputs);
  const inputSize = inputSizeOf(file, input, configured);
  const fixedBatch = fixedDim(input.shape[0]);
  if (fixedBatch !== null && fixedBatch > MAX_FIXED_BATCH) {
    throw new UserError(`${file}: the model's fixed batch size ${fixedBatch} exceeds the limit of ${MAX_FIXED_BATCH} images`);
  }
  const declaredD = fixedDim(output.shape[2]);
  if (declaredD !== null && declaredD > MAX_EMBEDDING_DIM) {
    throw new UserError(`${file}: the model's embedding size d = ${declaredD} exceeds the limit of ${MAX_EMBEDDING_DIM}`);
  }
  return { input, output, inputSize, fixedBatch };
}

/** How the output lays out tokens: L per image (`skip` of them not patches), d, and the patch grid. */
interface TokenLayout {
  tokens: number;
  d: number;
  grid: [number, number];
  patch: number;
  skip: number;
}

/** One run on a blank image tells the token count L and d even when the model leaves them
 *  symbolic, and proves the model runs before any real work is queued. */
async function probeLayout(file: string, io: ModelIo, run: (images: RgbImage[]) => Promise<ort.Tensor>): Promise<TokenLayout> {
  const [height, width] = io.inputSize;
  const probe = await run([{ data: new Float32Array(3 * height * width), width, height }]);
  if (probe.dims.length !== 3) throw new UserError(`${file}: output '${io.output.name}' has shape [${probe.dims.join(',')}], expected [B,L,d]`);
  const [, tokens, d] = probe.dims as [number, number, number];
  if (!(d >= 1 && d <= MAX_EMBEDDING_DIM)) throw new UserError(`${file}: the model's embedding size d = ${d} is outside 1..${MAX_EMBEDDING_DIM}`);
  const { grid, patch, skip } = gridOf(file, tokens, io.inputSize);
  checkGridSize(grid, file);
  return { tokens, d, grid, patch, skip };
}

/** The patch embeddings of images already at the input size, `step` images per run, the
 *  tokens that are not patches left out. */
async function encodeBatches(images: RgbImage[], run: (images: RgbImage[]) => Promise<ort.Tensor>, step: number, layout: TokenLayout, control?: RunControl): Promise<Matrix> {
  const { tokens, d, grid, skip } = layout;
  const perImage = grid[0] * grid[1];
  const data = new Float32Array(images.length * perImage * d);
  for (let start = 0; start < images.length; start += step) {
    throwIfCancelled(control?.signal);
    const batch = images.slice(start, start + step);
    const out = (await run(batch)).data as Float32Array;
    for (let b = 0; b < batch.length; b++) {
      const from = (b * tokens + skip) * d;
      data.set(out.subarray(from, from + perImage * d), (start + b) * perImage * d);
    }
  }
  return { rows: images.length * perImage, cols: d, data };
}

export async function openOnnxEncoder(spec: string, backend: ComputeBackend): Promise<Encoder> {
  const files = await locate(spec);
  const config = files.config ? await readPreprocessorConfig(files.config) : null;
  const preprocess: Preprocess = config?.preprocess ?? DEFAULT_PREPROCESS;

  const session = await openModelSession(files.model, files.model, { device: backend.name });
  try {
    const io = checkModel(files.model, session, config?.size ?? null);
    const { input, output, inputSize, fixedBatch } = io;
    const run = async (images: RgbImage[]): Promise<ort.Tensor> => {
      const count = fixedBatch ?? images.length;
      const feeds = { [input.name]: new (onnxruntime().Tensor)('float32', toPixelValues(images, preprocess, count), [count, 3, inputSize[0], inputSize[1]]) };
      const result = await session.run(feeds, [output.name]);
      return result[output.name] as ort.Tensor;
    };
    const layout = await probeLayout(files.model, io, run);
    const { d, patch } = layout;
    const perImage = layout.grid[0] * layout.grid[1];

    // A model with a fixed input cannot follow the photo: every image is stretched to it, as
    // the model's own image processor does (SigLIP's resizes to its square without cropping).
    const descriptor: EncoderDescriptor = { kind: 'onnx', id: path.resolve(spec), patch, inputSize, d, resize: 'stretch', preprocess };
    const resize: ResizeTo = { width: inputSize[1], height: inputSize[0], resample: preprocess.resample };
    return {
      descriptor,
      d,
      patch,
      inputSize,
      tokensPerImage: { min: perImage, max: perImage },
      tokensOf: async () => perImage,
      get device() {
        return session.device;
      },
      load: (file) => loadImage(file, resize),
      offload: { resize },
      async encode(images: RgbImage[], control?: RunControl): Promise<Matrix> {
        for (const img of images) {
          if (img.width !== inputSize[1] || img.height !== inputSize[0]) {
            throw new Error(`onnx encoder: image is ${img.width}x${img.height}, expected ${inputSize[1]}x${inputSize[0]} (use encoder.load)`);
          }
        }
        return encodeBatches(images, run, fixedBatch ?? MAX_BATCH, layout, control);
      },
      async dispose() {
        await session.release();
      },
    };
  } catch (err) {
    await session.release();
    throw err;
  }
}

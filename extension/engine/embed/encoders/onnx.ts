// ONNX vision towers (SigLIP, SigLIP2 fixed-resolution, CLIP / OpenCLIP, DINOv2 with or without
// registers): input pixel_values [B, 3, H, W] -> patch tokens [B, L, d], run by onnxruntime-node on
// the compute backend's device (its WebGPU execution provider when the backend is WebGPU, the CPU
// otherwise: native-gpu/onnx-session.ts). What differs between families is read from the folder's
// config.json (patch size, input size, the tokens before the grid: model-config.ts) and
// preprocessor_config.json (resize, crop, resampling, normalization: preprocess.ts), never
// guessed; a bare .onnx file (or a folder without them) gets SigLIP's defaults and 0 or 1 leading
// tokens, whichever makes a grid. The tokens are the model's last_hidden_state, or with `layer`
// one of its hidden_states.<i> outputs (as Python indexes outputs.hidden_states: -2 is the
// penultimate layer LLaVA-style models use). f16 inputs and outputs are converted at the edge.
// Where the export has a pooled output (image_embeds, else pooler_output), encodeWithPooled gives
// it beside the tokens from the same run (tokenize --pooled).
// The inputs and outputs are checked when the model is opened, so a wrong model fails with one
// line saying what was expected and what was found, not deep inside a run.
import * as path from 'node:path';
import type * as ort from 'onnxruntime-node';
import type { ComputeBackend, Matrix, RunControl } from '../../../../native-gpu/backend.js';
import { describeTensors, openModelSession, type ModelSession, type TensorInfo } from '../../../../native-gpu/onnx-session.js';
import { FLOAT_TYPES, fixed, floatTensor, floats } from '../../../../native-gpu/onnx-tensors.js';
import { UserError, throwIfCancelled } from '../../../../common/errors.js';
import { imageGrid, loadImage, type RgbImage } from '../image.js';
import { checkGridSize, checkInputSize, MAX_EMBEDDING_DIM, MAX_FIXED_BATCH } from '../../core/limits.js';
import type { Encoder, EncoderDescriptor, EncoderOptions } from './index.js';
import { DEFAULT_PREPROCESS, readPreprocessorConfig, toPixelValues, type Preprocess } from './preprocess.js';
import { checkAgainstModel, readVisionConfig, type VisionConfig } from './model-config.js';
import { DEFAULT_PRECISION, locateModel, weightsSha256, type ModelFiles } from './model-files.js';
import type { ProcessorResize } from './pil-resize.js';

const DEFAULT_SIZE = 224;
/** Images per session.run when the batch dimension is free. */
const MAX_BATCH = 8;

/** The pixel input: 'pixel_values' (or the only input), float32 or float16 [B, 3, H, W]. A
 *  combined image+text model is refused naming the file to use instead. */
function pickInput(file: string, inputs: readonly TensorInfo[]): TensorInfo {
  const pixels = inputs.find((m) => m.name === 'pixel_values');
  const input = pixels ?? (inputs.length === 1 ? inputs[0] : undefined);
  if (pixels && inputs.some((m) => m.name === 'input_ids')) {
    throw new UserError(`${file}: a combined image+text model (inputs ${describeTensors(inputs)}) has no patch tokens of the image alone; use its vision tower, onnx/vision_model.onnx, as onnx-community's CLIP and SigLIP exports ship it`);
  }
  const ok = input && inputs.length === 1 && FLOAT_TYPES.includes(input.type) && input.shape.length === 4 && (input.shape[1] === 3 || typeof input.shape[1] === 'string');
  if (!ok) throw new UserError(`${file}: expected input 'pixel_values' [B,3,H,W] float32 or float16, found ${describeTensors(inputs)}`);
  return input;
}

/** The export's hidden_states.<i> outputs, by i (0: the embeddings, the last: the last layer). */
function hiddenStates(outputs: readonly TensorInfo[]): TensorInfo[] {
  const found: TensorInfo[] = [];
  for (const m of outputs) {
    const i = /^hidden_states[._](\d+)$/.exec(m.name)?.[1];
    if (i !== undefined) found[Number(i)] = m;
  }
  return found;
}

/** The patch tokens: 'last_hidden_state' (or the first rank-3 output), or hidden state `layer`. */
function pickOutput(file: string, outputs: readonly TensorInfo[], layer: number | null): TensorInfo {
  let output: TensorInfo | undefined;
  if (layer === null) {
    output = outputs.find((m) => m.name === 'last_hidden_state') ?? outputs.find((m) => m.shape.length === 3);
  } else {
    const states = hiddenStates(outputs);
    const n = states.length;
    if (n === 0 || states.includes(undefined as never) || Object.keys(states).length !== n) {
      throw new UserError(`${file}: choosing a layer needs an export with hidden_states.0 ... hidden_states.N outputs; this one has ${describeTensors(outputs)}`, { cli: 'leave out --layer', vscode: 'leave the layer unset' });
    }
    output = states[layer < 0 ? n + layer : layer];
    if (!output) throw new UserError(`${file}: layer ${layer} is outside the export's ${n} hidden states (0 to ${n - 1}, or -1 to -${n} from the last)`, { cli: 'give --layer in that range', vscode: 'choose a layer in that range' });
  }
  if (!output || !FLOAT_TYPES.includes(output.type) || output.shape.length !== 3) {
    throw new UserError(`${file}: expected output 'last_hidden_state' [B,L,d] float32 or float16, found ${describeTensors(outputs)}`);
  }
  return output;
}

/** The image's pooled embedding, preferred first: CLIP's projection (image_embeds), else the
 *  vision model's pooled output (SigLIP's attention-pooling head). */
export const POOLED_OUTPUTS = ['image_embeds', 'pooler_output'];

function pickPooled(outputs: readonly TensorInfo[]): TensorInfo | null {
  const found = POOLED_OUTPUTS.map((n) => outputs.find((m) => m.name === n)).find((m) => m !== undefined);
  return found && FLOAT_TYPES.includes(found.type) && found.shape.length === 2 ? found : null;
}

/** Grid and patch size for L tokens over an H x W input, with no config to say: a ViT with a CLS
 *  token returns L = gridH*gridW + 1 with the CLS token first; it is not a patch, so it is dropped.
 *  The grid counts whole patches (see imageGrid). */
function gridOf(file: string, tokens: number, [h, w]: [number, number]): { patch: number; skip: number } {
  for (const skip of [0, 1]) {
    const exact = Math.sqrt((h * w) / (tokens - skip));
    for (const patch of [Math.round(exact), Math.floor(exact)]) {
      if (patch > 0 && Math.floor(h / patch) * Math.floor(w / patch) === tokens - skip) return { patch, skip };
    }
  }
  throw new UserError(`${file}: ${tokens} output tokens do not form a grid of square patches over a ${h}x${w} input`);
}

/** Input size: the config's, else the model's fixed H and W, else 224; they must agree. */
function inputSizeOf(file: string, input: TensorInfo, configured: [number, number] | null): [number, number] {
  const [mh, mw] = [fixed(input.shape[2]), fixed(input.shape[3])];
  const modelSize = mh !== null && mw !== null ? ([mh, mw] as [number, number]) : null;
  // Checked from the model's metadata, before anything is allocated for an input of that size.
  if (modelSize) checkInputSize(modelSize, file);
  if (configured && modelSize && (configured[0] !== modelSize[0] || configured[1] !== modelSize[1])) {
    throw new UserError(`${file}: preprocessor_config.json resizes to ${configured[0]}x${configured[1]} but the model takes ${modelSize[0]}x${modelSize[1]}`);
  }
  return configured ?? modelSize ?? [DEFAULT_SIZE, DEFAULT_SIZE];
}

/** The model's pixel input and token output, the input size, and the batch it fixes (null: open). */
interface ModelIo {
  input: TensorInfo;
  output: TensorInfo;
  inputSize: [number, number];
  fixedBatch: number | null;
  /** the pooled image embedding output, when the export has one */
  pooled: TensorInfo | null;
}

/** The model's inputs and outputs checked against a vision tower's, within the limits. */
function checkModel(file: string, session: ModelSession, configured: [number, number] | null, layer: number | null): ModelIo {
  const input = pickInput(file, session.inputs);
  const output = pickOutput(file, session.outputs, layer);
  const inputSize = inputSizeOf(file, input, configured);
  const fixedBatch = fixed(input.shape[0]);
  if (fixedBatch !== null && fixedBatch > MAX_FIXED_BATCH) {
    throw new UserError(`${file}: the model's fixed batch size ${fixedBatch} exceeds the limit of ${MAX_FIXED_BATCH} images`);
  }
  const declaredD = fixed(output.shape[2]);
  if (declaredD !== null && declaredD > MAX_EMBEDDING_DIM) {
    throw new UserError(`${file}: the model's embedding size d = ${declaredD} exceeds the limit of ${MAX_EMBEDDING_DIM}`);
  }
  return { input, output, inputSize, fixedBatch, pooled: pickPooled(session.outputs) };
}

/** How the output lays out tokens: L per image (`skip` of them before the grid), d, and the grid. */
interface TokenLayout {
  tokens: number;
  d: number;
  grid: [number, number];
  patch: number;
  skip: number;
}

/** One run on a blank image tells the token count L and d even when the model leaves them
 *  symbolic, and proves the model runs before any real work is queued; with a config.json, L must
 *  be what the config says. */
async function probeLayout(file: string, io: ModelIo, vision: VisionConfig | null, run: Run): Promise<TokenLayout> {
  const [height, width] = io.inputSize;
  const probe = await run([{ data: new Float32Array(3 * height * width), width, height }], 'the blank probe image');
  if (probe.dims.length !== 3) throw new UserError(`${file}: output '${io.output.name}' has shape [${probe.dims.join(',')}], expected [B,L,d]`);
  const [, tokens, d] = probe.dims as [number, number, number];
  if (!(d >= 1 && d <= MAX_EMBEDDING_DIM)) throw new UserError(`${file}: the model's embedding size d = ${d} is outside 1..${MAX_EMBEDDING_DIM}`);
  let layout: { patch: number; skip: number };
  if (vision) {
    checkAgainstModel(file, vision, io.inputSize, tokens);
    layout = { patch: vision.patch, skip: vision.leading };
  } else {
    layout = gridOf(file, tokens, io.inputSize);
  }
  const grid = imageGrid({ height, width }, layout.patch);
  checkGridSize(grid, file);
  return { tokens, d, grid, ...layout };
}

/** The patch embeddings of images already at the input size, `step` images per run, the
 *  tokens before the grid left out; with `withPooled`, each image's pooled embedding too. */
async function encodeBatches(images: RgbImage[], run: Run, step: number, layout: TokenLayout, control?: RunControl, withPooled = false): Promise<{ tokens: Matrix; pooled: Matrix | null }> {
  const { tokens, d, grid, skip } = layout;
  const perImage = grid[0] * grid[1];
  const data = new Float32Array(images.length * perImage * d);
  const pooledParts: Float32Array[] = [];
  let pooledD = 0;
  for (let start = 0; start < images.length; start += step) {
    throwIfCancelled(control?.signal);
    const batch = images.slice(start, start + step);
    const out = await run(batch, `images ${start + 1} to ${start + batch.length} of a batch of ${images.length}`, withPooled);
    for (let b = 0; b < batch.length; b++) {
      const from = (b * tokens + skip) * d;
      data.set(out.data.subarray(from, from + perImage * d), (start + b) * perImage * d);
    }
    if (out.pooled) {
      pooledD = out.pooled.d;
      pooledParts.push(out.pooled.data.slice(0, batch.length * pooledD));
    }
  }
  const pooledData = new Float32Array(images.length * pooledD);
  pooledParts.reduce((offset, p) => (pooledData.set(p, offset), offset + p.length), 0);
  const pooled = withPooled ? { rows: images.length, cols: pooledD, data: pooledData } : null;
  return { tokens: { rows: images.length * perImage, cols: d, data }, pooled };
}

/** One session.run: the output tokens as f32, and their dims (with `withPooled`, the pooled
 *  embeddings [B, d] too). `at` names the images in messages: a NaN or an infinity in the
 *  embeddings is an error naming the model and them, never a token. */
type Run = (images: RgbImage[], at: string, withPooled?: boolean) => Promise<{ data: Float32Array; dims: readonly number[]; pooled?: { data: Float32Array; d: number } }>;

/** session.run over images at the input size, in the input's type (float16 exports get halves). */
function runner(session: ModelSession, io: ModelIo, preprocess: Preprocess): Run {
  const { input, output, inputSize, fixedBatch, pooled } = io;
  return async (images, at, withPooled) => {
    const count = fixedBatch ?? images.length;
    const values = toPixelValues(images, preprocess, count);
    const dims = [count, 3, inputSize[0], inputSize[1]];
    const names = withPooled && pooled ? [output.name, pooled.name] : [output.name];
    const results = await session.run({ [input.name]: floatTensor(input.type, values, dims) }, names, at);
    const out = results[output.name] as ort.Tensor;
    const p = withPooled && pooled ? (results[pooled.name] as ort.Tensor) : null;
    const pd = p?.dims[1] ?? 0;
    if (p && (p.dims.length !== 2 || p.dims[0] !== count || !(pd >= 1 && pd <= MAX_EMBEDDING_DIM))) {
      throw new UserError(`the model's pooled output '${pooled!.name}' has shape [${p.dims.join(',')}], expected [${count},d] with d from 1 to ${MAX_EMBEDDING_DIM}`);
    }
    return { data: floats(out), dims: out.dims, ...(p && { pooled: { data: floats(p), d: p.dims[1] ?? 0 } }) };
  };
}

/** The folder's configs, read and checked. */
async function readConfigs(files: ModelFiles): Promise<{ vision: VisionConfig | null; size: [number, number] | null; preprocess: Preprocess }> {
  const vision = files.config ? await readVisionConfig(files.config) : null;
  const config = files.preprocessor ? await readPreprocessorConfig(files.preprocessor) : null;
  return { vision, size: config?.size ?? null, preprocess: config?.preprocess ?? DEFAULT_PREPROCESS };
}

/** What the codebook records of a model: its id (path, or id@commit), and the model identity. */
async function describe(spec: string, files: ModelFiles, options: EncoderOptions): Promise<Pick<EncoderDescriptor, 'id' | 'model'>> {
  const sha256 = await weightsSha256(files);
  const { hub } = files;
  return {
    id: files.byPath || !hub ? path.resolve(spec) : `${hub.repo}@${hub.commit}`,
    model: {
      ...(hub && { repo: hub.repo, revision: hub.commit }),
      file: files.relative,
      sha256,
      precision: options.precision ?? DEFAULT_PRECISION,
      layer: options.layer ?? null,
    },
  };
}

export async function openOnnxEncoder(spec: string, backend: ComputeBackend, options: EncoderOptions = {}): Promise<Encoder> {
  const files = await locateModel(spec, options.precision ?? DEFAULT_PRECISION, options.download);
  const { vision, size, preprocess } = await readConfigs(files);
  const identity = await describe(spec, files, options);
  const session = await openModelSession(files.model, files.model, { device: backend.name });
  try {
    const io = checkModel(files.model, session, size, options.layer ?? null);
    const run = runner(session, io, preprocess);
    const layout = await probeLayout(files.model, io, vision, run);
    const { d, patch } = layout;
    const { inputSize, fixedBatch } = io;
    const perImage = layout.grid[0] * layout.grid[1];
    const checkInputs = (images: RgbImage[]): void => {
      for (const img of images) {
        if (img.width !== inputSize[1] || img.height !== inputSize[0]) {
          throw new Error(`onnx encoder: image is ${img.width}x${img.height}, expected ${inputSize[1]}x${inputSize[0]} (use encoder.load)`);
        }
      }
    };
    // A model has a fixed input: every photo is brought to it as the model's own image processor
    // does (resize, centre crop), whatever its shape.
    const descriptor: EncoderDescriptor = { kind: 'onnx', ...identity, patch, inputSize, d, resize: 'stretch', preprocess };
    const resize: ProcessorResize = { processor: { size: preprocess.resize ?? { height: inputSize[0], width: inputSize[1] }, crop: preprocess.crop ?? null, resample: preprocess.resample } };
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
      load: (image) => loadImage(image, resize),
      offload: { resize },
      async encode(images: RgbImage[], control?: RunControl): Promise<Matrix> {
        checkInputs(images);
        return (await encodeBatches(images, run, fixedBatch ?? MAX_BATCH, layout, control)).tokens;
      },
      ...(io.pooled && {
        pooledOutput: io.pooled.name,
        async encodeWithPooled(images: RgbImage[], control?: RunControl) {
          checkInputs(images);
          const { tokens, pooled } = await encodeBatches(images, run, fixedBatch ?? MAX_BATCH, layout, control, true);
          return { tokens, pooled: pooled! };
        },
      }),
      async dispose() {
        await session.release();
      },
    };
  } catch (err) {
    await session.release();
    throw err;
  }
}

// Text towers (SigLIP, SigLIP2, CLIP): texts -> one embedding each, the model's own pooled text
// output, as the model gives it (not normalized): `text_embeds` where the export has it (CLIP's
// projection, or a combined image+text model's), else `pooler_output` (SigLIP's text head). The
// tokenizer is text-tokenizer.ts's. The model takes input_ids, and attention_mask where it has one
// (CLIP); without one (SigLIP), texts padded to the longest of a batch would be changed by their
// padding, so unless the padding is to a fixed length they run one at a time. A combined model
// (input_ids and pixel_values) is fed a blank image beside the texts; its text output does not
// depend on it.
import * as path from 'node:path';
import type * as ort from 'onnxruntime-node';
import type { ComputeBackend, Matrix } from '../../../../native-gpu/backend.js';
import { describeTensors, openModelSession, type ModelSession, type TensorInfo } from '../../../../native-gpu/onnx-session.js';
import { FLOAT_TYPES, fixed, floatTensor, floats } from '../../../../native-gpu/onnx-tensors.js';
import { onnxruntime } from '../../../../native-gpu/onnxruntime.js';
import { UserError, throwIfCancelled } from '../../../../common/errors.js';
import { MAX_EMBEDDING_DIM } from '../../core/limits.js';
import { readPreprocessorConfig } from './preprocess.js';
import { DEFAULT_PRECISION, locateTextModel, type Precision, type TextModelFiles } from './model-files.js';
import type { DownloadControl } from './hub-download.js';
import { openTextTokenizer, type TextTokenization, type TextTokenizer, type TokenizedTexts } from './text-tokenizer.js';

/** The pooled text outputs, preferred first. */
export const TEXT_OUTPUTS = ['text_embeds', 'pooler_output'];
/** Texts per session.run. */
const TEXT_BATCH = 16;
/** Texts a call may embed (each is a row of the result). */
export const MAX_TEXTS = 4096;

export interface TextEncoder {
  /** the model file, and the Hugging Face id and commit when it came from the cache */
  model: { file: string; repo?: string; revision?: string; precision: Precision };
  /** the output the embeddings are ('text_embeds' or 'pooler_output') */
  output: string;
  tokenization: TextTokenization;
  readonly device: string;
  tokenize(texts: readonly string[]): TokenizedTexts;
  /** [texts, d] */
  embed(texts: readonly string[], signal?: AbortSignal): Promise<Matrix>;
  dispose(): Promise<void>;
}

export interface TextEncoderOptions {
  precision?: Precision;
  download?: DownloadControl;
}

interface TextIo {
  ids: TensorInfo;
  mask: TensorInfo | null;
  pixels: TensorInfo | null;
  output: TensorInfo;
  /** texts per run: the model's fixed batch, else TEXT_BATCH (1 when padding would change them) */
  step: number;
  fixedBatch: number | null;
}

/** The model's token input: one line saying the model is no text tower when it has none. */
function idsInput(file: string, session: ModelSession): TensorInfo {
  const ids = session.inputs.find((m) => m.name === 'input_ids');
  if (!ids || !ids.type.startsWith('int') || ids.shape.length !== 2) throw new UserError(`${file}: no text tower: expected input 'input_ids' [B,S] int64, found ${describeTensors(session.inputs)}`);
  return ids;
}

/** The inputs and output of a text tower, checked; one line naming what is missing otherwise. */
function checkTextModel(file: string, session: ModelSession, tokenization: TextTokenization): TextIo {
  const find = (name: string) => session.inputs.find((m) => m.name === name) ?? null;
  const ids = idsInput(file, session);
  const [mask, pixels] = [find('attention_mask'), find('pixel_values')];
  const others = session.inputs.filter((m) => m !== ids && m !== mask && m !== pixels);
  if (others.length > 0) throw new UserError(`${file}: a text tower takes input_ids and attention_mask, found also ${describeTensors(others)}`);
  const output = TEXT_OUTPUTS.map((n) => session.outputs.find((m) => m.name === n)).find((m) => m !== undefined);
  if (!output || !FLOAT_TYPES.includes(output.type) || output.shape.length !== 2) {
    throw new UserError(`${file}: no pooled text output (${TEXT_OUTPUTS.join(' or ')} [B,d]); found ${describeTensors(session.outputs)}`);
  }
  const seq = fixed(ids.shape[1]);
  const { padding, maxLength } = tokenization;
  if (seq !== null && (padding !== 'max_length' || maxLength !== seq)) {
    throw new UserError(`${file}: the model takes exactly ${seq} tokens, but the tokenizer ${padding === 'max_length' ? `pads to ${maxLength}` : 'pads to the longest text'}`);
  }
  const fixedBatch = fixed(ids.shape[0]);
  const step = fixedBatch ?? (!mask && padding !== 'max_length' ? 1 : TEXT_BATCH);
  return { ids, mask, pixels, output, step, fixedBatch };
}

const int64 = (rows: number[][], type: string): ort.Tensor => {
  const { Tensor } = onnxruntime();
  const flat = rows.flat();
  const dims = [rows.length, rows[0]?.length ?? 0];
  return type === 'int32' ? new Tensor('int32', Int32Array.from(flat), dims) : new Tensor('int64', BigInt64Array.from(flat, BigInt), dims);
};

/** A blank image for a combined model's pixel input: the model's fixed size, else the
 *  preprocessor's, else 224. */
async function blankPixels(files: TextModelFiles, pixels: TensorInfo, batch: number): Promise<ort.Tensor> {
  const configured = files.preprocessor ? (await readPreprocessorConfig(files.preprocessor)).size : null;
  const h = fixed(pixels.shape[2]) ?? configured?.[0] ?? 224;
  const w = fixed(pixels.shape[3]) ?? configured?.[1] ?? 224;
  const n = fixed(pixels.shape[0]) ?? batch;
  return floatTensor(pixels.type, new Float32Array(n * 3 * h * w), [n, 3, h, w]);
}

/** One run over at most `step` tokenized texts: their rows of the output. */
async function runTexts(session: ModelSession, files: TextModelFiles, io: TextIo, batch: TokenizedTexts, at: string): Promise<{ data: Float32Array; d: number }> {
  const count = io.fixedBatch ?? batch.ids.length;
  const pad = <T>(rows: T[]): T[] => [...rows, ...new Array<T>(count - rows.length).fill(rows[rows.length - 1]!)];
  const feeds: Record<string, ort.Tensor> = { [io.ids.name]: int64(pad(batch.ids), io.ids.type) };
  if (io.mask) feeds[io.mask.name] = int64(pad(batch.mask), io.mask.type);
  if (io.pixels) feeds[io.pixels.name] = await blankPixels(files, io.pixels, count);
  const out = (await session.run(feeds, [io.output.name], at))[io.output.name] as ort.Tensor;
  const d = out.dims[1] ?? 0;
  if (out.dims.length !== 2 || out.dims[0] !== count || !(d >= 1 && d <= MAX_EMBEDDING_DIM)) {
    throw new UserError(`${files.model}: output '${io.output.name}' has shape [${out.dims.join(',')}], expected [${count},d] with d from 1 to ${MAX_EMBEDDING_DIM}`);
  }
  return { data: floats(out).subarray(0, batch.ids.length * d), d };
}

/** Opens the text tower of the model a spec names (a folder, an .onnx file, a Hugging Face id). */
export async function openTextEncoder(spec: string, backend: ComputeBackend, options: TextEncoderOptions = {}): Promise<TextEncoder> {
  const precision = options.precision ?? DEFAULT_PRECISION;
  const files = await locateTextModel(spec, precision, options.download);
  const session = await openModelSession(files.model, files.model, { device: backend.name });
  let io: TextIo;
  let tokenizer: TextTokenizer;
  try {
    idsInput(files.model, session);
    tokenizer = await openTextTokenizer(files);
    io = checkTextModel(files.model, session, tokenizer.tokenization);
  } catch (err) {
    await session.release();
    throw err;
  }
  return {
    model: { file: files.hub ? files.relative : path.resolve(files.model), ...(files.hub && { repo: files.hub.repo, revision: files.hub.commit }), precision },
    output: io.output.name,
    tokenization: tokenizer.tokenization,
    get device() {
      return session.device;
    },
    tokenize: (texts) => tokenizer.encode(texts),
    async embed(texts, signal) {
      if (texts.length === 0 || texts.length > MAX_TEXTS) throw new UserError(`give 1 to ${MAX_TEXTS} texts, not ${texts.length}`);
      const parts: Float32Array[] = [];
      let d = 0;
      for (let start = 0; start < texts.length; start += io.step) {
        throwIfCancelled(signal);
        const batch = tokenizer.encode(texts.slice(start, start + io.step));
        const out = await runTexts(session, files, io, batch, `texts ${start + 1} to ${start + batch.ids.length}`);
        d = out.d;
        parts.push(out.data.slice());
      }
      const data = new Float32Array(texts.length * d);
      parts.reduce((offset, p) => (data.set(p, offset), offset + p.length), 0);
      return { rows: texts.length, cols: d, data };
    },
    async dispose() {
      await session.release();
    },
  };
}

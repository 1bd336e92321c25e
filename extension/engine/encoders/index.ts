// Encoders turn an image into L patch embeddings (L = gridH * gridW, raster order). Two kinds:
// the built-in DCT encoder (no weights; exactly invertible, so codes map straight back to pixels)
// and ONNX exports of SigLIP-style vision towers. A codebook records its encoder's descriptor so
// the same encoder can be reopened to tokenize with it later.
import { promises as fs } from 'node:fs';
import type { ComputeBackend, Matrix, RunControl } from '../../../native-gpu/backend';
import { REMEDIES, UserError } from '../../../common/errors';
import type { ResizeTo, RgbImage } from '../image';
import { checkGridSize, checkInputSize, MAX_EMBEDDING_DIM } from '../limits';
import { openDctEncoder, DCT_PATCH } from './dct';
import { openOnnxEncoder } from './onnx';
import { checkPreprocess, type Preprocess } from './preprocess';

export interface EncoderDescriptor {
  kind: 'dct' | 'onnx';
  /** 'dct:<size>' for the DCT encoder; the model folder or .onnx file for ONNX encoders */
  id: string;
  /** pixel size of the square patch each token covers */
  patch: number;
  /** [height, width] images are resized to */
  inputSize: [number, number];
  d: number;
  preprocess?: Preprocess;
}

export interface Encoder {
  descriptor: EncoderDescriptor;
  d: number;
  patch: number;
  /** [height, width] */
  inputSize: [number, number];
  /** [gridH, gridW] tokens per image */
  grid: [number, number];
  /** what computes the embeddings (the backend for the DCT; onnxruntime's device for a model) */
  readonly device: string;
  /** decoded and resized to inputSize */
  load(path: string): Promise<RgbImage>;
  /** What a worker thread of the encode pool can do without this object: `load` is decoding and
   *  resizing to `resize`; with `dctPatch`, encode is the DCT of those pixels on the CPU. */
  readonly offload: { resize: ResizeTo; dctPatch?: number };
  /** [B*L x d], image-major, raster order within an image */
  encode(images: RgbImage[], control?: RunControl): Promise<Matrix>;
  dispose(): Promise<void>;
}

export const DEFAULT_DCT_SIZE = 224;

/** The encoder id a codebook built from precomputed embeddings of unknown origin records. */
export const EXTERNAL_ENCODER = 'external';

/** 'dct' (224x224) | 'dct:<size>' (a multiple of 16, at most MAX_INPUT_SIDE) | model folder | .onnx file */
export async function openEncoder(spec: string, backend: ComputeBackend): Promise<Encoder> {
  if (spec === 'dct') return openDctEncoder(DEFAULT_DCT_SIZE, backend);
  if (spec.startsWith('dct:')) return openDctEncoder(dctSizeOf(spec), backend);
  const stat = await fs.stat(spec).catch(() => null);
  if (!stat) throw new UserError(`encoder '${spec}': no such model folder or .onnx file (or use 'dct' / 'dct:<size>')`);
  return openOnnxEncoder(spec, backend);
}

/** The input size of a 'dct:<size>' spec; the size itself is checked by openDctEncoder. */
function dctSizeOf(spec: string): number {
  const text = spec.slice(4);
  const size = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(size) || size <= 0 || size % DCT_PATCH !== 0) {
    throw new UserError(`encoder '${spec}': the DCT input size must be a positive multiple of ${DCT_PATCH} (e.g. dct:224)`);
  }
  return size;
}

function isCount(n: unknown, min: number): n is number {
  return Number.isSafeInteger(n) && (n as number) >= min;
}

/**
 * The one validator of an encoder descriptor read from a file (a codebook's metadata, a corpus
 * manifest): every field present and of its type, sizes within the limits (limits.ts), and the
 * fields consistent with the kind, so that opening the encoder it names cannot allocate without
 * bound or open something else than it says (a 'dct' descriptor never opens a model file).
 */
export function validateEncoderDescriptor(value: unknown, source: string): EncoderDescriptor {
  const fail = (problem: string): never => {
    throw new UserError(`${source}: invalid encoder descriptor: ${problem}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(`expected {kind, id, patch, inputSize, d}, found ${JSON.stringify(value)}`);
  const desc = value as Record<string, unknown>;
  const { kind, id, patch, inputSize, d } = desc;
  if (kind !== 'dct' && kind !== 'onnx') fail(`'kind' must be 'dct' or 'onnx', found ${JSON.stringify(kind)}`);
  if (typeof id !== 'string' || id.length === 0) fail(`'id' must be a non-empty string, found ${JSON.stringify(id)}`);
  if (!isCount(d, 1) || d > MAX_EMBEDDING_DIM) fail(`'d' must be a whole number from 1 to ${MAX_EMBEDDING_DIM}, found ${JSON.stringify(d)}`);
  if (!Array.isArray(inputSize) || inputSize.length !== 2) fail(`'inputSize' must be [height, width], found ${JSON.stringify(inputSize)}`);
  if (!isCount(patch, 0)) fail(`'patch' must be a whole number of pixels, found ${JSON.stringify(patch)}`);
  const size = inputSize as unknown[];
  if (kind === 'onnx' && id === EXTERNAL_ENCODER) {
    // Built from embeddings of unknown origin: no image geometry to check.
    if (patch !== 0 || size[0] !== 0 || size[1] !== 0) fail(`the '${EXTERNAL_ENCODER}' encoder has patch 0 and inputSize [0, 0], found patch ${patch} and ${JSON.stringify(size)}`);
  } else {
    checkInputSize(size, `${source}: encoder '${id}'`);
    const [h, w] = size as [number, number];
    if (!isCount(patch, 1) || h % patch !== 0 || w % patch !== 0) fail(`patch ${patch} does not tile the ${h}x${w} input`);
    checkGridSize([h / (patch as number), w / (patch as number)], `${source}: encoder '${id}'`);
    if (kind === 'dct') {
      const expected = `dct:${h}`;
      if (id !== expected || h !== w || patch !== DCT_PATCH || d !== 3 * DCT_PATCH * DCT_PATCH) {
        fail(`a 'dct' encoder is id '${expected}' with a square input, patch ${DCT_PATCH} and d = ${3 * DCT_PATCH * DCT_PATCH}, found id ${JSON.stringify(id)}, input ${h}x${w}, patch ${patch}, d = ${d}`);
      }
    }
  }
  if (desc.preprocess !== undefined) checkPreprocess(desc.preprocess, source);
  return value as EncoderDescriptor;
}

function sameShape(a: EncoderDescriptor, b: EncoderDescriptor): boolean {
  return a.d === b.d && a.patch === b.patch && a.inputSize[0] === b.inputSize[0] && a.inputSize[1] === b.inputSize[1];
}

/** Reopens the encoder a codebook was built with (by its kind: a 'dct' descriptor opens the
 *  built-in encoder, never a file), and checks it still produces what it did. */
export async function openEncoderFromDescriptor(desc: EncoderDescriptor, backend: ComputeBackend): Promise<Encoder> {
  let encoder: Encoder;
  if (desc.kind === 'dct') {
    encoder = await openDctEncoder(desc.inputSize[0], backend);
  } else {
    if (!(await fs.stat(desc.id).catch(() => null))) {
      throw new UserError(`the codebook was built with encoder '${desc.id}', which is not available here`, REMEDIES.locateEncoder);
    }
    encoder = await openOnnxEncoder(desc.id, backend);
  }
  if (!sameShape(encoder.descriptor, desc)) {
    const show = (e: EncoderDescriptor) => `d=${e.d}, patch ${e.patch}, input ${e.inputSize.join('x')}`;
    await encoder.dispose();
    throw new UserError(`encoder '${desc.id}' now gives ${show(encoder.descriptor)} but the codebook was built with ${show(desc)}`);
  }
  return encoder;
}

/** The encoder a codebook was built with, or the one the user names instead (`override`). */
export async function openCodebookEncoder(cb: { meta: { encoder: EncoderDescriptor } }, override: string | undefined,
                                          backend: ComputeBackend): Promise<Encoder> {
  if (override) return openEncoder(override, backend);
  if (cb.meta.encoder.id === EXTERNAL_ENCODER) {
    throw new UserError('this codebook was built from external embeddings', REMEDIES.nameEncoder);
  }
  return openEncoderFromDescriptor(cb.meta.encoder, backend);
}

// Encoders turn an image into L patch embeddings (L = gridH * gridW, raster order). Two kinds:
// the built-in DCT encoder (no weights; exactly invertible, so codes map straight back to pixels)
// and ONNX exports of SigLIP-style vision towers. A codebook records its encoder's descriptor so
// the same encoder can be reopened to tokenize with it later.
import { promises as fs } from 'node:fs';
import type { ComputeBackend, Matrix, RunControl } from '../../../native-gpu/backend';
import { UserError } from '../../../common/errors';
import type { RgbImage } from '../image';
import { openDctEncoder, DCT_PATCH } from './dct';
import { openOnnxEncoder } from './onnx';
import type { Preprocess } from './preprocess';

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
  /** decoded and resized to inputSize */
  load(path: string): Promise<RgbImage>;
  /** [B*L x d], image-major, raster order within an image */
  encode(images: RgbImage[], control?: RunControl): Promise<Matrix>;
  dispose(): Promise<void>;
}

export const DEFAULT_DCT_SIZE = 224;

/** The encoder id a codebook built from precomputed embeddings of unknown origin records. */
export const EXTERNAL_ENCODER = 'external';

/** 'dct' (224x224) | 'dct:<size>' (any multiple of 16) | model folder | .onnx file */
export async function openEncoder(spec: string, backend: ComputeBackend): Promise<Encoder> {
  if (spec === 'dct') return openDctEncoder(DEFAULT_DCT_SIZE, backend);
  if (spec.startsWith('dct:')) {
    const size = Number(spec.slice(4));
    if (!Number.isInteger(size) || size <= 0 || size % DCT_PATCH !== 0) {
      throw new UserError(`encoder '${spec}': the DCT input size must be a positive multiple of ${DCT_PATCH} (e.g. dct:224)`);
    }
    return openDctEncoder(size, backend);
  }
  try {
    await fs.stat(spec);
  } catch {
    throw new UserError(`encoder '${spec}': no such model folder or .onnx file (or use 'dct' / 'dct:<size>')`);
  }
  return openOnnxEncoder(spec);
}

function sameShape(a: EncoderDescriptor, b: EncoderDescriptor): boolean {
  return a.d === b.d && a.patch === b.patch && a.inputSize[0] === b.inputSize[0] && a.inputSize[1] === b.inputSize[1];
}

/** Reopens the encoder a codebook was built with, and checks it still produces what it did. */
export async function openEncoderFromDescriptor(desc: EncoderDescriptor, backend: ComputeBackend): Promise<Encoder> {
  if (desc.kind === 'onnx') {
    try {
      await fs.stat(desc.id);
    } catch {
      throw new UserError(`the codebook was built with encoder '${desc.id}', which is not available here; name the encoder's model folder explicitly`);
    }
  }
  const encoder = await openEncoder(desc.id, backend);
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
    throw new UserError('this codebook was built from external embeddings; name the encoder that made them with --encoder');
  }
  return openEncoderFromDescriptor(cb.meta.encoder, backend);
}

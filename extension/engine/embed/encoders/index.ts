// Encoders turn an image into L patch embeddings (L = gridH * gridW, raster order). Two kinds:
// the built-in DCT encoder (no weights; exactly invertible, so codes map straight back to pixels)
// and ONNX exports of SigLIP-style vision towers. A codebook records its encoder's descriptor so
// the same encoder can be reopened to tokenize with it later.
//
// The grid is the image's own: an encoder loads each image at the size it encodes it at (its
// `load`), and the grid of that image is its size over the patch (imageGrid). For a model with a
// fixed input that is one grid for every image; the DCT encoder keeps each photo's shape.
import { promises as fs } from 'node:fs';
import type { ComputeBackend, Matrix, RunControl } from '../../../../native-gpu/backend.js';
import { REMEDIES, UserError } from '../../../../common/errors.js';
import type { KeepAspect, ResizeTo, RgbImage } from '../image.js';
import { checkGridSize, checkInputSize, MAX_EMBEDDING_DIM } from '../../core/limits.js';
import { dctEncoderId, openDctEncoder, DCT_PATCH } from './dct.js';
import { openOnnxEncoder } from './onnx.js';
import { checkPreprocess, type Preprocess } from './preprocess.js';

/** How images are resized: 'keep-aspect' (the short side to inputSize, the long side following the
 *  photo; the built-in DCT's default) or 'stretch' (to exactly inputSize: a model's fixed input,
 *  'dct:<size>:square'). */
export type EncoderResize = 'keep-aspect' | 'stretch';

export interface EncoderDescriptor {
  kind: 'dct' | 'onnx';
  /** 'dct:<size>' or 'dct:<size>:square' for the DCT encoder; the model folder or .onnx file for
   *  ONNX encoders */
  id: string;
  /** pixel size of the square patch each token covers */
  patch: number;
  /** [height, width] images are resized to ('stretch'), or [short side, short side] ('keep-aspect') */
  inputSize: [number, number];
  d: number;
  /** absent in files written before keep-aspect existed: they were all 'stretch' */
  resize: EncoderResize;
  preprocess?: Preprocess;
}

export interface Encoder {
  descriptor: EncoderDescriptor;
  d: number;
  patch: number;
  /** [height, width] (see EncoderDescriptor) */
  inputSize: [number, number];
  /** tokens (L) of one image, fewest and most: equal unless the grid follows the photo */
  tokensPerImage: { min: number; max: number };
  /** the tokens an image file will get, from its header (no decode); throws a UserError for a
   *  file that cannot be read */
  tokensOf(path: string): Promise<number>;
  /** what computes the embeddings (the backend for the DCT; onnxruntime's device for a model) */
  readonly device: string;
  /** decoded and resized to what this encoder encodes it at; its grid is imageGrid(image, patch) */
  load(path: string): Promise<RgbImage>;
  /** What a worker thread of the encode pool can do without this object: `load` is decoding and
   *  resizing to `resize`; with `dctPatch`, encode is the DCT of those pixels on the CPU. */
  readonly offload: { resize: ResizeTo | KeepAspect; dctPatch?: number };
  /** [sum of the images' L x d], image-major, raster order within an image */
  encode(images: RgbImage[], control?: RunControl): Promise<Matrix>;
  dispose(): Promise<void>;
}

export const DEFAULT_DCT_SIZE = 224;

/** [gridH, gridW] of an image an encoder loaded: its size in patches. */
export function imageGrid(image: { width: number; height: number }, patch: number): [number, number] {
  return [image.height / patch, image.width / patch];
}

/** The encoder id a codebook built from precomputed embeddings of unknown origin records. */
export const EXTERNAL_ENCODER = 'external';

/** The grammar of an encoder spec, as every surface words it (CLI help, settings, prompts). */
export const ENCODER_SPEC_HELP = "'dct', 'dct:<size>', 'dct:<size>:square', a model folder or an .onnx file";

/**
 * What differs between the kinds of encoder, in one place: how a spec names one, how it opens, and
 * what the rest of the product must know about it. A new kind is a file of its own plus a row here
 * (and its case in validateEncoderDescriptor).
 */
interface EncoderKind {
  /** whether a spec names this kind (the first kind that claims a spec opens it) */
  claims(spec: string): boolean;
  open(spec: string, backend: ComputeBackend): Promise<Encoder>;
  reopen(desc: EncoderDescriptor, backend: ComputeBackend): Promise<Encoder>;
  /** what a codebook built with it starts its trainable rows as: pixel patches when the encoder is
   *  exactly invertible ('dct'), nothing otherwise */
  atlas: 'dct' | 'none';
  /** reopening it needs the file its id names on this machine */
  needsFile: boolean;
  /** opening it runs a program the codebook names (an ONNX model): Restricted Mode asks first */
  needsConsent: boolean;
}

export const ENCODER_KINDS: Record<EncoderDescriptor['kind'], EncoderKind> = {
  dct: {
    claims: (spec) => spec === 'dct' || spec.startsWith('dct:'),
    open: (spec, backend) => {
      if (spec === 'dct') return openDctEncoder(DEFAULT_DCT_SIZE, 'keep-aspect', backend);
      const square = spec.endsWith(':square');
      return openDctEncoder(dctSizeOf(spec, square ? spec.slice(4, -7) : spec.slice(4)), square ? 'stretch' : 'keep-aspect', backend);
    },
    // a 'dct' descriptor opens the built-in encoder, never a file
    reopen: (desc, backend) => openDctEncoder(desc.inputSize[0], desc.resize, backend),
    atlas: 'dct',
    needsFile: false,
    needsConsent: false,
  },
  onnx: {
    claims: () => true,
    open: async (spec, backend) => {
      if (!(await fs.stat(spec).catch(() => null))) throw new UserError(`encoder '${spec}': no such model folder or .onnx file (or use 'dct', 'dct:<size>' or 'dct:<size>:square')`);
      return openOnnxEncoder(spec, backend);
    },
    reopen: async (desc, backend) => {
      if (!(await fs.stat(desc.id).catch(() => null))) {
        throw new UserError(`the codebook was built with encoder '${desc.id}', which is not available here`, REMEDIES.locateEncoder);
      }
      return openOnnxEncoder(desc.id, backend);
    },
    atlas: 'none',
    needsFile: true,
    needsConsent: true,
  },
};

/** The kind of encoder a spec names (the spec itself is checked when it is opened). */
export function encoderKindOf(spec: string): EncoderDescriptor['kind'] {
  return (Object.keys(ENCODER_KINDS) as EncoderDescriptor['kind'][]).find((kind) => ENCODER_KINDS[kind].claims(spec))!;
}

/** Opens the encoder a spec names (ENCODER_SPEC_HELP; 'dct' keeps the photo's shape with its short
 *  side at 224, ':square' stretches it). */
export async function openEncoder(spec: string, backend: ComputeBackend): Promise<Encoder> {
  return ENCODER_KINDS[encoderKindOf(spec)].open(spec, backend);
}

/** The input size of a 'dct:<size>[:square]' spec; the size itself is checked by openDctEncoder. */
function dctSizeOf(spec: string, text: string): number {
  const size = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(size) || size <= 0 || size % DCT_PATCH !== 0) {
    throw new UserError(`encoder '${spec}': the DCT input size must be a positive multiple of ${DCT_PATCH} (e.g. dct:224 or dct:224:square)`);
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
 * Returns the descriptor as this version writes it: one without `resize` (written before
 * keep-aspect existed) stretched its images, so it reads as 'stretch' (a DCT one as
 * 'dct:<size>:square'), the encoder it was made with.
 */
export function validateEncoderDescriptor(value: unknown, source: string): EncoderDescriptor {
  const fail = (problem: string): never => {
    throw new UserError(`${source}: invalid encoder descriptor: ${problem}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(`expected {kind, id, patch, inputSize, d}, found ${JSON.stringify(value)}`);
  const desc = value as Record<string, unknown>;
  const { kind, patch, inputSize, d } = desc;
  const legacy = desc.resize === undefined;
  const resize = legacy ? 'stretch' : desc.resize;
  if (resize !== 'stretch' && resize !== 'keep-aspect') fail(`'resize' must be 'keep-aspect' or 'stretch', found ${JSON.stringify(resize)}`);
  const id = legacy && kind === 'dct' && typeof desc.id === 'string' && /^dct:\d+$/.test(desc.id) ? `${desc.id}:square` : desc.id;
  if (typeof kind !== 'string' || !Object.hasOwn(ENCODER_KINDS, kind)) fail(`'kind' must be ${Object.keys(ENCODER_KINDS).map((k) => `'${k}'`).join(' or ')}, found ${JSON.stringify(kind)}`);
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
      const expected = dctEncoderId(h, resize as EncoderResize);
      if (id !== expected || h !== w || patch !== DCT_PATCH || d !== 3 * DCT_PATCH * DCT_PATCH) {
        fail(`a '${resize}' 'dct' encoder is id '${expected}' with a square input size, patch ${DCT_PATCH} and d = ${3 * DCT_PATCH * DCT_PATCH}, found id ${JSON.stringify(id)}, input ${h}x${w}, patch ${patch}, d = ${d}`);
      }
    }
  }
  // Only the built-in DCT can follow a photo's shape; a model's input is what it fixes.
  if (kind === 'onnx' && resize !== 'stretch') fail(`an 'onnx' encoder resizes with 'stretch', found ${JSON.stringify(resize)}`);
  if (desc.preprocess !== undefined) checkPreprocess(desc.preprocess, source);
  return { ...(value as EncoderDescriptor), id: id as string, resize: resize as EncoderResize };
}

function sameShape(a: EncoderDescriptor, b: EncoderDescriptor): boolean {
  return a.d === b.d && a.patch === b.patch && a.inputSize[0] === b.inputSize[0] && a.inputSize[1] === b.inputSize[1] && a.resize === b.resize;
}

/** Reopens the encoder a codebook was built with (by its kind), and checks it still produces what
 *  it did. */
export async function openEncoderFromDescriptor(desc: EncoderDescriptor, backend: ComputeBackend): Promise<Encoder> {
  const encoder = await ENCODER_KINDS[desc.kind].reopen(desc, backend);
  if (!sameShape(encoder.descriptor, desc)) {
    const show = (e: EncoderDescriptor) => `d=${e.d}, patch ${e.patch}, input ${e.inputSize.join('x')} (${e.resize})`;
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

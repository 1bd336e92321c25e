// Encoders turn an image into L patch embeddings (L = gridH * gridW, raster order). Two kinds:
// the built-in DCT encoder (no weights; exactly invertible, so codes map straight back to pixels)
// and ONNX exports of vision towers (SigLIP, SigLIP2, CLIP, DINOv2: onnx.ts), named by folder,
// file or Hugging Face id. A codebook records its encoder's descriptor (for a model: its id,
// revision and weights' sha256) so the same encoder can be reopened to tokenize with it later, and
// another model is refused by name.
//
// The grid is the image's own: an encoder loads each image at the size it encodes it at (its
// `load`), and the grid of that image is its size over the patch (imageGrid). For a model with a
// fixed input that is one grid for every image; the DCT encoder keeps each photo's shape.
import { existsSync } from 'node:fs';
import type { ComputeBackend, Matrix, RunControl } from '../../../../native-gpu/backend.js';
import { REMEDIES, UserError } from '../../../../common/errors.js';
import { imageGrid, type ImageInput, type KeepAspect, type ResizeTo, type RgbImage } from '../image.js';

export { imageGrid };
import { checkGridSize, checkInputSize, MAX_EMBEDDING_DIM } from '../../core/limits.js';
import { dctEncoderId, openDctEncoder, DCT_PATCH } from './dct.js';
import { openOnnxEncoder } from './onnx.js';
import { checkPreprocess, type Preprocess } from './preprocess.js';
import { cachedSnapshot, hubOffline, parseHubId } from './hub-cache.js';
import type { DownloadControl } from './hub-download.js';
import { PRECISIONS, type Precision } from './model-files.js';
import type { ProcessorResize } from './pil-resize.js';

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
  /** what model exactly (ONNX encoders; absent in files written before it was recorded) */
  model?: ModelIdentity;
}

/** A model as a codebook records it, so tokenizing later with another is refused by name. */
export interface ModelIdentity {
  /** the Hugging Face id and the snapshot's commit, when known (an id, or a folder in the cache) */
  repo?: string;
  revision?: string;
  /** the model file, relative to its folder */
  file: string;
  /** sha256 of each file the weights are in (the .onnx and its external data), by relative path */
  sha256: Record<string, string>;
  precision: Precision;
  /** which hidden state (Python's index into hidden_states), or null: last_hidden_state */
  layer: number | null;
}

/** How to open a model beyond its spec: which precision's file, which hidden layer; a model
 *  downloaded from the hub reports its bytes and can be cancelled through `download`. */
export interface EncoderOptions {
  precision?: Precision;
  layer?: number;
  download?: DownloadControl;
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
  load(image: ImageInput): Promise<RgbImage>;
  /** What a worker thread of the encode pool can do without this object: `load` is decoding and
   *  resizing to `resize`; with `dctPatch`, encode is the DCT of those pixels on the CPU. */
  readonly offload: { resize: ResizeTo | KeepAspect | ProcessorResize; dctPatch?: number };
  /** [sum of the images' L x d], image-major, raster order within an image */
  encode(images: RgbImage[], control?: RunControl): Promise<Matrix>;
  /** the model's pooled image output ('image_embeds', else 'pooler_output'), where it has one */
  readonly pooledOutput?: string;
  /** encode, and each image's pooled embedding [images, d'] too (models with a pooledOutput) */
  encodeWithPooled?(images: RgbImage[], control?: RunControl): Promise<{ tokens: Matrix; pooled: Matrix }>;
  dispose(): Promise<void>;
}

export const DEFAULT_DCT_SIZE = 224;


/** The encoder id a codebook built from precomputed embeddings of unknown origin records. */
export const EXTERNAL_ENCODER = 'external';

/** The grammar of an encoder spec, as every surface words it (CLI help, settings, prompts). */
export const ENCODER_SPEC_HELP = "'dct', 'dct:<size>', 'dct:<size>:square', a model folder, an .onnx file or a Hugging Face id org/name[@revision] (from the local cache, else downloaded into it)";

/**
 * What differs between the kinds of encoder, in one place: how a spec names one, how it opens, and
 * what the rest of the product must know about it. A new kind is a file of its own plus a row here
 * (and its case in validateEncoderDescriptor).
 */
interface EncoderKind {
  /** whether a spec names this kind (the first kind that claims a spec opens it) */
  claims(spec: string): boolean;
  open(spec: string, backend: ComputeBackend, options: EncoderOptions): Promise<Encoder>;
  reopen(desc: EncoderDescriptor, backend: ComputeBackend, download?: DownloadControl): Promise<Encoder>;
  /** what a codebook built with it starts its trainable rows as: pixel patches when the encoder is
   *  exactly invertible ('dct'), nothing otherwise */
  atlas: 'dct' | 'none';
  /** whether what a spec or recorded id names is on this machine (a file, a folder, a model in
   *  the Hugging Face cache) or can be downloaded (a Hugging Face id, unless HF_HUB_OFFLINE) */
  available(spec: string): boolean;
  /** opening it runs a program the codebook names (an ONNX model), and may download it: Restricted
   *  Mode asks first */
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
    available: () => true,
    needsConsent: false,
  },
  onnx: {
    claims: () => true,
    open: (spec, backend, options) => openOnnxEncoder(spec, backend, options),
    reopen: async (desc, backend, download) => {
      if (!modelAvailable(desc.id)) {
        throw new UserError(`the codebook was built with encoder '${desc.id}', which is not available here`, REMEDIES.locateEncoder);
      }
      const { precision, layer } = desc.model ?? {};
      return openOnnxEncoder(desc.id, backend, { precision, ...(layer !== undefined && layer !== null && { layer }), download });
    },
    atlas: 'none',
    available: modelAvailable,
    needsConsent: true,
  },
};

/** The kind of encoder a spec names (the spec itself is checked when it is opened). */
export function encoderKindOf(spec: string): EncoderDescriptor['kind'] {
  return (Object.keys(ENCODER_KINDS) as EncoderDescriptor['kind'][]).find((kind) => ENCODER_KINDS[kind].claims(spec))!;
}

/** Opens the encoder a spec names (ENCODER_SPEC_HELP; 'dct' keeps the photo's shape with its short
 *  side at 224, ':square' stretches it). */
export async function openEncoder(spec: string, backend: ComputeBackend, options: EncoderOptions = {}): Promise<Encoder> {
  const kind = encoderKindOf(spec);
  if (kind === 'dct' && (options.precision !== undefined || options.layer !== undefined)) throw new UserError(`a precision or a layer chooses among a model's files and layers; the '${spec}' encoder has none`, { cli: 'leave out --precision and --layer', vscode: 'leave the precision and the layer unset' });
  return ENCODER_KINDS[kind].open(spec, backend, options);
}

/** A model folder or file here, or a Hugging Face id the local cache holds or (unless
 *  HF_HUB_OFFLINE) the hub can give. */
function modelAvailable(spec: string): boolean {
  if (existsSync(spec)) return true;
  const ref = parseHubId(spec);
  return ref !== null && (!hubOffline() || cachedSnapshot(ref) !== null);
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
    if (!isCount(patch, 1) || patch > Math.min(h, w)) fail(`patch ${patch} does not fit the ${h}x${w} input`);
    checkGridSize(imageGrid({ height: h, width: w }, patch as number), `${source}: encoder '${id}'`);
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
  if (desc.model !== undefined) {
    if (kind !== 'onnx') fail(`only an 'onnx' encoder names a model, found kind ${JSON.stringify(kind)} with 'model'`);
    checkModelIdentity(desc.model, fail);
  }
  return { ...(value as EncoderDescriptor), id: id as string, resize: resize as EncoderResize };
}

/** The descriptor's `model`: a Hugging Face id and 40-hex commit where given, a file, 1 to 16
 *  sha256s, a known precision and a whole layer or null. */
function checkModelIdentity(value: unknown, fail: (problem: string) => never): void {
  const m = value as Partial<Record<keyof ModelIdentity, unknown>> | null;
  const hex = (v: unknown, n: number) => typeof v === 'string' && new RegExp(`^[0-9a-f]{${n}}$`).test(v);
  if (typeof m !== 'object' || m === null || Array.isArray(m)) fail(`'model' must be an object, found ${JSON.stringify(m)}`);
  const shas = m!.sha256 as Record<string, unknown> | null;
  const shasOk = typeof shas === 'object' && shas !== null && !Array.isArray(shas) && Object.keys(shas).length >= 1 && Object.keys(shas).length <= 16 && Object.values(shas).every((v) => hex(v, 64));
  if ((m!.repo !== undefined || m!.revision !== undefined) && (typeof m!.repo !== 'string' || !parseHubId(m!.repo) || !hex(m!.revision, 40))) {
    fail(`'model' must name a Hugging Face id 'org/name' and its 40-hex commit together, found ${JSON.stringify(m!.repo)} at ${JSON.stringify(m!.revision)}`);
  }
  if (typeof m!.file !== 'string' || m!.file.length === 0) fail(`'model.file' must be a file name, found ${JSON.stringify(m!.file)}`);
  if (!shasOk) fail(`'model.sha256' must map its files to sha256 hex digests, found ${JSON.stringify(shas)}`);
  if (typeof m!.precision !== 'string' || !Object.hasOwn(PRECISIONS, m!.precision)) fail(`'model.precision' must be one of ${Object.keys(PRECISIONS).join(', ')}, found ${JSON.stringify(m!.precision)}`);
  if (m!.layer !== null && !Number.isSafeInteger(m!.layer)) fail(`'model.layer' must be a whole number or null, found ${JSON.stringify(m!.layer)}`);
}

/** 'google/siglip-base-patch16-224@1a2b3c4d5e6f, onnx/vision_model.onnx (fp32), sha256 0f1e2d3c4b5a' */
function modelName(desc: EncoderDescriptor): string {
  const m = desc.model!;
  const where = m.repo ? `${m.repo}@${m.revision!.slice(0, 12)}` : desc.id;
  const layer = m.layer === null ? '' : `, layer ${m.layer}`;
  return `${where}, ${m.file} (${m.precision}${layer}), sha256 ${Object.values(m.sha256).map((h) => h.slice(0, 12)).join('+')}`;
}

/**
 * Throws unless `actual` is the model `recorded` names: the same weights (every file's sha256) and
 * the same layer. A codebook's codes mean nothing for another model's embeddings, even at the same
 * d; descriptors without a model identity (older files, the DCT) are not compared.
 */
export function checkSameModel(recorded: EncoderDescriptor, actual: EncoderDescriptor): void {
  const [a, b] = [recorded.model, actual.model];
  if (!a || !b) return;
  const same = a.layer === b.layer && JSON.stringify(Object.entries(a.sha256).sort()) === JSON.stringify(Object.entries(b.sha256).sort());
  if (!same) {
    throw new UserError(`the codebook was built with ${modelName(recorded)}, but the encoder given is ${modelName(actual)}: another model's embeddings, its codes would be meaningless`, {
      cli: 'use the model the codebook names (its folder or Hugging Face id)',
      vscode: 'choose the model the codebook names',
    });
  }
}

function sameShape(a: EncoderDescriptor, b: EncoderDescriptor): boolean {
  return a.d === b.d && a.patch === b.patch && a.inputSize[0] === b.inputSize[0] && a.inputSize[1] === b.inputSize[1] && a.resize === b.resize;
}

/** Reopens the encoder a codebook was built with (by its kind), and checks it still produces what
 *  it did. */
export async function openEncoderFromDescriptor(desc: EncoderDescriptor, backend: ComputeBackend, download?: DownloadControl): Promise<Encoder> {
  const encoder = await ENCODER_KINDS[desc.kind].reopen(desc, backend, download);
  if (!sameShape(encoder.descriptor, desc)) {
    const show = (e: EncoderDescriptor) => `d=${e.d}, patch ${e.patch}, input ${e.inputSize.join('x')} (${e.resize})`;
    await encoder.dispose();
    throw new UserError(`encoder '${desc.id}' now gives ${show(encoder.descriptor)} but the codebook was built with ${show(desc)}`);
  }
  try {
    checkSameModel(desc, encoder.descriptor);
  } catch (err) {
    await encoder.dispose();
    throw err;
  }
  return encoder;
}

/** The encoder a codebook was built with, or the one the user names instead (`override`);
 *  `fallback`: the precision and layer for an override when the codebook records none (built from
 *  external embeddings, or before they were recorded). */
export async function openCodebookEncoder(cb: { meta: { encoder: EncoderDescriptor } }, override: string | undefined,
                                          backend: ComputeBackend, download?: DownloadControl, fallback: Pick<EncoderOptions, 'precision' | 'layer'> = {}): Promise<Encoder> {
  // Another place for the same model: opened at the precision and layer the codebook records.
  const { precision, layer } = cb.meta.encoder.model ?? fallback;
  if (override) return openEncoder(override, backend, encoderKindOf(override) === 'onnx' ? { precision, ...(typeof layer === 'number' && { layer }), download } : {});
  if (cb.meta.encoder.id === EXTERNAL_ENCODER) {
    throw new UserError('this codebook was built from external embeddings', REMEDIES.nameEncoder);
  }
  return openEncoderFromDescriptor(cb.meta.encoder, backend, download);
}

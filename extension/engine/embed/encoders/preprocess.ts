// The image preprocessing of a Hugging Face vision model, read from its preprocessor_config.json
// as transformers' image processor classes read it (their defaults for the keys a config leaves
// out), and applied to decoded images: resize and centre crop (pil-resize.ts, run by loadImage),
// then pixel_values = (byte * rescale - mean[c]) / std[c], batched as [B, 3, H, W].
import { UserError } from '../../../../common/errors.js';
import { readJsonFile } from '../../io/files.js';
import type { RgbImage, Resample } from '../image.js';
import type { ProcessorSize } from './pil-resize.js';
import { checkInputSize, MAX_CONFIG_BYTES } from '../../core/limits.js';

export interface Preprocess {
  mean: number[];
  std: number[];
  /** multiplier applied to 8-bit pixel values (1/255 maps them to [0, 1]) */
  rescale: number;
  resample: Resample;
  /** the processor's resize; absent in descriptors written before it was recorded (a stretch to
   *  the input size) */
  resize?: ProcessorSize;
  /** [height, width] of its centre crop, after the resize */
  crop?: [number, number];
}

export interface PreprocessorConfig {
  /** [height, width] of the model input the processor produces, or null when it names none */
  size: [number, number] | null;
  preprocess: Preprocess;
}

const HALF = [0.5, 0.5, 0.5];
const OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073];
const OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711];

/** What a processor class does, and its defaults for the keys a config leaves out (transformers'
 *  classes): whether an integer `size` is a square or a shortest edge, and whether it crops. */
interface ProcessorKind {
  intSize: 'square' | 'shortest';
  crops: boolean;
  resample: number;
  mean: number[];
  std: number[];
  size: unknown;
  cropSize?: number;
}
const SIGLIP: ProcessorKind = { intSize: 'square', crops: false, resample: 3, mean: HALF, std: HALF, size: { height: 224, width: 224 } };
const VIT: ProcessorKind = { ...SIGLIP, resample: 2 };
const CLIP: ProcessorKind = { intSize: 'shortest', crops: true, resample: 3, mean: OPENAI_CLIP_MEAN, std: OPENAI_CLIP_STD, size: { shortest_edge: 224 }, cropSize: 224 };
/** The image processors implemented (SigLIP and fixed-resolution SigLIP2: Siglip; CLIP and
 *  OpenCLIP: CLIP; DINOv2: Bit), their fast twins (the same steps through torchvision) and the
 *  older feature extractors; a config naming none reads with SigLIP's defaults and crops if asked. */
const PROCESSORS: Record<string, ProcessorKind> = {
  SiglipImageProcessor: SIGLIP, SiglipImageProcessorFast: SIGLIP,
  CLIPImageProcessor: CLIP, CLIPImageProcessorFast: CLIP, CLIPFeatureExtractor: CLIP,
  BitImageProcessor: CLIP, BitImageProcessorFast: CLIP,
  ViTImageProcessor: VIT, ViTImageProcessorFast: VIT, ViTFeatureExtractor: VIT,
};
const UNNAMED: ProcessorKind = { ...SIGLIP, crops: true };

/** What SigLIP's image processor does when its config says nothing: [0,1] pixels -> [-1, 1]. */
export const DEFAULT_PREPROCESS: Preprocess = { mean: HALF, std: HALF, rescale: 1 / 255, resample: 'bicubic' };

/** PIL resampling filters by their integer value; BOX (4) and HAMMING (5) are not implemented. */
const PIL_RESAMPLE: Record<number, Resample> = { 0: 'nearest', 1: 'lanczos3', 2: 'bilinear', 3: 'bicubic' };

function isPositiveInt(n: unknown): n is number {
  return Number.isInteger(n) && (n as number) > 0;
}

function isScale(n: unknown): n is number {
  return typeof n === 'number' && Number.isFinite(n) && n > 0;
}

const RESAMPLES: readonly Resample[] = ['nearest', 'bilinear', 'bicubic', 'lanczos3'];

function isPair(v: unknown): v is [number, number] {
  return Array.isArray(v) && v.length === 2 && v.every(isPositiveInt);
}

function isProcessorSize(v: unknown): boolean {
  const s = v as Record<string, unknown> | null;
  return typeof s === 'object' && s !== null && (Object.keys(s).length === 1 ? isPositiveInt(s.shortestEdge) : isPositiveInt(s.height) && isPositiveInt(s.width) && Object.keys(s).length === 2);
}

/** Checks a Preprocess as recorded in a codebook's encoder descriptor (written by this program,
 *  or edited by hand): three finite means, three finite non-zero stds, a positive rescale, a
 *  known resampling kernel, and a resize and crop of whole pixels where recorded. */
export function checkPreprocess(value: unknown, source: string): Preprocess {
  const p = value as Partial<Record<keyof Preprocess, unknown>> | null;
  const triple3 = (v: unknown) => Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x));
  let problem: string | undefined;
  if (typeof p !== 'object' || p === null) problem = 'is not an object';
  else if (!triple3(p.mean)) problem = `'mean' must be 3 finite numbers, found ${JSON.stringify(p.mean)}`;
  else if (!triple3(p.std) || (p.std as number[]).includes(0)) problem = `'std' must be 3 finite non-zero numbers, found ${JSON.stringify(p.std)}`;
  else if (!isScale(p.rescale)) problem = `'rescale' must be a positive number, found ${JSON.stringify(p.rescale)}`;
  else if (!RESAMPLES.includes(p.resample as Resample)) problem = `'resample' must be one of ${RESAMPLES.join(', ')}, found ${JSON.stringify(p.resample)}`;
  else if (p.resize !== undefined && !isProcessorSize(p.resize)) problem = `'resize' must be {height, width} or {shortestEdge}, found ${JSON.stringify(p.resize)}`;
  else if (p.crop !== undefined && !isPair(p.crop)) problem = `'crop' must be [height, width], found ${JSON.stringify(p.crop)}`;
  if (problem) throw new UserError(`${source}: the encoder's preprocessing ${problem}`);
  return value as Preprocess;
}

function triple(file: string, key: string, value: unknown): number[] {
  const v = typeof value === 'number' ? [value, value, value] : value;
  if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    throw new UserError(`${file}: '${key}' must be 3 numbers (one per RGB channel), found ${JSON.stringify(value)}`);
  }
  return v as number[];
}

/** The processor's `size` (transformers' get_size_dict: an integer is a square or a shortest
 *  edge, by the processor's class). */
function parseResize(file: string, raw: Record<string, unknown>, kind: ProcessorKind): ProcessorSize | null {
  if (raw.do_resize === false) return null;
  const size = raw.size ?? kind.size;
  const s = size as Record<string, unknown>;
  let parsed: ProcessorSize;
  if (isPositiveInt(size)) parsed = kind.intSize === 'square' ? { height: size, width: size } : { shortestEdge: size };
  else if (isPositiveInt(s?.height) && isPositiveInt(s?.width)) parsed = { height: s.height, width: s.width };
  else if (isPositiveInt(s?.shortest_edge) && s.longest_edge === undefined) parsed = { shortestEdge: s.shortest_edge };
  else throw new UserError(`${file}: 'size' must be {height, width}, {shortest_edge} or a number, found ${JSON.stringify(size)}`);
  const side = 'height' in parsed ? [parsed.height, parsed.width] : [parsed.shortestEdge, parsed.shortestEdge];
  checkInputSize(side, file);
  return parsed;
}

/** The centre crop [height, width], when the processor crops and the config asks for it. */
function parseCrop(file: string, raw: Record<string, unknown>, kind: ProcessorKind): [number, number] | null {
  if (!kind.crops || raw.do_center_crop === false || (raw.do_center_crop === undefined && kind.cropSize === undefined)) return null;
  const crop = raw.crop_size ?? kind.cropSize;
  const c = crop as Record<string, unknown>;
  let parsed: [number, number];
  if (isPositiveInt(crop)) parsed = [crop, crop];
  else if (isPositiveInt(c?.height) && isPositiveInt(c?.width)) parsed = [c.height, c.width];
  else throw new UserError(`${file}: 'crop_size' must be {height, width} or a number, found ${JSON.stringify(crop)}`);
  checkInputSize(parsed, file);
  return parsed;
}

/** The processor class the config names, if this product implements it. */
function processorKind(file: string, raw: Record<string, unknown>): ProcessorKind {
  const name = raw.image_processor_type ?? raw.feature_extractor_type;
  if (name === undefined) return UNNAMED;
  const kind = typeof name === 'string' && Object.hasOwn(PROCESSORS, name) ? PROCESSORS[name] : undefined;
  if (!kind) {
    throw new UserError(`${file}: image processor ${JSON.stringify(name)} is not implemented (supported: ${Object.keys(PROCESSORS).join(', ')}; SigLIP2's variable-resolution NaFlex is not)`);
  }
  return kind;
}

function parseResample(file: string, raw: Record<string, unknown>, kind: ProcessorKind): Resample {
  const r = PIL_RESAMPLE[(raw.resample ?? kind.resample) as number];
  if (!r) throw new UserError(`${file}: 'resample' must be a PIL filter number 0-3 (0 nearest, 1 lanczos, 2 bilinear, 3 bicubic; 4 box and 5 hamming are not implemented), found ${JSON.stringify(raw.resample)}`);
  return r;
}

/** Largest |pixel value| the normalization may give: float16's largest, as float16 exports get
 *  their pixel_values as halves (past it they would be infinities, and the model's output NaN). */
const MAX_PIXEL_VALUE = 65504;

/** Throws unless bytes 0..255 normalize to finite values within MAX_PIXEL_VALUE. */
function checkPixelRange(file: string, mean: number[], std: number[], rescale: number): void {
  const largest = Math.max(...mean.map((m, c) => Math.max(Math.abs(m / std[c]), Math.abs((255 * rescale - m) / std[c]))));
  if (!(largest <= MAX_PIXEL_VALUE)) {
    throw new UserError(`${file}: 'image_mean' ${JSON.stringify(mean)}, 'image_std' ${JSON.stringify(std)} and 'rescale_factor' ${rescale} normalize pixels to values up to ${largest} in magnitude, beyond the ${MAX_PIXEL_VALUE} a model input holds (a processor's values lie within a few units of 0)`);
  }
}

export async function readPreprocessorConfig(file: string): Promise<PreprocessorConfig> {
  const raw = (await readJsonFile(file, 'preprocessor config', MAX_CONFIG_BYTES)) as Record<string, unknown>;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UserError(`${file}: preprocessor config must be a JSON object`);
  const kind = processorKind(file, raw);
  let rescale = 1;
  if (raw.do_rescale !== false) {
    rescale = raw.rescale_factor === undefined ? 1 / 255 : (raw.rescale_factor as number);
    if (!isScale(rescale)) throw new UserError(`${file}: 'rescale_factor' must be a positive number, found ${JSON.stringify(raw.rescale_factor)}`);
  }
  const normalize = raw.do_normalize !== false;
  const mean = normalize ? triple(file, 'image_mean', raw.image_mean ?? kind.mean) : [0, 0, 0];
  const std = normalize ? triple(file, 'image_std', raw.image_std ?? kind.std) : [1, 1, 1];
  if (std.some((s) => s === 0)) throw new UserError(`${file}: 'image_std' must not contain 0`);
  checkPixelRange(file, mean, std, rescale);
  const resize = parseResize(file, raw, kind);
  const crop = parseCrop(file, raw, kind);
  if (resize && 'shortestEdge' in resize && !crop) {
    throw new UserError(`${file}: 'size' {shortest_edge: ${resize.shortestEdge}} without a centre crop gives every photo its own input size; a codebook needs one (set do_center_crop and crop_size)`);
  }
  const size = crop ?? (resize && 'height' in resize ? ([resize.height, resize.width] as [number, number]) : null);
  const preprocess: Preprocess = { mean, std, rescale, resample: parseResample(file, raw, kind), ...(resize && { resize }), ...(crop && { crop }) };
  return { size, preprocess };
}

/** Decoded images (all of one size) -> the model's pixel_values, [count x 3 x H x W]; slots past
 *  the images given stay 0 (padding for models with a fixed batch size). */
export function toPixelValues(images: RgbImage[], p: Preprocess, count = images.length): Float32Array {
  const { width, height } = images[0];
  const plane = width * height;
  const out = new Float32Array(count * 3 * plane);
  images.forEach((img, b) => {
    for (let c = 0; c < 3; c++) {
      // RgbImage holds byte / 255; the processor works on bytes.
      const scale = (255 * p.rescale) / p.std[c];
      const shift = p.mean[c] / p.std[c];
      const src = img.data.subarray(c * plane, (c + 1) * plane);
      const dst = (b * 3 + c) * plane;
      for (let i = 0; i < plane; i++) out[dst + i] = src[i] * scale - shift;
    }
  });
  return out;
}

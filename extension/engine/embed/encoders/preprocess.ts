// The image preprocessing of a Hugging Face vision model, read from its preprocessor_config.json,
// and applied to decoded images: resize to the model's size, then pixel_values =
// (byte * rescale - mean[c]) / std[c], batched as [B, 3, H, W].
import { UserError } from '../../../../common/errors.js';
import { readJsonFile } from '../../io/files.js';
import type { RgbImage, Resample } from '../image.js';
import { checkInputSize, MAX_CONFIG_BYTES } from '../../core/limits.js';

export interface Preprocess {
  mean: number[];
  std: number[];
  /** multiplier applied to 8-bit pixel values (1/255 maps them to [0, 1]) */
  rescale: number;
  resample: Resample;
}

export interface PreprocessorConfig {
  /** [height, width] the config asks for, or null when it names none */
  size: [number, number] | null;
  preprocess: Preprocess;
}

/** What SigLIP's image processor does when its config says nothing: [0,1] pixels -> [-1, 1]. */
export const DEFAULT_PREPROCESS: Preprocess = { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], rescale: 1 / 255, resample: 'bicubic' };

/** PIL resampling filters by their integer value. BOX (4) and HAMMING (5) have no libvips
 *  counterpart; bilinear is the nearest in character (small, non-negative support). */
const PIL_RESAMPLE: Record<number, Resample> = { 0: 'nearest', 1: 'lanczos3', 2: 'bilinear', 3: 'bicubic', 4: 'bilinear', 5: 'bilinear' };

function isPositiveInt(n: unknown): n is number {
  return Number.isInteger(n) && (n as number) > 0;
}

function isScale(n: unknown): n is number {
  return typeof n === 'number' && Number.isFinite(n) && n > 0;
}

const RESAMPLES: readonly Resample[] = ['nearest', 'bilinear', 'bicubic', 'lanczos3'];

/** Checks a Preprocess as recorded in a codebook's encoder descriptor (written by this program,
 *  or edited by hand): three finite means, three finite non-zero stds, a positive rescale and a
 *  known resampling kernel. */
export function checkPreprocess(value: unknown, source: string): Preprocess {
  const p = value as Partial<Record<keyof Preprocess, unknown>> | null;
  const triple3 = (v: unknown) => Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x));
  let problem: string | undefined;
  if (typeof p !== 'object' || p === null) problem = 'is not an object';
  else if (!triple3(p.mean)) problem = `'mean' must be 3 finite numbers, found ${JSON.stringify(p.mean)}`;
  else if (!triple3(p.std) || (p.std as number[]).includes(0)) problem = `'std' must be 3 finite non-zero numbers, found ${JSON.stringify(p.std)}`;
  else if (!isScale(p.rescale)) problem = `'rescale' must be a positive number, found ${JSON.stringify(p.rescale)}`;
  else if (!RESAMPLES.includes(p.resample as Resample)) problem = `'resample' must be one of ${RESAMPLES.join(', ')}, found ${JSON.stringify(p.resample)}`;
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

function parseSize(file: string, raw: Record<string, unknown>): [number, number] | null {
  if (raw.do_resize === false) return null;
  const size = raw.size;
  if (size === undefined) return null;
  const s = size as Record<string, unknown>;
  let parsed: [number, number];
  if (isPositiveInt(size)) parsed = [size, size];
  else if (isPositiveInt(s?.height) && isPositiveInt(s?.width)) parsed = [s.height, s.width];
  // CLIP-style configs give a shortest edge (then a centre crop); the codebook needs one fixed
  // grid, so the image is resized straight to the square instead of cropped.
  else if (isPositiveInt(s?.shortest_edge)) parsed = [s.shortest_edge, s.shortest_edge];
  else throw new UserError(`${file}: 'size' must be {height, width}, {shortest_edge} or a number, found ${JSON.stringify(size)}`);
  checkInputSize(parsed, file);
  return parsed;
}

export async function readPreprocessorConfig(file: string): Promise<PreprocessorConfig> {
  const raw = (await readJsonFile(file, 'preprocessor config', MAX_CONFIG_BYTES)) as Record<string, unknown>;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UserError(`${file}: preprocessor config must be a JSON object`);

  let resample = DEFAULT_PREPROCESS.resample;
  if (raw.resample !== undefined) {
    const r = PIL_RESAMPLE[raw.resample as number];
    if (!r) throw new UserError(`${file}: 'resample' must be a PIL filter number 0-5, found ${JSON.stringify(raw.resample)}`);
    resample = r;
  }
  let rescale = 1;
  if (raw.do_rescale !== false) {
    rescale = raw.rescale_factor === undefined ? 1 / 255 : (raw.rescale_factor as number);
    if (!isScale(rescale)) throw new UserError(`${file}: 'rescale_factor' must be a positive number, found ${JSON.stringify(raw.rescale_factor)}`);
  }
  const normalize = raw.do_normalize !== false;
  const mean = normalize ? triple(file, 'image_mean', raw.image_mean ?? DEFAULT_PREPROCESS.mean) : [0, 0, 0];
  const std = normalize ? triple(file, 'image_std', raw.image_std ?? DEFAULT_PREPROCESS.std) : [1, 1, 1];
  if (std.some((s) => s === 0)) throw new UserError(`${file}: 'image_std' must not contain 0`);
  return { size: parseSize(file, raw), preprocess: { mean, std, rescale, resample } };
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

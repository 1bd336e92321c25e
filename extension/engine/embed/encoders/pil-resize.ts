// The geometry of a Hugging Face image processor, as its slow (PIL) implementation computes it, on
// the decoded 8-bit image: resize with PIL's own resampling (Pillow's Resample.c: a separable
// filter whose support is scaled by the reduction, so downscaling is antialiased; coefficients in
// 22-bit fixed point; the horizontal pass first, rounded to 8 bits, then the vertical pass), then
// the centre crop (top = (h - ch) // 2, left = (w - cw) // 2, zeros where the crop overhangs).
// libvips' kernels differ from PIL's, so the processor's resampling is done here, pixel for pixel.
import type { Resample } from '../image.js';
import { UserError } from '../../../../common/errors.js';
import { MAX_RESIZED_PIXELS } from '../../core/limits.js';

/** The processor's `size` after parsing: exact, or the short side with the long side following. */
export type ProcessorSize = { height: number; width: number } | { shortestEdge: number };

/** How an encoder's processor brings a photo to the model's input (see the file comment). */
export interface ProcessorResize {
  processor: {
    /** null: do_resize is off */
    size: ProcessorSize | null;
    /** [height, width] of the centre crop, or null: no crop */
    crop: [number, number] | null;
    resample: Resample;
  };
}

/** An interleaved 8-bit RGB image. */
export interface Rgb8 {
  bytes: Uint8Array;
  width: number;
  height: number;
}

interface Filter {
  support: number;
  weight(x: number): number;
}

const sinc = (x: number): number => (x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x));

/** Pillow's filters (bicubic with a = -0.5); nearest is handled apart, as Pillow does. */
const FILTERS: Record<Exclude<Resample, 'nearest'>, Filter> = {
  bilinear: { support: 1, weight: (x) => Math.max(0, 1 - Math.abs(x)) },
  bicubic: {
    support: 2,
    weight: (t) => {
      const x = Math.abs(t);
      const a = -0.5;
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      return x < 2 ? (((x - 5) * x + 8) * x - 4) * a : 0;
    },
  },
  lanczos3: { support: 3, weight: (x) => (x > -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
};

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;

/** Per output pixel: the first input pixel, how many it reads, and their fixed-point weights
 *  (Pillow's precompute_coeffs + normalize_coeffs_8bpc). */
function coefficients(inSize: number, outSize: number, filter: Filter): { first: Int32Array; count: Int32Array; ksize: number; k: Float64Array } {
  const scale = inSize / outSize;
  const filterScale = Math.max(1, scale);
  const support = filter.support * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const k = new Float64Array(outSize * ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let sum = 0;
    const ss = 1 / filterScale;
    for (let x = 0; x < xmax; x++) {
      const w = filter.weight((x + xmin - center + 0.5) * ss);
      k[xx * ksize + x] = w;
      sum += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = sum === 0 ? k[xx * ksize + x]! : k[xx * ksize + x]! / sum;
      k[xx * ksize + x] = Math.trunc(w < 0 ? -0.5 + w * ONE : 0.5 + w * ONE);
    }
    first[xx] = xmin;
    count[xx] = xmax;
  }
  return { first, count, ksize, k };
}

const clip8 = (ss: number): number => Math.min(255, Math.max(0, Math.floor(ss / ONE)));

/** One pass along x (`horizontal`) or y, Pillow's ImagingResampleHorizontal/Vertical_8bpc: each
 *  output pixel the weighted sum of `count` input pixels `step` bytes apart, the 3 channels at once. */
function pass(src: Rgb8, outW: number, outH: number, filter: Filter, horizontal: boolean): Rgb8 {
  const { first, count, ksize, k } = coefficients(horizontal ? src.width : src.height, horizontal ? outW : outH, filter);
  const out = new Uint8Array(outW * outH * 3);
  const bytes = src.bytes;
  const step = horizontal ? 3 : src.width * 3;
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) {
      const o = horizontal ? x : y;
      let at = horizontal ? (y * src.width + first[o]!) * 3 : (first[o]! * src.width + x) * 3;
      let r = ONE / 2;
      let g = r;
      let b = r;
      for (let i = 0, w = o * ksize, n = count[o]!; i < n; i++, w++, at += step) {
        const kw = k[w]!;
        r += bytes[at]! * kw;
        g += bytes[at + 1]! * kw;
        b += bytes[at + 2]! * kw;
      }
      const to = (y * outW + x) * 3;
      out[to] = clip8(r);
      out[to + 1] = clip8(g);
      out[to + 2] = clip8(b);
    }
  }
  return { bytes: out, width: outW, height: outH };
}

/** Pillow's NEAREST resize (an affine scale: the input pixel under each output pixel's centre). */
function nearest(src: Rgb8, outW: number, outH: number): Rgb8 {
  const index = (outSize: number, inSize: number): Int32Array => {
    const a = inSize / outSize;
    const at = new Int32Array(outSize);
    let pos = a * 0.5;
    for (let i = 0; i < outSize; i++, pos += a) at[i] = Math.min(inSize - 1, Math.floor(pos));
    return at;
  };
  const xs = index(outW, src.width);
  const ys = index(outH, src.height);
  const out = new Uint8Array(outW * outH * 3);
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) out.set(src.bytes.subarray((ys[y]! * src.width + xs[x]!) * 3, (ys[y]! * src.width + xs[x]!) * 3 + 3), (y * outW + x) * 3);
  }
  return { bytes: out, width: outW, height: outH };
}

/** `Image.resize((width, height), resample)` of an RGB image, as Pillow computes it. */
export function pilResize(src: Rgb8, width: number, height: number, resample: Resample): Rgb8 {
  if (width === src.width && height === src.height) return src;
  if (resample === 'nearest') return nearest(src, width, height);
  const filter = FILTERS[resample];
  const wide = width === src.width ? src : pass(src, width, src.height, filter, true);
  return height === src.height ? wide : pass(wide, width, height, filter, false);
}

/** The processor's output size for a photo of width x height, before the crop: {height, width}
 *  exactly, or the short side S and the long side int(S * long / short). */
export function resizedSize(width: number, height: number, size: ProcessorSize): { width: number; height: number } {
  if ('height' in size) return size;
  const s = size.shortestEdge;
  const long = Math.trunc((s * Math.max(width, height)) / Math.min(width, height));
  return width <= height ? { width: s, height: long } : { width: long, height: s };
}

/** transformers' center_crop: top = (h - ch) // 2, left = (w - cw) // 2; where the crop is larger
 *  than the image, the image is centred on zeros. */
export function centerCrop(src: Rgb8, ch: number, cw: number): Rgb8 {
  const top = Math.floor((src.height - ch) / 2);
  const left = Math.floor((src.width - cw) / 2);
  const out = new Uint8Array(cw * ch * 3);
  for (let y = 0; y < ch; y++) {
    const sy = y + top;
    if (sy < 0 || sy >= src.height) continue;
    const x0 = Math.max(0, -left);
    const x1 = Math.min(cw, src.width - left);
    if (x1 > x0) out.set(src.bytes.subarray((sy * src.width + x0 + left) * 3, (sy * src.width + x1 + left) * 3), (y * cw + x0) * 3);
  }
  return { bytes: out, width: cw, height: ch };
}

/** The processor's resize and crop of a decoded image. */
export function processorResize(src: Rgb8, spec: ProcessorResize): Rgb8 {
  const { size, crop, resample } = spec.processor;
  const target = size ? resizedSize(src.width, src.height, size) : src;
  if (target.width * target.height > MAX_RESIZED_PIXELS) {
    throw new UserError(`the model's image processor would resize this ${src.width}x${src.height} photo to ${target.width}x${target.height} before its centre crop, over the limit of ${MAX_RESIZED_PIXELS} pixels`, { cli: 'crop the photo to a less extreme aspect ratio', vscode: 'crop the photo to a less extreme aspect ratio' });
  }
  const resized = pilResize(src, target.width, target.height, resample);
  return crop ? centerCrop(resized, crop[0], crop[1]) : resized;
}

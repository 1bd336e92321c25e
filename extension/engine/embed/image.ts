// Image files <-> planar float RGB, through sharp (libvips). Decoding applies the EXIF orientation,
// takes the first frame of animated/multi-page files, expands grey to RGB and flattens alpha onto
// WHITE (the usual choice in preprocessing pipelines: a transparent logo or cut-out reads as
// "on paper", not "on black"). Resizing either stretches to the exact size asked (ResizeTo: 'fill',
// as the Hugging Face image processors do with do_resize and a {height, width} size), or keeps the
// photo's shape (KeepAspect: the short side to a set size, the long side following the photo), or
// only shrinks it to fit a box (FitWithin: for showing a photo as it is), or resizes and crops it
// as a model's image processor does, with PIL's filters (ProcessorResize: encoders/pil-resize.ts). cropPatch, upscale and
// resample work on engine images in memory, for what the panels and the Lab show.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type Sharp from 'sharp';
import { writeFileAtomic } from '../io/atomic-write.js';
import { onFile, requireRegularFile } from '../io/files.js';
import { MAX_IMAGE_PIXELS } from '../core/limits.js';
import { UserError } from '../../../common/errors.js';
import { processorResize, type ProcessorResize } from './encoders/pil-resize.js';

export interface RgbImage {
  /** planar [3, H, W], values in [0, 1] */
  data: Float32Array;
  width: number;
  height: number;
}

export type Resample = 'nearest' | 'bilinear' | 'bicubic' | 'lanczos3';

/** Stretched to exactly width x height, whatever the photo's shape. */
export interface ResizeTo {
  width: number;
  height: number;
  resample?: Resample;
}

/** Scaled down (never up) to fit a square of this side, keeping the aspect ratio: for showing
 *  a photo as it is, where encoders resize to their exact input size. With `aspect` (width /
 *  height), first centre-cropped to that ratio, as 'cover' resizing crops: the part of the photo
 *  a keep-aspect encoder saw. */
export interface FitWithin {
  within: number;
  aspect?: number;
}

/** The photo's shape kept: see keepAspectSize. Never stretched: the few pixels the rounding to
 *  `multiple` (and the cap) leave over are cropped from the centre. */
export interface KeepAspect {
  shortSide: number;
  /** both sides are multiples of this (an encoder's patch) */
  multiple: number;
  /** the long side's cap: a longer photo is centre-cropped to it */
  maxLongSide: number;
  resample?: Resample;
}

/** The size a photo of width x height gets under `spec`: the short side `spec.shortSide`, the long
 *  side the multiple of `spec.multiple` nearest to shortSide x (long / short), at least shortSide
 *  and at most `spec.maxLongSide`. A 640 x 400 photo at shortSide 224 is 352 x 224. */
export function keepAspectSize(width: number, height: number, spec: KeepAspect): { width: number; height: number } {
  const { shortSide, multiple, maxLongSide } = spec;
  const ok = [shortSide, multiple, maxLongSide].every((n) => Number.isInteger(n) && n > 0) && shortSide % multiple === 0 && maxLongSide % multiple === 0 && maxLongSide >= shortSide;
  if (!ok) throw new Error(`keepAspectSize: bad spec ${JSON.stringify(spec)}`);
  const ratio = Math.max(width, height) / Math.min(width, height);
  const long = Math.min(maxLongSide, Math.max(shortSide, Math.round((shortSide * ratio) / multiple) * multiple));
  return width >= height ? { width: long, height: shortSide } : { width: shortSide, height: long };
}

export const IMAGE_EXTENSIONS = ['jpg', 'jpeg', 'png', 'webp', 'tif', 'tiff', 'gif'];

const KERNELS: Record<Resample, keyof Sharp.KernelEnum> = {
  nearest: 'nearest',
  bilinear: 'linear',
  bicubic: 'cubic',
  lanczos3: 'lanczos3',
};

let sharpModule: typeof Sharp | null = null;

/** sharp (libvips), loaded on first use so that importing the engine loads no native library
 *  (the VS Code extension host imports it at activation; see native-gpu/onnxruntime.ts). */
function sharp(): typeof Sharp {
  // require where it is needed: esbuild leaves an external require() in place
  sharpModule ??= require('sharp') as typeof Sharp;
  return sharpModule;
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0].trim();
}

/** An image already in memory: a member of a data-set shard, named by its key. */
export interface EncodedImage {
  name: string;
  bytes: Uint8Array;
}

/** What the readers take: an image file's path, or an image's bytes. */
export type ImageInput = string | EncodedImage;

/** The name an image goes by in results and messages: its path, or its key in a shard. */
export function inputName(image: ImageInput): string {
  return typeof image === 'string' ? image : image.name;
}

/** sharp over a file (checked to be a regular file first) or over bytes in memory. */
async function sharpOf(image: ImageInput, options: Sharp.SharpOptions): Promise<Sharp.Sharp> {
  if (typeof image !== 'string') {
    try {
      return sharp()(image.bytes, options);
    } catch (err) {
      // sharp refuses some bytes (an empty member) as it opens them, before any decode
      throw new UserError(`${image.name}: cannot read image (${firstLine(err)})`);
    }
  }
  // libvips opens the path itself: a FIFO would block it forever, a folder fails obscurely.
  await requireRegularFile(image, 'an image file');
  return sharp()(image, options);
}

/** The decoding pipeline of an image, as every reader starts it: EXIF orientation applied,
 *  alpha flattened onto white, sRGB. `sequential` lets libvips stream the decode (it reads each
 *  row once), for pipelines that only shrink. */
async function openImage(image: ImageInput, sequential = false): Promise<Sharp.Sharp> {
  // The pixel limit is checked from the header, before decoding: a small file can announce a
  // decompression bomb.
  return (await sharpOf(image, { limitInputPixels: MAX_IMAGE_PIXELS, failOn: 'error', sequentialRead: sequential }))
    .rotate() // apply the EXIF orientation, then drop the tag
    .flatten({ background: '#ffffff' })
    .toColourspace('srgb');
}

/** Runs the decode of `file`; libvips' failures become one UserError line. */
async function decoded<T>(file: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    const reason = firstLine(err);
    if (/pixel limit/i.test(reason)) {
      throw new UserError(`${file}: image is larger than the ${Math.round(MAX_IMAGE_PIXELS / 1e6)}-megapixel limit; downscale it first`);
    }
    throw new UserError(`${file}: cannot read image (${reason})`);
  }
}

/** [width, height] of an image file as shown (EXIF orientation applied), from its header. */
export async function imageSize(image: ImageInput): Promise<{ width: number; height: number }> {
  const reader = await sharpOf(image, { limitInputPixels: MAX_IMAGE_PIXELS, failOn: 'error' });
  const { autoOrient } = await decoded(inputName(image), () => reader.metadata());
  return autoOrient;
}

// long: one decode pipeline with its five kinds of resize
export async function loadImage(image: ImageInput, size?: ResizeTo | FitWithin | KeepAspect | ProcessorResize): Promise<RgbImage> {
  const file = inputName(image);
  if (size && 'width' in size && !(Number.isInteger(size.width) && Number.isInteger(size.height) && size.width > 0 && size.height > 0)) {
    throw new Error(`loadImage: bad target size ${size.width}x${size.height}`);
  }
  if (size && 'within' in size && !(Number.isInteger(size.within) && size.within > 0 && (size.aspect === undefined || size.aspect > 0))) {
    throw new Error(`loadImage: bad target size ${size.within} (aspect ${size.aspect})`);
  }
  let pipeline = await openImage(image);
  if (size && 'within' in size && size.aspect) {
    const { width, height } = await imageSize(image);
    // the largest box of that ratio inside the photo, then no larger than `within`
    const crop = { width: Math.min(width, height * size.aspect), height: Math.min(height, width / size.aspect) };
    const scale = Math.min(1, size.within / Math.max(crop.width, crop.height));
    const target = { width: Math.max(1, Math.round(crop.width * scale)), height: Math.max(1, Math.round(crop.height * scale)) };
    pipeline = pipeline.resize(target.width, target.height, { fit: 'cover', position: 'centre', kernel: 'lanczos3' });
  } else if (size && 'within' in size) {
    pipeline = pipeline.resize(size.within, size.within, { fit: 'inside', withoutEnlargement: true, kernel: 'lanczos3' });
  } else if (size && 'shortSide' in size) {
    const photo = await imageSize(image);
    const target = keepAspectSize(photo.width, photo.height, size);
    pipeline = pipeline.resize(target.width, target.height, { fit: 'cover', position: 'centre', kernel: KERNELS[size.resample ?? 'bicubic'] });
  } else if (size && 'width' in size) {
    pipeline = pipeline.resize(size.width, size.height, { fit: 'fill', kernel: KERNELS[size.resample ?? 'bicubic'] });
  }
  const raw = await decoded(file, () => pipeline.removeAlpha().raw().toBuffer({ resolveWithObject: true }));
  if (raw.info.channels !== 3) throw new Error(`loadImage: expected 3 channels after conversion, got ${raw.info.channels}`);
  // A model's image processor resizes the decoded 8-bit image with PIL's filters (pil-resize.ts).
  const { width, height, bytes } = size && 'processor' in size ? processorResize({ bytes: raw.data, ...raw.info }, size) : { ...raw.info, bytes: raw.data };
  // Interleaved bytes (HWC) -> planar floats (CHW).
  const plane = width * height;
  const data = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    data[i] = bytes[3 * i] / 255;
    data[plane + i] = bytes[3 * i + 1] / 255;
    data[2 * plane + i] = bytes[3 * i + 2] / 255;
  }
  return { data, width, height };
}

/** An engine image as sharp's raw 8-bit interleaved input; values are clamped to [0, 1]. */
function rawInput(img: RgbImage): Sharp.Sharp {
  const plane = img.width * img.height;
  if (img.data.length !== 3 * plane) throw new Error(`image: ${img.data.length} values for a 3x${img.height}x${img.width} image`);
  const bytes = Buffer.alloc(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) {
      const v = img.data[c * plane + i];
      // NaN (which no clamp removes) becomes 0 rather than poisoning the encoder.
      bytes[3 * i + c] = v > 0 ? Math.round(Math.min(v, 1) * 255) : 0;
    }
  }
  return sharp()(bytes, { raw: { width: img.width, height: img.height, channels: 3 } });
}

function bytesOf(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

/** PNG bytes of an image; values are clamped to [0, 1] and rounded to 8 bits. */
export async function encodePng(img: RgbImage): Promise<Uint8Array> {
  return bytesOf(await rawInput(img).png().toBuffer());
}

/** Longest side of a thumbnail (the Lab's cells), in pixels. */
export const THUMBNAIL_SIDE = 64;

export interface Thumbnail {
  png: Uint8Array;
  width: number;
  height: number;
}

/**
 * A small PNG of an image file or an engine image: longest side `side` (never enlarged), the
 * aspect ratio kept, and never zero-sized (a 10,000 x 1 strip gives 64 x 1). A file is shrunk while
 * it is decoded — JPEG and WebP decode straight at a fraction of their size, other formats stream
 * row by row — so a large photo never sits in memory whole; a file past the pixel limit is refused
 * from its header (UserError), like every other read.
 */
export async function thumbnailPng(source: string | RgbImage, side = THUMBNAIL_SIDE): Promise<Thumbnail> {
  const pipeline = typeof source === 'string' ? await openImage(source, true) : rawInput(source);
  const shrink = () => pipeline.resize(side, side, { fit: 'inside', withoutEnlargement: true }).removeAlpha().png().toBuffer({ resolveWithObject: true });
  const { data, info } = typeof source === 'string' ? await decoded(source, shrink) : await shrink();
  return { png: bytesOf(data), width: info.width, height: info.height };
}

export async function writePng(file: string, img: RgbImage): Promise<void> {
  await writeFileAtomic(file, await encodePng(img));
}

/** The p x p patch at grid cell (row, col), enlarged `scale` times (nearest) so it is visible. */
export function cropPatch(img: RgbImage, row: number, col: number, p: number, scale: number): RgbImage {
  const size = p * scale;
  const out = new Float32Array(3 * size * size);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < size; y++) {
      const sy = row * p + Math.floor(y / scale);
      for (let x = 0; x < size; x++) {
        out[(c * size + y) * size + x] = img.data[(c * img.height + sy) * img.width + col * p + Math.floor(x / scale)]!;
      }
    }
  }
  return { data: out, width: size, height: size };
}

/** Nearest-neighbour enlargement (token mosaics stay crisp). */
export function upscale(img: RgbImage, factor: number): RgbImage {
  if (factor === 1) return img;
  const w = img.width * factor;
  const h = img.height * factor;
  const out = new Float32Array(3 * w * h);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < h; y++) {
      const src = (c * img.height + Math.floor(y / factor)) * img.width;
      for (let x = 0; x < w; x++) out[(c * h + y) * w + x] = img.data[src + Math.floor(x / factor)]!;
    }
  }
  return { data: out, width: w, height: h };
}

/**
 * Bilinear resampling to any size: the atlas decoding of a grid is the encoder's input (the
 * photo's shape for the DCT, give or take the rounding to whole patches; a model's fixed square),
 * and is shown at its photo's aspect ratio beside the photo (the Lab's thumbnails).
 */
export function resample(img: RgbImage, width: number, height: number): RgbImage {
  const out = new Float32Array(3 * width * height);
  const sx = img.width / width;
  const sy = img.height / height;
  for (let y = 0; y < height; y++) {
    const fy = Math.min(img.height - 1, Math.max(0, (y + 0.5) * sy - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(img.height - 1, y0 + 1);
    const ty = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = Math.min(img.width - 1, Math.max(0, (x + 0.5) * sx - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(img.width - 1, x0 + 1);
      const tx = fx - x0;
      for (let c = 0; c < 3; c++) {
        const plane = c * img.width * img.height;
        const at = (xx: number, yy: number): number => img.data[plane + yy * img.width + xx]!;
        const top = at(x0, y0) * (1 - tx) + at(x1, y0) * tx;
        const bottom = at(x0, y1) * (1 - tx) + at(x1, y1) * tx;
        out[(c * height + y) * width + x] = top * (1 - ty) + bottom * ty;
      }
    }
  }
  return { data: out, width, height };
}

function isImageName(name: string): boolean {
  return IMAGE_EXTENSIONS.includes(path.extname(name).slice(1).toLowerCase());
}

/**
 * The image files (by extension) under a folder, recursively, sorted by path so runs are
 * reproducible; hidden entries (".git", ".DS_Store"...) are left out. Symbolic links are followed
 * (image folders are often links into a data set), but each real folder is walked once and each
 * real file listed once: a link back to a parent folder neither loops nor lists the images
 * again. A file reached both directly and through a link to it is listed under its direct path.
 * A single file is returned as is if it has an image extension. A folder without images gives an
 * empty list.
 */
export async function listImages(fileOrDir: string): Promise<string[]> {
  const stat = await onFile(fileOrDir, 'list images', () => fs.stat(fileOrDir));
  if (!stat.isDirectory()) {
    if (!isImageName(fileOrDir)) throw new UserError(`${fileOrDir}: not an image file (expected ${IMAGE_EXTENSIONS.join(', ')})`);
    return [fileOrDir];
  }
  const seenDirs = new Set<string>();
  /** real path of each image file -> the path it is listed under */
  const files = new Map<string, { path: string; viaLink: boolean }>();
  const walk = async (dir: string): Promise<void> => {
    const real = await onFile(dir, 'list images', () => fs.realpath(dir));
    if (seenDirs.has(real)) return;
    seenDirs.add(real);
    const entries = await onFile(dir, 'list images', () => fs.readdir(dir, { withFileTypes: true }));
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const full = path.join(dir, entry.name);
      const viaLink = entry.isSymbolicLink();
      // A link is judged by what it points at; a dangling one is left out.
      const target = viaLink ? await fs.stat(full).catch(() => null) : entry;
      if (!target) continue;
      if (target.isDirectory()) {
        await walk(full);
      } else if (isImageName(entry.name)) {
        // Anything else with an image name (a FIFO, a device) is listed and refused when loaded.
        const realFile = viaLink ? await fs.realpath(full).catch(() => full) : path.join(real, entry.name);
        const listed = files.get(realFile);
        if (!listed || (listed.viaLink && !viaLink)) files.set(realFile, { path: full, viaLink });
      }
    }
  };
  await walk(fileOrDir);
  return [...files.values()].map((f) => f.path).sort();
}

/** [gridH, gridW] of an image an encoder loaded: its size in whole patches. A ViT's patch
 *  convolution drops what is left past the last whole patch (SigLIP-so400m-patch14-384: 384 px
 *  is 27 patches of 14 and 6 px unseen, a 27 x 27 grid), and so does this. */
export function imageGrid(image: { width: number; height: number }, patch: number): [number, number] {
  return [Math.floor(image.height / patch), Math.floor(image.width / patch)];
}

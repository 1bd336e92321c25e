// Pixels for the webviews: engine images (planar float RGB) as PNG data: URIs, photos at their
// own aspect ratio, thumbnails, atlas reconstructions with their PSNR, and patch crops. No 'vscode' here, so
// the webview tests serve their panels exactly what the extension does.
import { decodeTokens, encodePng, gridFollowsPhoto, imageSize, loadImage, psnr, thumbnailPng, type Codebook, type ComputeBackend, type Encoder, type RgbImage } from '../engine/index.js';
import type { Reconstruction, ReconstructionBounds } from '../../common/protocol/tokengrid.js';

/** Longest side of a photo sent to a panel: sharp on a 2x screen at a panel's width. */
export const PHOTO_PREVIEW_SIDE = 1024;

const dataUri = (png: Uint8Array): string => `data:image/png;base64,${Buffer.from(png).toString('base64')}`;

export async function pngDataUri(img: RgbImage): Promise<string> {
  return dataUri(await encodePng(img));
}

/** A thumbnail (engine/embed/image.ts thumbnailPng: shrunk while decoded, never zero-sized) as a URI,
 *  with its size. */
export async function thumbnailUri(source: string | RgbImage): Promise<{ uri: string; width: number; height: number }> {
  const { png, width, height } = await thumbnailPng(source);
  return { uri: dataUri(png), width, height };
}

/** A photo as a panel shows it under its token grid: its own aspect ratio (EXIF applied), scaled
 *  down to fit; when the grid follows the photo's shape (the DCT's default), only the part the
 *  encoder saw (centre-cropped to the grid's ratio), so every cell lies over its own patch. */
export async function photoDataUri(file: string, grid: readonly [number, number]): Promise<string> {
  const aspect = gridFollowsPhoto(await imageSize(file), grid) ? grid[1] / grid[0] : undefined;
  return pngDataUri(await loadImage(file, { within: PHOTO_PREVIEW_SIDE, ...(aspect && { aspect }) }));
}

/** The atlas decoding of a grid and its PSNR against what the encoder saw; null when the codebook
 *  has no pixel atlas yet. */
export async function reconstruct(cb: Codebook, encoder: Encoder, backend: ComputeBackend, image: string, ids: number[], grid: [number, number]): Promise<Reconstruction | null> {
  if (cb.meta.atlas === 'none') return null;
  const [decoded, input] = await Promise.all([decodeTokens(cb, Int32Array.from(ids), grid, backend), encoder.load(image)]);
  const db = psnr(input, decoded);
  return { image: await pngDataUri(decoded), psnr: Number.isFinite(db) ? db : null };
}

/** What bounds a grid's reconstruction: K, the encoder and the size it saw this photo at (the
 *  grid in pixels: the DCT encoder follows the photo's shape), the atlas. */
export function reconstructionBounds(cb: Codebook, encoder: Encoder, grid: readonly [number, number]): ReconstructionBounds {
  return { k: cb.frozen.rows, encoder: encoder.descriptor.id, input: [grid[0] * encoder.patch, grid[1] * encoder.patch], patch: encoder.patch, atlas: cb.meta.atlas };
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

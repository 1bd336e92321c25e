// Pixels for the webviews: engine images (planar float RGB) as PNG data: URIs, photos at their
// own aspect ratio, thumbnails, atlas reconstructions with their PSNR (the pixel operations
// themselves are the engine's: engine/embed/image.ts). No 'vscode' here, so the webview tests
// serve their panels exactly what the extension does.
import { decodeTokens, encodePng, hasPixelAtlas, gridFollowsPhoto, imageSize, loadImage, psnr, thumbnailPng, type Codebook, type ComputeBackend, type Encoder, type ImageInput, type RgbImage } from '../engine/index.js';
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
export async function photoDataUri(file: ImageInput, grid: readonly [number, number]): Promise<string> {
  const aspect = gridFollowsPhoto(await imageSize(file), grid) ? grid[1] / grid[0] : undefined;
  return pngDataUri(await loadImage(file, { within: PHOTO_PREVIEW_SIDE, ...(aspect && { aspect }) }));
}

/** The atlas decoding of a grid and its PSNR against what the encoder saw; null when the codebook
 *  has no pixel atlas yet. */
export async function reconstruct(cb: Codebook, encoder: Encoder, backend: ComputeBackend, image: string, ids: number[], grid: [number, number]): Promise<Reconstruction | null> {
  if (!hasPixelAtlas(cb.meta)) return null;
  const [decoded, input] = await Promise.all([decodeTokens(cb, Int32Array.from(ids), grid, backend), encoder.load(image)]);
  const db = psnr(input, decoded);
  return { image: await pngDataUri(decoded), psnr: Number.isFinite(db) ? db : null };
}

/** What bounds a grid's reconstruction: K, the encoder and the size it saw this photo at (the
 *  grid in pixels: the DCT encoder follows the photo's shape), the atlas. */
export function reconstructionBounds(cb: Codebook, encoder: Encoder, grid: readonly [number, number]): ReconstructionBounds {
  return { k: cb.frozen.rows, encoder: encoder.descriptor.id, input: [grid[0] * encoder.patch, grid[1] * encoder.patch], patch: encoder.patch, atlas: cb.meta.atlas };
}

// The built-in encoder: the orthonormal 2-D DCT-II of each 16x16 RGB patch, d = 3*16*16 = 768
// (channel-major). It needs no weights and is exactly invertible, so a codeword is a pixel patch
// seen in frequency space; computed by the backend (backend.dctPatches) so a GPU can do it too.
//
// It keeps the photo's shape by default ('dct:<size>'): the short side is resized to <size>, the
// long side to the nearest multiple of 16 that keeps the ratio, at most MAX_ASPECT_RATIO times the
// short side and MAX_INPUT_SIDE (beyond, the long side is centre-cropped), so a 640 x 400 photo
// becomes 352 x 224, a 14 x 22 grid. Nothing in the DCT fixes its input size, which is why it can;
// the grid is then the image's own. 'dct:<size>:square' stretches every photo to <size> x <size>
// instead, for fixed-length token sequences.
import type { ComputeBackend, Matrix, RunControl } from '../../../../native-gpu/backend.js';
import { throwIfCancelled, UserError } from '../../../../common/errors.js';
import { checkInputSize, MAX_ASPECT_RATIO, MAX_INPUT_SIDE } from '../../core/limits.js';
import { imageSize, keepAspectSize, loadImage, type KeepAspect, type ResizeTo, type RgbImage } from '../image.js';
import { stackRows } from '../../core/sampling.js';
import type { EncoderResize, Encoder, EncoderDescriptor } from './index.js';

export const DCT_PATCH = 16;

/** The encoder id of a DCT encoder: what `--encoder` takes and what token files record. */
export function dctEncoderId(size: number, resize: EncoderResize): string {
  return resize === 'stretch' ? `dct:${size}:square` : `dct:${size}`;
}

/** How 'dct:<size>' resizes: short side `size`, long side capped at MAX_ASPECT_RATIO x size and
 *  MAX_INPUT_SIDE. */
function keepAspect(size: number): KeepAspect {
  return { shortSide: size, multiple: DCT_PATCH, maxLongSide: Math.min(MAX_ASPECT_RATIO * size, MAX_INPUT_SIDE), resample: 'bicubic' };
}

/** Whether `grid` is the one 'dct:<size>' (keep-aspect, any size) makes of a width x height photo:
 *  then it covers the photo centre-cropped to the grid's own ratio, and nothing is stretched. A
 *  grid of another shape came from a stretching encoder (a model's fixed input, ':square', or a
 *  version before keep-aspect), which saw the whole photo. */
export function gridFollowsPhoto(photo: { width: number; height: number }, grid: readonly [number, number]): boolean {
  const size = Math.min(grid[0], grid[1]) * DCT_PATCH;
  if (size > MAX_INPUT_SIDE) return false;
  const made = keepAspectSize(photo.width, photo.height, keepAspect(size));
  return made.height === grid[0] * DCT_PATCH && made.width === grid[1] * DCT_PATCH;
}

export async function openDctEncoder(size: number, resize: EncoderResize, backend: ComputeBackend): Promise<Encoder> {
  const p = DCT_PATCH;
  const id = dctEncoderId(size, resize);
  checkInputSize([size, size], `encoder '${id}'`);
  if (size % p !== 0) throw new UserError(`encoder '${id}': the DCT input size must be a positive multiple of ${p} (e.g. dct:224)`);
  const d = 3 * p * p;
  const descriptor: EncoderDescriptor = { kind: 'dct', id, patch: p, inputSize: [size, size], d, resize };
  const { maxLongSide } = keepAspect(size);
  const resizeTo: ResizeTo | KeepAspect = resize === 'stretch' ? { width: size, height: size, resample: 'bicubic' } : keepAspect(size);
  const square = (size / p) ** 2;
  return {
    descriptor,
    d,
    patch: p,
    inputSize: [size, size],
    tokensPerImage: { min: square, max: resize === 'stretch' ? square : (size / p) * (maxLongSide / p) },
    async tokensOf(path) {
      if (resize === 'stretch') return square;
      const photo = await imageSize(path);
      const { width, height } = keepAspectSize(photo.width, photo.height, keepAspect(size));
      return (width / p) * (height / p);
    },
    get device() {
      return backend.device; // the backend's, which names the CPU once a lost GPU hands over
    },
    load: (path) => loadImage(path, resizeTo),
    // The CPU backend's DCT is native-gpu/cpu/dct.ts, which a worker runs as well (same bits); on
    // a GPU the main thread keeps it.
    get offload() {
      return { resize: resizeTo, ...(backend.name === 'cpu' && { dctPatch: p }) };
    },
    async encode(images: RgbImage[], control?: RunControl): Promise<Matrix> {
      const parts: Matrix[] = [];
      for (const img of images) {
        throwIfCancelled(control?.signal);
        const [short, long] = [Math.min(img.width, img.height), Math.max(img.width, img.height)];
        const fits = resize === 'stretch' ? img.width === size && img.height === size : short === size && long <= maxLongSide && long % p === 0;
        if (!fits) throw new Error(`dct encoder '${id}': image is ${img.width}x${img.height}, not what encoder.load makes`);
        parts.push(await backend.dctPatches(img.data, img.height, img.width, p));
      }
      return parts.length === 0 ? { rows: 0, cols: d, data: new Float32Array(0) } : stackRows(parts);
    },
    async dispose() {},
  };
}

// The built-in encoder: the orthonormal 2-D DCT-II of each 16x16 RGB patch, d = 3*16*16 = 768
// (channel-major). It needs no weights and is exactly invertible, so a codeword is a pixel patch
// seen in frequency space; computed by the backend (backend.dctPatches) so a GPU can do it too.
import type { ComputeBackend, Matrix, RunControl } from '../../../native-gpu/backend';
import { throwIfCancelled, UserError } from '../../../common/errors';
import { checkInputSize } from '../limits';
import { loadImage, type ResizeTo, type RgbImage } from '../image';
import type { Encoder, EncoderDescriptor } from './index';

export const DCT_PATCH = 16;

export async function openDctEncoder(size: number, backend: ComputeBackend): Promise<Encoder> {
  const p = DCT_PATCH;
  checkInputSize([size, size], `encoder 'dct:${size}'`);
  if (size % p !== 0) throw new UserError(`encoder 'dct:${size}': the DCT input size must be a positive multiple of ${p} (e.g. dct:224)`);
  const d = 3 * p * p;
  const grid: [number, number] = [size / p, size / p];
  const descriptor: EncoderDescriptor = { kind: 'dct', id: `dct:${size}`, patch: p, inputSize: [size, size], d };
  const resize: ResizeTo = { width: size, height: size, resample: 'bicubic' };
  return {
    descriptor,
    d,
    patch: p,
    inputSize: [size, size],
    grid,
    get device() {
      return backend.device; // the backend's, which names the CPU once a lost GPU hands over
    },
    load: (path) => loadImage(path, resize),
    // The CPU backend's DCT is native-gpu/cpu/dct.ts, which a worker runs as well (same bits); on
    // a GPU the main thread keeps it.
    get offload() {
      return { resize, ...(backend.name === 'cpu' && { dctPatch: p }) };
    },
    async encode(images: RgbImage[], control?: RunControl): Promise<Matrix> {
      const perImage = grid[0] * grid[1] * d;
      const data = new Float32Array(images.length * perImage);
      for (const [i, img] of images.entries()) {
        throwIfCancelled(control?.signal);
        if (img.width !== size || img.height !== size) {
          throw new Error(`dct encoder: image is ${img.width}x${img.height}, expected ${size}x${size} (use encoder.load)`);
        }
        const patches = await backend.dctPatches(img.data, size, size, p);
        data.set(patches.data, i * perImage);
      }
      return { rows: images.length * grid[0] * grid[1], cols: d, data };
    },
    async dispose() {},
  };
}

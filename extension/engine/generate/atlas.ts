// The atlas decoder: each code's trainable row is a p x p RGB pixel patch stored in DCT space
// (channel-major, as backend.dctPatches lays it out), so a token grid decodes by gathering rows
// and one inverse DCT. For the DCT encoder the atlas starts as the frozen codebook itself (a
// centroid of DCT vectors IS the DCT of a mean patch); for any encoder, refineAtlas fits it in
// closed form: the mean pixel patch of everything a code was assigned, the least-squares best
// patch for that code on that corpus. The DCT is linear, so the mean is taken in DCT space.
import type { ComputeBackend, Matrix } from '../../../native-gpu/backend.js';
import { hasPixelAtlas, inMemory, type Codebook } from '../codebook/codebook.js';
import { rowsF32 } from '../../../native-gpu/tables.js';
import { forEachEncodedBatch, type BatchControl, type Images } from '../embed/embed.js';
import type { Encoder } from '../embed/encoders/index.js';
import { REMEDIES, UserError } from '../../../common/errors.js';
import { checkEncoderMatches } from '../search/tokenize.js';
import { checkTokenIds } from '../../../native-gpu/token-ids.js';
import { checkGridSize } from '../core/limits.js';
import { inputName, type RgbImage } from '../embed/image.js';

function atlasPatch(cb: Codebook): number {
  const p = cb.meta.encoder.patch;
  if (!(p > 0) || cb.trainable.cols !== 3 * p * p) {
    throw new UserError(`the codebook's trainable rows have ${cb.trainable.cols} values, not a ${p}x${p} RGB patch`, REMEDIES.refineFirst);
  }
  return p;
}

/** Token grid -> image, pixels clamped to [0, 1]. */
export async function decodeTokens(cb: Codebook, ids: Int32Array, grid: [number, number], backend: ComputeBackend): Promise<RgbImage> {
  if (cb.meta.atlas === 'trained') throw new UserError("this codebook's trainable half holds trained task embeddings, not pixel patches: decode its tokens with a diffusion decoder");
  if (!hasPixelAtlas(cb.meta)) throw new UserError('this codebook has no pixel atlas yet', REMEDIES.refineFirst);
  const p = atlasPatch(cb);
  checkGridSize(grid, 'token grid'); // before anything is allocated for it
  const [gridH, gridW] = grid;
  if (ids.length !== gridH * gridW) throw new UserError(`${ids.length} token ids do not fill a ${gridH}x${gridW} grid`);
  const k = cb.trainable.rows;
  const cols = cb.trainable.cols;
  const coefficients = new Float32Array(ids.length * cols);
  checkTokenIds(ids, k);
  const atlas = await cb.trainable.load();
  ids.forEach((id, i) => coefficients.set(rowsF32(atlas, id, 1), i * cols));
  const pixels = await backend.idctPatches({ rows: ids.length, cols, data: coefficients }, gridH, gridW, p);
  for (let i = 0; i < pixels.length; i++) pixels[i] = Math.min(1, Math.max(0, pixels[i]));
  return { data: pixels, width: gridW * p, height: gridH * p };
}

/** What a pass over the images sums: each code's patches (DCT space) and how many, and all patches. */
interface PatchSums {
  sums: Float64Array;
  counts: Float64Array;
  total: Float64Array;
  patches: number;
}

/** Every patch of `images` added to the sums of its nearest frozen code, found through the
 *  codebook's encoder exactly as tokenizing does. */
async function sumPatches(cb: Codebook, encoder: Encoder, images: Images, backend: ComputeBackend, control: BatchControl): Promise<PatchSums> {
  const p = encoder.patch;
  const cols = 3 * p * p;
  const k = cb.frozen.rows;
  const sums = new Float64Array(k * cols);
  const counts = new Float64Array(k);
  const total = new Float64Array(cols);
  let patches = 0;

  // forEachEncodedBatch decodes each image once for the encoder; keep those pixels for the batch
  // so the patches are cut from exactly what was encoded. Queued by name: shards' keys may repeat.
  const loaded = new Map<string, RgbImage[]>();
  const keeping: Encoder = {
    ...encoder,
    load: async (file) => {
      const img = await encoder.load(file);
      const name = inputName(file);
      loaded.set(name, [...(loaded.get(name) ?? []), img]);
      return img;
    },
  };
  const handle = await backend.loadCodebook(cb.frozen);
  try {
    await forEachEncodedBatch(
      keeping,
      images,
      async ({ images: files, embeddings }) => {
        const { ids } = await backend.nearest(handle, embeddings, { signal: control.signal });
        let token = 0;
        for (const file of files) {
          const img = loaded.get(file)!.shift()!;
          const dct: Matrix = await backend.dctPatches(img.data, img.height, img.width, p); // the image's own grid
          for (let r = 0; r < dct.rows; r++, token++) {
            const id = ids[token];
            counts[id]++;
            const row = dct.data.subarray(r * cols, (r + 1) * cols);
            const sum = sums.subarray(id * cols, (id + 1) * cols);
            for (let j = 0; j < cols; j++) {
              sum[j] += row[j];
              total[j] += row[j];
            }
          }
          patches += dct.rows;
        }
        loaded.clear();
      },
      control,
    );
  } finally {
    handle.dispose();
  }
  return { sums, counts, total, patches };
}

/**
 * Fits the atlas on `images`: every patch is assigned its nearest frozen code (through the
 * codebook's encoder, exactly as tokenizing does), and each code's row becomes the mean of its
 * patches. Codes no patch reached keep their row; if there was no atlas before, they get the
 * mean of all patches instead (a neutral patch rather than garbage). Returns a new Codebook.
 */
export async function refineAtlas(
  cb: Codebook,
  encoder: Encoder,
  images: Images,
  backend: ComputeBackend,
  control: BatchControl = {},
): Promise<Codebook> {
  // the trained half came from a training run: refining would overwrite it with pixel patches
  if (cb.meta.atlas === 'trained') throw new UserError("this codebook's trainable half holds trained task embeddings (codebook import-trainable): refining would replace them; refine a copy made before the import");
  checkEncoderMatches(cb, encoder);
  const p = encoder.patch;
  const [height, width] = encoder.inputSize;
  if (height % p !== 0 || width % p !== 0) throw new UserError(`encoder '${encoder.descriptor.id}' input ${width}x${height} is not a whole number of ${p}x${p} patches`);
  const hadAtlas = cb.meta.atlas !== 'none';
  const cols = 3 * p * p;
  if (hadAtlas) atlasPatch(cb);
  // Read now, before anything else: a refined codebook is often written back over this file.
  const previous = hadAtlas ? await cb.trainable.load() : null;

  const { sums, counts, total, patches } = await sumPatches(cb, encoder, images, backend, control);
  if (patches === 0) throw new UserError('none of the images could be read, so the atlas cannot be refined');

  const k = cb.frozen.rows;
  const atlas = new Float32Array(k * cols);
  for (let code = 0; code < k; code++) {
    const row = atlas.subarray(code * cols, (code + 1) * cols);
    if (counts[code] > 0) {
      for (let j = 0; j < cols; j++) row[j] = sums[code * cols + j] / counts[code];
    } else if (previous) {
      row.set(rowsF32(previous, code, 1));
    } else {
      for (let j = 0; j < cols; j++) row[j] = total[j] / patches;
    }
  }
  return {
    ...cb,
    trainable: inMemory({ rows: k, cols, data: atlas }),
    meta: { ...cb.meta, atlas: 'refined', atlasPatches: patches },
  };
}

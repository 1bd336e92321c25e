// The engine's size bounds, each checked in one place before anything is allocated for it, so a
// hostile or mistyped input fails at once with a message naming the bound instead of allocating
// gigabytes. README.md ("Limits") lists the same numbers.
import { UserError } from '../../../common/errors.js';

/** Largest encoder input side, in pixels (height and width each): dct:<size>, the long side of a
 *  keep-aspect DCT input, the size of a preprocessor_config.json, an ONNX model's fixed H and W, a
 *  codebook's encoder descriptor.
 *  1024 x 1024 RGB is 12 MiB of float pixels per image, 96 MiB per encoder batch. */
export const MAX_INPUT_SIDE = 1024;

/** Longest side of a keep-aspect encoder input as a multiple of its short side (the built-in DCT
 *  encoder's default mode): a wider panorama (or taller strip) is centre-cropped to 4:1, so one
 *  photo never costs more than 4 times the tokens of a square one. MAX_INPUT_SIDE bounds the long
 *  side too. */
export const MAX_ASPECT_RATIO = 4;

/** Largest token grid side (rows and columns each): 128 x 128 = 16,384 tokens, which decode to at
 *  most 2048 x 2048 pixels with 16-pixel patches. Every grid an encoder within MAX_INPUT_SIDE
 *  makes with patches of 8 pixels or more fits. */
export const MAX_GRID_SIDE = 128;

/** Largest embedding dimension d an encoder may produce (SigLIP so400m: 1152; ViT-g: 1664). */
export const MAX_EMBEDDING_DIM = 16_384;

/** Largest fixed batch dimension of an ONNX model's input (the pixel input is allocated for it). */
export const MAX_FIXED_BATCH = 64;

/** Largest image the decoder is asked to open, in pixels (about a 100-megapixel photo); checked
 *  from the file's header, before decoding. */
export const MAX_IMAGE_PIXELS = 100_000_000;

/** Largest photo a model's image processor resizes to before its centre crop, in pixels (12 MiB
 *  of bytes): a {shortest_edge} resize makes the long side follow the photo, so a thin strip would
 *  otherwise become gigabytes. 1024 x 4096, or a 224 short side with an 80:1 long one. */
export const MAX_RESIZED_PIXELS = 4 * 2 ** 20;

/** Largest image file read into memory whole: an image member of a data-set shard (tar, parquet).
 *  A header claiming more is refused before anything is allocated. */
export const MAX_IMAGE_BYTES = 128 * 2 ** 20;

/** Largest text member of a webdataset sample carried into the index (json, txt, cls). */
export const MAX_SAMPLE_TEXT_BYTES = 2 ** 20;

/** Most array tasks one job over shards is split into on Slurm: the highest array index Slurm's
 *  default MaxArraySize (1001) allows. */
export const MAX_SLURM_TASKS = 1000;

/** Largest single read of a parquet shard (its footer, one column chunk of a row group). */
export const MAX_PARQUET_READ_BYTES = 1024 * 2 ** 20;

/** A parquet file is decoded in a child process (io/formats/parquet-worker.ts) held to this much
 *  JavaScript heap, and each of its steps (the footer, a row group) to PARQUET_DECODE_BASE_MS plus
 *  PARQUET_DECODE_MS_PER_MIB for each MiB of the row group's column chunks: a damaged data page on
 *  which hyparquet loops or grows an array without end fails its shard alone. The heap holds a
 *  row group's decoded rows (Hugging Face writes 100 images a row group), not its bytes. */
export const MAX_PARQUET_DECODE_HEAP_MB = 128;
export const PARQUET_DECODE_BASE_MS = 20_000;
export const PARQUET_DECODE_MS_PER_MIB = 100;

/** Largest JSON file read whole: token JSON, a token data set's index, a corpus manifest. Larger
 *  token sets belong in the .npy data-set form. */
export const MAX_JSON_BYTES = 256 * 2 ** 20;

/** Largest configuration file: preprocessor_config.json. */
export const MAX_CONFIG_BYTES = 2 ** 20;

/** An autoregressive prior folder (engine/generate/ar/): its vocabulary (the logits row read per
 *  step: 4M floats = 16 MiB), its layers, heads and head size, and the prompt tokens before the
 *  first image token. The sequence is at most MAX_AR_PREFIX + MAX_GRID_SIDE^2 tokens. */
export const MAX_AR_VOCAB = 2 ** 22;
export const MAX_AR_LAYERS = 256;
export const MAX_AR_HEADS = 1024;
export const MAX_AR_HEAD_DIM = 1024;
export const MAX_AR_PREFIX = 1024;

/** Throws unless [height, width] is a grid of whole tokens within MAX_GRID_SIDE per side. The one
 *  grid check: token files are checked with it when read, and the decoder before it allocates. */
export function checkGridSize(grid: readonly unknown[], source: string): asserts grid is [number, number] {
  const ok = grid.length === 2 && grid.every((n) => Number.isInteger(n) && (n as number) >= 1);
  if (!ok) throw new UserError(`${source}: grid ${JSON.stringify(grid)} is not [height, width] in whole tokens`);
  const [h, w] = grid as [number, number];
  if (h > MAX_GRID_SIDE || w > MAX_GRID_SIDE) {
    throw new UserError(`${source}: grid [${h}, ${w}] exceeds the limit of ${MAX_GRID_SIDE} x ${MAX_GRID_SIDE} tokens`);
  }
}

/** Throws unless [height, width] is an encoder input size within MAX_INPUT_SIDE per side. */
export function checkInputSize(size: readonly unknown[], source: string): asserts size is [number, number] {
  const ok = size.length === 2 && size.every((n) => Number.isInteger(n) && (n as number) >= 1);
  if (!ok) throw new UserError(`${source}: input size ${JSON.stringify(size)} is not [height, width] in whole pixels`);
  const [h, w] = size as [number, number];
  if (h > MAX_INPUT_SIDE || w > MAX_INPUT_SIDE) {
    throw new UserError(`${source}: input size ${h}x${w} exceeds the limit of ${MAX_INPUT_SIDE} x ${MAX_INPUT_SIDE} pixels`);
  }
}

/** Largest codebook size K a token prior is fitted for or read with: 8 x the paper's 500,000. The
 *  prior keeps PRIOR_BYTES_PER_CODE bytes per code whatever the data (its unigram counts and the
 *  codes sorted by count), about 200 MB at the limit. */
export const MAX_PRIOR_K = 4_194_304;
export const PRIOR_BYTES_PER_CODE = 48;

/** Most training steps a diffusion schedule may have (diffusers' models use 1000 to 4000): the
 *  betas, alphas_cumprod and sigmas are arrays of this length. */
export const MAX_TRAIN_TIMESTEPS = 100_000;

/** Largest latent side (height and width each) a diffusion run allocates: 2048 pixels through an
 *  8x VAE (SD 1.x: 64, SDXL: 128). Checked for the model's fixed size, unet/config.json's
 *  sample_size and the initial noise. */
export const MAX_LATENT_SIDE = 256;

/** Most latent channels a noise predictor may fix (SD: 4, SD3 and Flux: 16, DC-AE: 32 to 128). */
export const MAX_LATENT_CHANNELS = 256;

/** Throws unless K is a codebook size a token prior can hold: a whole number from 1 to
 *  MAX_PRIOR_K, checked before anything is allocated per code. */
export function checkPriorK(k: number, source: string): void {
  if (Number.isSafeInteger(k) && k >= 1 && k <= MAX_PRIOR_K) return;
  const implied = Number.isFinite(k) && k > MAX_PRIOR_K ? ` (${formatBytes(k * PRIOR_BYTES_PER_CODE)} for its per-code tables)` : '';
  throw new UserError(`${source}: codebook size K = ${k} is outside 1..${MAX_PRIOR_K}${implied}`);
}

function formatBytes(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${Math.ceil(bytes / 2 ** 20)} MiB`;
}

/** Throws unless `n` is a whole number in [min, max]; `field` names it in the message. The check of
 *  a count or size read from a configuration file or a file's metadata. */
export function checkWholeNumber(n: unknown, min: number, max: number, field: string): asserts n is number {
  if (typeof n === 'number' && Number.isInteger(n) && n >= min && n <= max) return;
  throw new UserError(`${field} must be a whole number from ${min} to ${max}, found ${typeof n === 'number' ? String(n) : JSON.stringify(n) ?? String(n)}`);
}

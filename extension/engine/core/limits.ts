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

/** Largest JSON file read whole: token JSON, a token data set's index, a corpus manifest. Larger
 *  token sets belong in the .npy data-set form. */
export const MAX_JSON_BYTES = 256 * 2 ** 20;

/** Largest configuration file: preprocessor_config.json. */
export const MAX_CONFIG_BYTES = 2 ** 20;

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

// Reconstruction quality of a decoded image against the encoder's input.
import type { RgbImage } from '../embed/image.js';
import { UserError } from '../../../common/errors.js';

/** Peak signal-to-noise ratio in dB for images in [0, 1] (peak 1); Infinity when identical. */
export function psnr(reference: RgbImage, test: RgbImage): number {
  if (reference.width !== test.width || reference.height !== test.height) {
    throw new UserError(
      `cannot compare a ${test.width}x${test.height} image with a ${reference.width}x${reference.height} one`,
    );
  }
  let sum = 0;
  for (let i = 0; i < reference.data.length; i++) {
    const e = reference.data[i]! - test.data[i]!;
    sum += e * e;
  }
  const mse = sum / reference.data.length;
  return mse === 0 ? Infinity : -10 * Math.log10(mse);
}

/** Mean PSNR over a set of reconstructions (Infinity if any is exact). */
export function meanPsnr(values: number[]): number {
  return values.length === 0 ? NaN : values.reduce((a, v) => a + v, 0) / values.length;
}

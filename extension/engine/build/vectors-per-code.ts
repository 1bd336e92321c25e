// Honest numbers for a codebook built from few vectors per code. A code is the mean of the n
// training vectors it wins; for n vectors drawn with variance s² around a centre, the expected
// squared distance of those n to their mean is (n - 1)/n s², of a new vector from the same
// source (n + 1)/n s². So the MSE, PSNR and utilization measured on the training images flatter
// the codebook by (n + 1)/(n - 1): 5/3 (2.2 dB) at n = 4, 3x (4.8 dB) at 2, and at n = 1 every
// code sits on a vector (100% utilization, zero error: memorization). Below 4 vectors a code on
// average the build says so.

/** The fewest training vectors per code, on average, before a build warns. */
export const MIN_VECTORS_PER_CODE = 4;

/** The warning for K codes trained on `vectors` vectors, or null when they are enough. */
export function fewVectorsWarning(k: number, vectors: number): string | null {
  if (vectors >= MIN_VECTORS_PER_CODE * k) return null;
  const per = vectors / k; // rounded down: never reads as the threshold it is below
  return `K = ${k.toLocaleString('en-US')} codes from ${vectors.toLocaleString('en-US')} training vectors, ${per < 10 ? (Math.floor(per * 10) / 10).toFixed(1) : Math.floor(per)} per code ` +
    `(fewer than ${MIN_VECTORS_PER_CODE}): each code is the mean of a handful of vectors, so utilization, perplexity and the error on ` +
    'the training images measure memorization, not how well the codes fit new images; build from more images or with a smaller K';
}

// DCT patch features of the committed fixture photos: real, structured vectors (smooth regions,
// textures, edges) for search and k-means tests, computed through a backend's dctPatches.
import * as path from 'node:path';
import type { ComputeBackend, Matrix } from '../../native-gpu/backend.js';
import { loadImage } from '../../extension/engine/embed/image.js';

export const FIXTURE_PHOTOS = [
  'astronaut.jpg', 'brick.png', 'chelsea.png', 'china.jpg', 'coffee.jpg', 'flower.jpg',
  'grass.png', 'gravel.png', 'hubble_deep_field.jpg', 'motorcycle_left.jpg', 'rocket.jpg',
];

/** (size/patch)^2 rows of 3*patch^2 DCT coefficients for one fixture photo resized to size x size */
export async function dctFeatures(backend: ComputeBackend, file: string, size: number, patch: number): Promise<Matrix> {
  const img = await loadImage(path.join(__dirname, '../fixtures/images', file), { width: size, height: size });
  return backend.dctPatches(img.data, size, size, patch);
}

export { stackRows } from '../../extension/engine/core/sampling.js';

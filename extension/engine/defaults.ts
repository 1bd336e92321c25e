// The one set of defaults: the CLI's flags, the extension's settings (package.json's
// contributes.configuration must agree: test/unit/defaults.test.ts checks it, and the README's
// settings table) and the engine itself all read these.
//
// lambda = 0 (plain k-means, with empty codes re-seeded on the farthest points): the
// utilization-regularized update only bites when lambda is of the order of N/K (~0.07 x N/K
// measured; see kmeans.ts), so no single non-zero value suits every data set and codebook size;
// 0 keeps the objective FAISS minimizes, so builds compare like for like. Set it per build.
import type { DeviceChoice } from '../../native-gpu/backend';

export const DEFAULTS = {
  device: 'auto' as DeviceChoice,
  encoder: 'dct',
  /** codebook size of the extension's Build (the CLI requires --k) */
  k: 1024,
  lambda: 0,
  iterations: 20,
  tolerance: 1e-4,
  seed: 0,
  allowSoftwareGpu: false,
} as const;

// The one set of defaults: the CLI's flags, the extension's settings (package.json's
// contributes.configuration must agree: test/unit/defaults.test.ts checks it, and the README's
// settings table) and the engine itself all read these.
//
// lambda = 0 (plain k-means, with empty codes re-seeded on the farthest points): the
// utilization-regularized update only bites when lambda is of the order of N/K (~0.07 x N/K
// measured; see kmeans.ts), so no single non-zero value suits every data set and codebook size;
// 0 keeps the objective FAISS minimizes, so builds compare like for like. Set it per build.
//
// nprobe = 40: the smallest value reaching recall@1 >= 0.95 at both sizes bench/ivf.bench.ts
// measures on embedding-like data (codes and queries from bench/embedding-data.ts's mixture, coarse
// level = k-means over the codes with K1 ~ sqrt(K) cells): K = 131,072 (362 cells) 0.934 at 32,
// 0.953 at 40; K = 500,000 (707 cells) 0.941 at 24, 0.973 at 32. Real patch embeddings cluster far
// more than that mixture (DCT patches of the sample photos: 0.97 at nprobe 2 of 128 cells), so 40
// errs on the side of recall; --nprobe / unicode2.nprobe trade it for speed.
import type { DeviceChoice } from '../../native-gpu/backend';
import type { SchedulerKind } from './diffusion/schedulers';

export type BuildMethod = 'auto' | 'flat' | 'two-level';

export const DEFAULTS = {
  device: 'auto' as DeviceChoice,
  encoder: 'dct',
  /** codebook size of the extension's Build (the CLI requires --k) */
  k: 1024,
  lambda: 0,
  iterations: 20,
  tolerance: 1e-4,
  /** Build's k-means: 'auto' = two-level when flat would be slow or too big for memory (build.ts) */
  method: 'auto' as BuildMethod,
  seed: 0,
  allowSoftwareGpu: false,
  /** Generation (the Generation panel and `unicode2 generate` / `prior`). guidance 7.5 and 25
   *  DDIM steps are the usual Stable Diffusion settings; the prior samples its own distribution
   *  (temperature 1, top-k and top-p off) from left+up contexts (order 3). */
  generation: {
    decoder: 'atlas',
    scheduler: 'ddim' as SchedulerKind,
    steps: 25,
    guidance: 7.5,
    eta: 0,
    temperature: 1,
    topK: 0,
    topP: 1,
    priorOrder: 3,
    variations: 0.25,
  },
  /** 'auto': IVF search through the codebook's coarse level when it has one; 'exact': always exact */
  search: 'auto' as 'auto' | 'exact',
  /** coarse cells probed per query in IVF search (see the note above) */
  nprobe: 40,
} as const;

// The one set of defaults: the CLI's flags, the extension's settings (package.json's
// contributes.configuration must agree: test/unit/defaults.test.ts checks it, and the README's
// settings table) and the engine itself all read these.
//
// lambda = 0 (plain k-means, with empty codes re-seeded on the farthest points): the
// utilization-regularized update only bites when lambda is of the order of N/K (~0.07 x N/K
// measured; see kmeans.ts), so no single non-zero value suits every data set and codebook size;
// 0 keeps the objective FAISS minimizes, so builds compare like for like. Set it per build.
//
// nprobe = 0: the codebook's own calibrated nprobe (engine/search/search.ts: a two-level build measures
// the smallest nprobe reaching recall@1 0.95 on a sample of its training vectors and records it;
// `unicode2 calibrate` does it again on other vectors). The right value depends on the data:
// DCT patches of the sample photos reach 0.95 at 1 of 128 cells, bench/embedding-data.ts's
// mixture needs 28-40 of 362-707.
// UNCALIBRATED_NPROBE = 40, for codebooks without a calibrated value: the smallest value reaching
// recall@1 >= 0.95 at both sizes bench/ivf.bench.ts measures on that mixture (K = 131,072, 362
// cells: 0.934 at 32, 0.953 at 40; K = 500,000, 707 cells: 0.941 at 24, 0.973 at 32), so it errs
// on the side of recall.
import type { DeviceChoice } from '../../../native-gpu/backend.js';

export type BuildMethod = 'auto' | 'flat' | 'two-level';

/** The diffusion decoder's samplers (generate/diffusion/schedulers.ts implements each). */
export type SchedulerKind = 'ddim' | 'euler';
export const SCHEDULER_KINDS: readonly SchedulerKind[] = ['ddim', 'euler'];

/** How Tokenize finds each patch's nearest code: 'auto' is IVF through the codebook's coarse level
 *  when it has one, else exact; 'exact' is always exact search. */
export const SEARCH_CHOICES = ['auto', 'exact'] as const;
export type SearchChoice = (typeof SEARCH_CHOICES)[number];

/** nprobe 0 asks for the codebook's own calibrated nprobe (UNCALIBRATED_NPROBE without one). */
export const USE_CALIBRATED_NPROBE = 0;

export const DEFAULTS = {
  device: 'auto' as DeviceChoice,
  encoder: 'dct',
  /** which of a model's files (a Transformers.js dtype name) and which hidden state (null: the
   *  last_hidden_state) new codebooks are built from; a codebook records its own */
  encoderPrecision: 'fp32' as const,
  encoderLayer: null as number | null,
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
  search: 'auto' as SearchChoice,
  /** coarse cells probed per query in IVF search (see above) */
  nprobe: USE_CALIBRATED_NPROBE,
} as const;

/** nprobe of a codebook with no calibrated value (see above); not a setting of its own. */
export const UNCALIBRATED_NPROBE = 40;

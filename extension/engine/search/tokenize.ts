// Images -> token grids: encode each image into patch embeddings, then the nearest frozen code of
// every patch (squared L2). Indexing always uses the frozen codebook so tokens never move when the
// trainable half is refined. Each image gets its own grid (the DCT encoder keeps the photo's
// shape). The token files these grids are written to and read from are token-files.ts's.
import type { ComputeBackend, Matrix } from '../../../native-gpu/backend.js';
import type { Codebook } from '../codebook/codebook.js';
import { checkSameModel, type Encoder } from '../embed/encoders/index.js';
import { forEachEncodedBatch, rowOffsets, type BatchControl, type EncodedBatch, type Images, type SkippedImage } from '../embed/embed.js';
import { UserError } from '../../../common/errors.js';
import { openSearch, type SearchOptions } from './search.js';
import { stackRows } from '../core/sampling.js';
import type { PooledEmbeddings, TokenGrid } from '../codebook/token-files.js';
import { DEFAULT_PRECISION } from '../embed/encoders/model-files.js';

/** The device(s) behind a token: one name when the encoder and the search ran on the same one. */
export function computedOn(encoder: Encoder, backend: ComputeBackend): string {
  return encoder.device === backend.device ? backend.device : `encoder: ${encoder.device}; search: ${backend.device}`;
}

/** Throws unless the encoder produces vectors of the codebook's dimension, from the model the
 *  codebook names where it names one (by its weights' sha256). */
export function checkEncoderMatches(cb: Codebook, encoder: Encoder): void {
  if (cb.frozen.cols !== encoder.d) {
    throw new UserError(`codebook has d=${cb.frozen.cols} but encoder '${encoder.descriptor.id}' gives d=${encoder.d}`);
  }
  checkSameModel(cb.meta.encoder, encoder.descriptor);
}

export interface TokenizeControl extends BatchControl {
  /** also return each patch's squared distance to its code (quantization error per token) */
  withDistances?: boolean;
  /** IVF or exact, and nprobe (default: DEFAULTS.search and DEFAULTS.nprobe) */
  search?: SearchOptions;
}

/** Images searched together: the encoder's batches are pooled up to this many images, so an IVF
 *  search's per-cell GEMMs are larger and fewer (one image is 196 queries or more). */
export const SEARCH_IMAGES = 32;

export async function tokenizeImages(
  cb: Codebook,
  encoder: Encoder,
  images: Images,
  backend: ComputeBackend,
  control: TokenizeControl = {},
): Promise<{ results: TokenGrid[]; skipped: SkippedImage[]; pooled: PooledEmbeddings | null }> {
  checkEncoderMatches(cb, encoder);
  const results: TokenGrid[] = [];
  // with control.pooled: each result's pooled image embedding, in the results' order
  const pooled: Matrix[] = [];
  const search = await openSearch(cb, backend, control.search);
  let pending: EncodedBatch[] = [];
  const searchPending = async (): Promise<void> => {
    const batches = pending;
    pending = [];
    const paths = batches.flatMap((b) => b.images);
    if (paths.length === 0) return;
    const embeddings = batches.length === 1 ? batches[0]!.embeddings : stackRows(batches.map((b) => b.embeddings));
    const grids = batches.flatMap((b) => b.grids);
    for (const b of batches) if (b.pooled) pooled.push(b.pooled);
    const { ids, distances } = await search.nearest(embeddings, { signal: control.signal });
    const offsets = rowOffsets(grids);
    paths.forEach((image, i) => {
      const [from, to] = [offsets[i]!, offsets[i + 1]!];
      const grid: TokenGrid = {
        image,
        grid: grids[i]!,
        ids: Array.from(ids.subarray(from, to)),
        codebook: cb.fingerprint,
        encoder: encoder.descriptor.id,
        device: computedOn(encoder, backend),
        search: search.info,
      };
      if (control.withDistances) grid.distances = Array.from(distances.subarray(from, to));
      results.push(grid);
    });
  };
  try {
    const { skipped } = await forEachEncodedBatch(
      encoder,
      images,
      async (batch) => {
        pending.push(batch);
        if (pending.reduce((n, b) => n + b.images.length, 0) >= SEARCH_IMAGES) await searchPending();
      },
      // decode and encode in worker threads while this thread searches (for more than one batch)
      { parallel: true, ...control },
    );
    await searchPending();
    const kept = control.pooled && pooled.length > 0 ? { embeddings: stackRows(pooled), output: encoder.pooledOutput!, precision: encoder.descriptor.model?.precision ?? DEFAULT_PRECISION } : null;
    return { results, skipped, pooled: kept };
  } finally {
    search.dispose();
  }
}

// Images -> token grids: encode each image into patch embeddings, then the nearest frozen code of
// every patch (squared L2). Indexing always uses the frozen codebook so tokens never move when the
// trainable half is refined. Also reads and writes the two token file forms: per-image JSON and a
// data set (.npy int32 [N, L] + an index of image paths).
import type { ComputeBackend } from '../../native-gpu/backend';
import { checkTokenIds } from '../../native-gpu/token-ids';
import type { Codebook } from './codebook';
import type { Encoder } from './encoders/index';
import { forEachEncodedBatch, type BatchControl, type EncodedBatch, type SkippedImage } from './embed';
import { UserError } from '../../common/errors';
import { writeFileAtomic } from './atomic-write';
import { readJsonFile } from './files';
import { indexPathOf, readIndexedNpy, writeIndexedNpy, type DataCheck } from './formats/npy-index';
import { checkGridSize, MAX_JSON_BYTES } from './limits';
import { openSearch, type SearchInfo, type SearchOptions } from './search';
import { stackRows } from './sampling';

export interface TokenGrid {
  image: string;
  grid: [number, number];
  ids: number[];
  codebook: string;
  encoder: string;
  device: string;
  /** what search produced the ids (absent in files of older versions) */
  search?: SearchInfo;
  distances?: number[];
}

/** The device(s) behind a token: one name when the encoder and the search ran on the same one. */
export function computedOn(encoder: Encoder, backend: ComputeBackend): string {
  return encoder.device === backend.device ? backend.device : `encoder: ${encoder.device}; search: ${backend.device}`;
}

/** Throws unless the encoder produces vectors of the codebook's dimension. */
export function checkEncoderMatches(cb: Codebook, encoder: Encoder): void {
  if (cb.frozen.cols !== encoder.d) {
    throw new UserError(`codebook has d=${cb.frozen.cols} but encoder '${encoder.descriptor.id}' gives d=${encoder.d}`);
  }
}

export interface TokenizeControl extends BatchControl {
  /** also return each patch's squared distance to its code (quantization error per token) */
  withDistances?: boolean;
  /** IVF or exact, and nprobe (default: DEFAULTS.search and DEFAULTS.nprobe) */
  search?: SearchOptions;
}

/** Images searched together: the encoder's batches are pooled up to this many images, so an IVF
 *  search's per-cell GEMMs are larger and fewer (one image is 196 to 729 queries). */
export const SEARCH_IMAGES = 32;

export async function tokenizeImages(
  cb: Codebook,
  encoder: Encoder,
  images: string[],
  backend: ComputeBackend,
  control: TokenizeControl = {},
): Promise<{ results: TokenGrid[]; skipped: SkippedImage[] }> {
  checkEncoderMatches(cb, encoder);
  const tokensPerImage = encoder.grid[0] * encoder.grid[1];
  const results: TokenGrid[] = [];
  const search = await openSearch(cb, backend, control.search);
  let pending: EncodedBatch[] = [];
  const searchPending = async (): Promise<void> => {
    const batches = pending;
    pending = [];
    const paths = batches.flatMap((b) => b.images);
    if (paths.length === 0) return;
    const embeddings = batches.length === 1 ? batches[0]!.embeddings : stackRows(batches.map((b) => b.embeddings));
    const { ids, distances } = await search.nearest(embeddings, { signal: control.signal });
    paths.forEach((image, i) => {
      const from = i * tokensPerImage;
      const grid: TokenGrid = {
        image,
        grid: [encoder.grid[0], encoder.grid[1]],
        ids: Array.from(ids.subarray(from, from + tokensPerImage)),
        codebook: cb.fingerprint,
        encoder: encoder.descriptor.id,
        device: computedOn(encoder, backend),
        search: search.info,
      };
      if (control.withDistances) grid.distances = Array.from(distances.subarray(from, from + tokensPerImage));
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
    return { results, skipped };
  } finally {
    search.dispose();
  }
}

/** Index written beside a token data set (formats/npy-index.ts): which image each row of the
 *  .npy is, and the size and sha256 of the .npy it was written with. */
export interface TokenDatasetIndex extends DataCheck {
  images: string[];
  grid: [number, number];
  codebook: string;
  encoder: string;
  device: string;
  /** what search produced the ids (absent in indexes of older versions) */
  search?: SearchInfo;
}

/** Writes results as int32 [N, L] .npy plus `<path>.index.json`, as one pair. All rows share one
 *  grid (one encoder, one input size), which is what makes the array rectangular. */
export async function writeTokenDataset(path: string, results: TokenGrid[]): Promise<{ shape: [number, number] }> {
  const first = results[0];
  if (!first) throw new UserError('no token grids to write');
  const tokens = first.ids.length;
  const data = new Int32Array(results.length * tokens);
  results.forEach((r, i) => data.set(r.ids, i * tokens));
  const index: TokenDatasetIndex = {
    images: results.map((r) => r.image),
    grid: first.grid,
    codebook: first.codebook,
    encoder: first.encoder,
    device: first.device,
    ...(first.search && { search: first.search }),
  };
  await writeIndexedNpy(path, { shape: [results.length, tokens], dtype: 'int32', data }, index);
  return { shape: [results.length, tokens] };
}

/** Writes token grids as JSON: one object for a single image, `{results: [...]}` otherwise. */
export async function writeTokenJson(path: string, results: TokenGrid[]): Promise<void> {
  const doc = results.length === 1 ? results[0] : { results };
  await writeFileAtomic(path, JSON.stringify(doc) + '\n');
}

/** Reads token grids from a tokenize output: JSON (one grid or {results}) or a .npy data set
 *  with its index. Every grid is checked for shape and size (limits.ts) and its ids for being
 *  integers; whether they fit a codebook is checkTokensMatchCodebook's job. */
export async function readTokenGrids(path: string): Promise<TokenGrid[]> {
  return path.toLowerCase().endsWith('.npy') ? readDatasetGrids(path) : readJsonGrids(path);
}

/**
 * The one check that token grids belong to a codebook, before they are decoded or counted: made
 * with this codebook (when they name the one they were made with), grids within the size limit,
 * every id within [0, K). Used by decode, stats, the codebook panel's counts and generation.
 */
export function checkTokensMatchCodebook(cb: Codebook, grids: readonly TokenGrid[], source: string): void {
  for (const g of grids) {
    if (g.codebook && g.codebook !== cb.fingerprint) {
      throw new UserError(`${source}: these tokens were made with codebook ${g.codebook}, not with this codebook (${cb.fingerprint}); tokenize the images with it again`);
    }
    checkGridSize(g.grid, source);
    if (g.ids.length !== g.grid[0] * g.grid[1]) throw new UserError(`${source}: grid [${g.grid.join(', ')}] does not match ${g.ids.length} ids`);
    checkTokenIds(g.ids, cb.frozen.rows, source);
  }
}

async function readJsonGrids(path: string): Promise<TokenGrid[]> {
  const doc = await readJsonFile(path, 'tokens file', MAX_JSON_BYTES);
  const list = isRecord(doc) && Array.isArray(doc.results) ? doc.results : [doc];
  return list.map((g) => {
    if (!isRecord(g) || !Array.isArray(g.ids) || !Array.isArray(g.grid)) {
      throw new UserError(`${path} is not a tokenize output: expected objects with "grid" and "ids"`);
    }
    checkGridSize(g.grid, path);
    const [h, w] = g.grid;
    if (g.ids.length !== h * w) throw new UserError(`${path}: grid [${h}, ${w}] does not match ${g.ids.length} ids`);
    const bad = g.ids.find((id) => !Number.isSafeInteger(id));
    if (bad !== undefined) throw new UserError(`${path}: token id ${JSON.stringify(bad)} is not a whole number`);
    for (const key of ['image', 'codebook', 'encoder', 'device'] as const) {
      if (g[key] !== undefined && typeof g[key] !== 'string') throw new UserError(`${path}: "${key}" must be a string, found ${JSON.stringify(g[key])}`);
    }
    if (g.search !== undefined && !isSearchInfo(g.search)) throw new UserError(`${path}: "search" must be {method: "ivf" | "exact", nprobe}, found ${JSON.stringify(g.search)}`);
    return { image: '', codebook: '', encoder: '', device: '', ...g } as unknown as TokenGrid;
  });
}

async function readDatasetGrids(path: string): Promise<TokenGrid[]> {
  const { array: arr, index } = await readIndexedNpy(path, { what: 'token data set', redo: 'tokenize again', validate: datasetIndex });
  if (arr.dtype !== 'int32' || arr.shape.length !== 2) {
    throw new UserError(`${path} is not a token data set: expected int32 [N, L], found ${arr.dtype} [${arr.shape.join(', ')}]`);
  }
  const [n, tokens] = arr.shape as [number, number];
  if (index.images.length !== n) {
    throw new UserError(`${indexPathOf(path)} lists ${index.images.length} images but ${path} has ${n} rows`);
  }
  if (tokens !== index.grid[0] * index.grid[1]) {
    throw new UserError(`${path}: rows of ${tokens} tokens do not fill the grid [${index.grid.join(', ')}] of its index`);
  }
  const data = arr.data as Int32Array;
  return index.images.map((image, i) => ({
    image,
    grid: index.grid,
    ids: Array.from(data.subarray(i * tokens, (i + 1) * tokens)),
    codebook: index.codebook,
    encoder: index.encoder,
    device: index.device,
    ...(index.search && { search: index.search }),
  }));
}

function datasetIndex(doc: unknown, indexPath: string): TokenDatasetIndex {
  const ok =
    isRecord(doc) &&
    Array.isArray(doc.images) &&
    doc.images.every((i) => typeof i === 'string') &&
    Array.isArray(doc.grid) &&
    ['codebook', 'encoder', 'device'].every((k) => typeof doc[k] === 'string') &&
    (doc.search === undefined || isSearchInfo(doc.search));
  if (!ok) throw new UserError(`${indexPath} is not a token data set index: expected "images", "grid", "codebook", "encoder" and "device"`);
  checkGridSize(doc.grid as unknown[], indexPath);
  return doc as unknown as TokenDatasetIndex;
}

function isSearchInfo(x: unknown): x is SearchInfo {
  if (!isRecord(x)) return false;
  if (x.method === 'exact') return x.nprobe === null;
  return x.method === 'ivf' && Number.isSafeInteger(x.nprobe) && (x.nprobe as number) >= 1;
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

// Images -> token grids: encode each image into patch embeddings, then the nearest frozen code of
// every patch (squared L2). Indexing always uses the frozen codebook so tokens never move when the
// trainable half is refined. Also reads and writes the two token file forms: per-image JSON and a
// data set (.npy int32 [N, L] + an index of image paths).
import { promises as fs } from 'node:fs';
import type { ComputeBackend } from '../../native-gpu/backend';
import type { Codebook } from './codebook';
import type { Encoder } from './encoders/index';
import { forEachEncodedBatch, type BatchControl, type SkippedImage } from './embed';
import { UserError } from '../../common/errors';
import { writeFileAtomic } from './atomic-write';
import { readNpy, writeNpy } from './formats/npy';

export interface TokenGrid {
  image: string;
  grid: [number, number];
  ids: number[];
  codebook: string;
  encoder: string;
  device: string;
  distances?: number[];
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
}

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
  const handle = await backend.loadCodebook(cb.frozen);
  try {
    const { skipped } = await forEachEncodedBatch(
      encoder,
      images,
      async ({ images: paths, embeddings }) => {
        const { ids, distances } = await backend.nearest(handle, embeddings, { signal: control.signal });
        paths.forEach((image, i) => {
          const from = i * tokensPerImage;
          const grid: TokenGrid = {
            image,
            grid: [encoder.grid[0], encoder.grid[1]],
            ids: Array.from(ids.subarray(from, from + tokensPerImage)),
            codebook: cb.fingerprint,
            encoder: encoder.descriptor.id,
            device: backend.device,
          };
          if (control.withDistances) grid.distances = Array.from(distances.subarray(from, from + tokensPerImage));
          results.push(grid);
        });
      },
      control,
    );
    return { results, skipped };
  } finally {
    handle.dispose();
  }
}

/** Index written beside a token data set: which image each row of the .npy is. */
export interface TokenDatasetIndex {
  images: string[];
  grid: [number, number];
  codebook: string;
  encoder: string;
  device: string;
}

export function datasetIndexPath(npyPath: string): string {
  return `${npyPath}.index.json`;
}

/** Writes results as int32 [N, L] .npy plus `<path>.index.json`. All rows share one grid (one
 *  encoder, one input size), which is what makes the array rectangular. */
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
  };
  // Index first: a data set is usable only with its index, so the .npy appearing means both exist.
  await writeFileAtomic(datasetIndexPath(path), JSON.stringify(index, null, 2) + '\n');
  await writeNpy(path, { shape: [results.length, tokens], dtype: 'int32', data });
  return { shape: [results.length, tokens] };
}

/** Writes token grids as JSON: one object for a single image, `{results: [...]}` otherwise. */
export async function writeTokenJson(path: string, results: TokenGrid[]): Promise<void> {
  const doc = results.length === 1 ? results[0] : { results };
  await writeFileAtomic(path, JSON.stringify(doc) + '\n');
}

/** Reads token grids from a tokenize output: JSON (one grid or {results}) or a .npy data set
 *  with its index. Every grid is checked for shape; ids are checked against `k` when given. */
export async function readTokenGrids(path: string, k?: number): Promise<TokenGrid[]> {
  const grids = path.toLowerCase().endsWith('.npy') ? await readDatasetGrids(path) : await readJsonGrids(path);
  for (const g of grids) validateGrid(g, path, k);
  return grids;
}

async function readJsonGrids(path: string): Promise<TokenGrid[]> {
  let doc: unknown;
  try {
    doc = JSON.parse(await fs.readFile(path, 'utf8'));
  } catch (err) {
    throw new UserError(`cannot read tokens from ${path}: ${(err as Error).message}`);
  }
  const list = isRecord(doc) && Array.isArray(doc.results) ? doc.results : [doc];
  return list.map((g) => {
    if (!isRecord(g) || !Array.isArray(g.ids) || !Array.isArray(g.grid)) {
      throw new UserError(`${path} is not a tokenize output: expected objects with "grid" and "ids"`);
    }
    return g as unknown as TokenGrid;
  });
}

async function readDatasetGrids(path: string): Promise<TokenGrid[]> {
  const arr = await readNpy(path);
  if (arr.dtype !== 'int32' || arr.shape.length !== 2) {
    throw new UserError(`${path} is not a token data set: expected int32 [N, L], found ${arr.dtype} [${arr.shape.join(', ')}]`);
  }
  const [n, tokens] = arr.shape as [number, number];
  const index = await readDatasetIndex(path);
  if (index.images.length !== n) {
    throw new UserError(`${datasetIndexPath(path)} lists ${index.images.length} images but ${path} has ${n} rows`);
  }
  const data = arr.data as Int32Array;
  return index.images.map((image, i) => ({
    image,
    grid: index.grid,
    ids: Array.from(data.subarray(i * tokens, (i + 1) * tokens)),
    codebook: index.codebook,
    encoder: index.encoder,
    device: index.device,
  }));
}

async function readDatasetIndex(npyPath: string): Promise<TokenDatasetIndex> {
  const indexPath = datasetIndexPath(npyPath);
  try {
    const doc: unknown = JSON.parse(await fs.readFile(indexPath, 'utf8'));
    if (isRecord(doc) && Array.isArray(doc.images) && Array.isArray(doc.grid)) return doc as unknown as TokenDatasetIndex;
  } catch (err) {
    throw new UserError(`cannot read the index of token data set ${npyPath} (${indexPath}): ${(err as Error).message}`);
  }
  throw new UserError(`${indexPath} is not a token data set index: expected "images" and "grid"`);
}

function validateGrid(g: TokenGrid, path: string, k: number | undefined): void {
  const [h, w] = g.grid;
  if (!Number.isInteger(h) || !Number.isInteger(w) || h! < 1 || w! < 1 || g.ids.length !== h! * w!) {
    throw new UserError(`${path}: grid [${g.grid.join(', ')}] does not match ${g.ids.length} ids`);
  }
  if (k === undefined) return;
  const bad = g.ids.find((id) => !Number.isInteger(id) || id < 0 || id >= k);
  if (bad !== undefined) throw new UserError(`${path}: token id ${bad} is outside the codebook's range 0..${k - 1}`);
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

// Token files, the one module that reads and writes them (CLI tokenize, stats, decode, generate,
// prior; the extension's Tokenize Folder, Decode and panels all come here):
//   - JSON: one grid `{image, grid: [h, w], ids, codebook, encoder, device, search}`, or several
//     as `{results: [...]}`;
//   - a data set: `<name>.npy` int32 + `<name>.npy.index.json`. When every image has the same
//     grid the array is [N, L] and the index records that `grid` (the form older versions wrote
//     and read). When the grids differ (the DCT encoder keeps each photo's shape), the array is
//     [N, Lmax] with each row's ids first and the rest PADDING (-1), and the index records each
//     image's grid in `grids`: one array a PyTorch user loads whole, its mask `ids >= 0`. With
//     pooled embeddings (tokenize --pooled), `<name>.pooled.npy` float32 [N, d] beside it, written
//     with the pair and named (with its size and sha256) in the index's `pooled`.
import { checkTokenIds } from '../../../native-gpu/token-ids.js';
import type { Codebook } from './codebook.js';
import { UserError } from '../../../common/errors.js';
import { writeFileAtomic } from '../io/atomic-write.js';
import { readJsonFile } from '../io/files.js';
import { dataCheckOf, indexPathOf, readCheckedNpy, readIndexedNpy, readNpyIndex, writeIndexedNpy, type DataCheck } from '../io/formats/npy-index.js';
import { encodeNpy } from '../io/formats/npy.js';
import type { Matrix } from '../../../native-gpu/backend.js';
import { checkGridSize, MAX_JSON_BYTES } from '../core/limits.js';
import { readShardManifest, SHARD_MANIFEST } from '../io/shard-job.js';
import { commonGrid } from '../embed/embed.js';
import { promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** The name of a shard's token data set in a sharded output: `<shard name>.tokens.npy`. */
export const TOKENS_SUFFIX = '.tokens.npy';

/** What a search run was, as token files record it. nprobe is null for exact search. */
export interface SearchInfo {
  method: 'ivf' | 'exact';
  nprobe: number | null;
}

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

/** What fills a data set's rows past an image's own ids when the grids differ. */
export const PADDING = -1;

/** Index written beside a token data set (formats/npy-index.ts): which image each row of the .npy
 *  is, its grid, and the size and sha256 of the .npy it was written with. Exactly one of `grid`
 *  and `grids` is present. */
export interface TokenDatasetIndex extends DataCheck {
  images: string[];
  /** every image's grid, when they are all the same: rows of exactly h * w ids */
  grid?: [number, number];
  /** each image's grid, when they differ: rows of max(h * w) ids, padded with PADDING */
  grids?: [number, number][];
  codebook: string;
  encoder: string;
  device: string;
  /** what search produced the ids (absent in indexes of older versions) */
  search?: SearchInfo;
  /** each image's pooled embedding, in a file beside the set (tokenize --pooled) */
  pooled?: PooledRecord;
}

/** The pooled image embeddings a token data set keeps beside its tokens: float32 [N, d], row i
 *  image i's, in `file` (same folder), checked by its size and sha256. */
export interface PooledRecord extends Required<DataCheck> {
  file: string;
  d: number;
  /** the model output they are: 'image_embeds' or 'pooler_output' */
  output: string;
  /** the precision of the encoder's files, at which its text tower opens */
  precision: string;
}

/** What tokenize keeps of each image beside its tokens, rows in the results' order. */
export interface PooledEmbeddings {
  embeddings: Matrix;
  output: string;
  precision: string;
}

/** `<name>.pooled.npy` beside `<name>.npy`. */
export function pooledPathOf(npyPath: string): string {
  return `${npyPath.replace(/\.npy$/i, '')}.pooled.npy`;
}

export interface DatasetOptions {
  /** each image's pooled embedding, written beside the set and recorded in its index */
  pooled?: PooledEmbeddings;
  /** what the index records when there are no grids to take it from (a shard whose images were
   *  all skipped: an empty [0, 0] data set) */
  identity?: Pick<TokenGrid, 'codebook' | 'encoder' | 'device' | 'search'>;
  /** more fields for the index (a shard's data set: the shard, its skipped samples, their text) */
  extra?: Record<string, unknown>;
}

/** Writes results as an int32 .npy plus `<path>.index.json`, as one pair: [N, L] with the one
 *  `grid` when the grids agree, else [N, Lmax] padded with PADDING and each image's grid in
 *  `grids`. */
export async function writeTokenDataset(path: string, results: TokenGrid[], options: DatasetOptions = {}): Promise<{ shape: [number, number]; grid: [number, number] | null }> {
  const first = results[0] ?? options.identity;
  if (!first) throw new UserError('no token grids to write');
  const grid = commonGrid(results.map((r) => r.grid));
  const width = results.reduce((n, r) => Math.max(n, r.ids.length), 0); // no spread: N may be millions
  const data = new Int32Array(results.length * width).fill(PADDING);
  results.forEach((r, i) => data.set(r.ids, i * width));
  const index: TokenDatasetIndex = {
    images: results.map((r) => r.image),
    ...(grid ? { grid } : { grids: results.map((r) => r.grid) }),
    codebook: first.codebook,
    encoder: first.encoder,
    device: first.device,
    ...(first.search && { search: first.search }),
    ...options.extra,
  };
  const also: { path: string; data: Uint8Array }[] = [];
  if (options.pooled) {
    const { embeddings: m, output, precision } = options.pooled;
    if (m.rows !== results.length) throw new Error(`${m.rows} pooled embeddings for ${results.length} token grids`);
    const bytes = encodeNpy({ shape: [m.rows, m.cols], dtype: 'float32', data: m.data });
    also.push({ path: pooledPathOf(path), data: bytes });
    index.pooled = { file: basename(pooledPathOf(path)), d: m.cols, output, precision, ...dataCheckOf(bytes) };
  }
  await writeIndexedNpy(path, { shape: [results.length, width], dtype: 'int32', data }, index, also);
  return { shape: [results.length, width], grid };
}

/** Writes token grids as JSON: one object for a single image, `{results: [...]}` otherwise. */
export async function writeTokenJson(path: string, results: TokenGrid[]): Promise<void> {
  const doc = results.length === 1 ? results[0] : { results };
  await writeFileAtomic(path, JSON.stringify(doc) + '\n');
}

/** Reads token grids from a tokenize output: JSON (one grid or {results}) or a .npy data set
 *  with its index (either form). Every grid is checked for shape and size (limits.ts) and its ids
 *  for being integers; whether they fit a codebook is checkTokensMatchCodebook's job. */
export async function readTokenGrids(path: string): Promise<TokenGrid[]> {
  if (await isShardManifest(path)) return readManifestGrids(path);
  return path.toLowerCase().endsWith('.npy') ? readDatasetGrids(path) : readJsonGrids(path);
}

/** Whether `path` is a sharded tokenize output: its manifest.json, or a folder holding one (any
 *  other folder is refused as a tokens file, by the readers below). */
async function isShardManifest(path: string): Promise<boolean> {
  if (basename(path) === SHARD_MANIFEST) return true;
  if ((await fs.stat(path).catch(() => null))?.isDirectory() !== true) return false;
  return (await fs.stat(join(path, SHARD_MANIFEST)).catch(() => null)) !== null;
}

/** The token data sets of a sharded tokenize output (`--out DIR/`), shard after shard, as one;
 *  every shard must be done. */
async function readManifestGrids(path: string): Promise<TokenGrid[]> {
  return (await readManifestTokenSet(path, { partial: false })).grids;
}

/** One shard of a sharded tokenize output: where its grids lie in the whole set, or missing (not
 *  done yet: no grids). */
export interface ManifestTokenShard {
  name: string;
  /** the shard file, as the manifest records it */
  shard: string;
  first: number;
  count: number;
  missing: boolean;
  /** the shard's bytes and mtime when it was tokenized (its data set's index), when recorded */
  tokenized: { bytes: number; mtimeMs: number } | null;
  /** the parquet image column the job was told to read, when it was named */
  imageColumn?: string;
}

/** A sharded tokenize output (its folder or manifest.json) as one set: every done shard's grids
 *  in manifest order, and where each shard's lie; `partial` (default true) takes a manifest whose
 *  shards are not all done, else such a manifest is refused naming what is missing. */
export async function readManifestTokenSet(path: string, options: { partial?: boolean } = {}): Promise<{ grids: TokenGrid[]; shards: ManifestTokenShard[] }> {
  const { manifest, outputs } = await readShardManifest(path, { partial: options.partial ?? true });
  if (manifest.job !== 'tokenize') throw new UserError(`${path}: the outputs of a sharded ${manifest.job} job, not token data sets (a sharded tokenize's folder holds them)`);
  const grids: TokenGrid[] = [];
  const shards: ManifestTokenShard[] = [];
  const column = manifest.identity?.imageColumn;
  for (const [i, s] of manifest.shards.entries()) {
    const first = grids.length;
    let tokenized: ManifestTokenShard['tokenized'] = null;
    for (const file of outputs[i]!.filter((f) => f.endsWith(TOKENS_SUFFIX))) {
      const set = await readDataset(file);
      for (const g of set.grids) grids.push(g); // no spread: a shard may hold many
      const shard = (set.index as { shard?: { bytes?: unknown; mtimeMs?: unknown } }).shard;
      if (typeof shard?.bytes === 'number' && typeof shard.mtimeMs === 'number') tokenized = { bytes: shard.bytes, mtimeMs: shard.mtimeMs };
    }
    shards.push({
      name: String(s.name), shard: String(s.shard), first, count: grids.length - first, missing: s.missing === true, tokenized,
      ...(typeof column === 'string' && { imageColumn: column }),
    });
  }
  return { grids, shards };
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
  return (await readDataset(path)).grids;
}

async function readDataset(path: string): Promise<{ grids: TokenGrid[]; index: TokenDatasetIndex }> {
  const { array: arr, index } = await readIndexedNpy(path, { what: 'token data set', redo: 'tokenize again', validate: datasetIndex });
  if (arr.dtype !== 'int32' || arr.shape.length !== 2) {
    throw new UserError(`${path} is not a token data set: expected int32 [N, L], found ${arr.dtype} [${arr.shape.join(', ')}]`);
  }
  const [n, width] = arr.shape as [number, number];
  if (index.images.length !== n) {
    throw new UserError(`${indexPathOf(path)} lists ${index.images.length} images but ${path} has ${n} rows`);
  }
  const grids = index.grids ?? index.images.map(() => index.grid!);
  const longest = grids.reduce((n, [h, w]) => Math.max(n, h * w), 0);
  if (width !== longest) {
    const of = index.grid ? `the grid [${index.grid.join(', ')}]` : `the largest of the grids (${longest} tokens)`;
    throw new UserError(`${path}: rows of ${width} tokens do not fill ${of} of its index`);
  }
  const data = arr.data as Int32Array;
  const read = index.images.map((image, i) => {
    const tokens = grids[i]![0] * grids[i]![1];
    const row = data.subarray(i * width, (i + 1) * width);
    const pad = row.subarray(tokens).findIndex((id) => id !== PADDING);
    if (pad >= 0) throw new UserError(`${path}: row ${i} holds id ${row[tokens + pad]} past its ${grids[i]!.join('x')} grid, where only the padding ${PADDING} belongs`);
    return {
      image,
      grid: grids[i]!,
      ids: Array.from(row.subarray(0, tokens)),
      codebook: index.codebook,
      encoder: index.encoder,
      device: index.device,
      ...(index.search && { search: index.search }),
    };
  });
  return { grids: read, index };
}

function datasetIndex(doc: unknown, indexPath: string): TokenDatasetIndex {
  const ok =
    isRecord(doc) &&
    Array.isArray(doc.images) &&
    doc.images.every((i) => typeof i === 'string') &&
    (Array.isArray(doc.grid) !== Array.isArray(doc.grids)) &&
    ['codebook', 'encoder', 'device'].every((k) => typeof doc[k] === 'string') &&
    (doc.search === undefined || isSearchInfo(doc.search));
  if (!ok) throw new UserError(`${indexPath} is not a token data set index: expected "images", "grid" (or "grids", one per image), "codebook", "encoder" and "device"`);
  if (Array.isArray(doc.grid)) checkGridSize(doc.grid, indexPath);
  else {
    const grids = doc.grids as unknown[];
    if (grids.length !== (doc.images as unknown[]).length) throw new UserError(`${indexPath} lists ${(doc.images as unknown[]).length} images but ${grids.length} grids`);
    for (const [i, grid] of grids.entries()) {
      if (!Array.isArray(grid)) throw new UserError(`${indexPath}: grid ${i} ${JSON.stringify(grid)} is not [height, width] in whole tokens`);
      checkGridSize(grid, `${indexPath}: grid ${i}`);
    }
  }
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

function isPooledRecord(x: unknown): x is PooledRecord {
  return isRecord(x) && typeof x.file === 'string' && basename(x.file) === x.file && /\.npy$/i.test(x.file) && Number.isSafeInteger(x.d) && (x.d as number) >= 1 &&
    typeof x.output === 'string' && typeof x.precision === 'string' && Number.isSafeInteger(x.dataBytes) && typeof x.dataSha256 === 'string';
}

export interface PooledSet {
  embeddings: Matrix;
  record: PooledRecord;
  encoder: string;
}

/**
 * The pooled image embeddings a token data set keeps (tokenize --pooled), [N, d] with row i image
 * i's, and the encoder they came from; null when the set has none (a JSON tokens file, a set
 * tokenized without them). A sharded tokenize output is read as readManifestTokenSet reads it.
 */
export async function readPooledEmbeddings(path: string): Promise<PooledSet | null> {
  if (await isShardManifest(path)) return readManifestPooled(path);
  if (!path.toLowerCase().endsWith('.npy')) return null;
  const indexPath = indexPathOf(path);
  const index = datasetIndex(await readNpyIndex(path, 'token data set'), indexPath);
  if (index.pooled === undefined) return null;
  if (!isPooledRecord(index.pooled)) throw new UserError(`${indexPath}: "pooled" must be {file, d, output, precision, dataBytes, dataSha256}, found ${JSON.stringify(index.pooled)}`);
  const record = index.pooled;
  const file = join(dirname(path), record.file);
  const arr = await readCheckedNpy(file, indexPath, record, { what: 'pooled embeddings file', redo: 'tokenize again with pooled embeddings' });
  const [n, d] = arr.shape;
  if (arr.dtype !== 'float32' || arr.shape.length !== 2 || n !== index.images.length || d !== record.d) {
    throw new UserError(`${file}: expected float32 [${index.images.length}, ${record.d}] pooled embeddings (one per image of the set), found ${arr.dtype} [${arr.shape.join(', ')}]`);
  }
  return { embeddings: { rows: n!, cols: d!, data: arr.data as Float32Array }, record, encoder: index.encoder };
}

/** A sharded tokenize output's pooled embeddings as one set: every done shard's rows in manifest
 *  order, as readManifestTokenSet's grids; null unless every shard with images keeps them. The
 *  record is the first shard's (every shard's must agree on d, output and precision). */
async function readManifestPooled(path: string): Promise<PooledSet | null> {
  const { outputs } = await readShardManifest(path, { partial: true });
  const parts: PooledSet[] = [];
  for (const file of outputs.flat().filter((f) => f.endsWith(TOKENS_SUFFIX))) {
    const part = await readPooledEmbeddings(file);
    if (part) parts.push(part);
    // a shard whose samples were all skipped has no rows to keep
    else if (datasetIndex(await readNpyIndex(file, 'token data set'), indexPathOf(file)).images.length > 0) return null;
  }
  const first = parts[0];
  if (!first) return null;
  const { d, output, precision } = first.record;
  const odd = parts.find((p) => p.record.d !== d || p.record.output !== output || p.record.precision !== precision || p.encoder !== first.encoder);
  if (odd) throw new UserError(`${path}: its shards keep pooled embeddings of different models or shapes (${odd.record.file}: ${odd.record.output} d = ${odd.record.d} vs ${first.record.file}: ${output} d = ${d}); tokenize again`);
  const rows = parts.reduce((n, p) => n + p.embeddings.rows, 0);
  const data = new Float32Array(rows * d);
  let at = 0;
  for (const p of parts) {
    data.set(p.embeddings.data, at);
    at += p.embeddings.data.length;
  }
  return { embeddings: { rows, cols: d, data }, record: first.record, encoder: first.encoder };
}

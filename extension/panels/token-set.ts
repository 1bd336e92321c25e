// What the token set editor shows of a token data set: its images, each one's grid over its photo,
// and the set's code usage. A sharded tokenize output's manifest.json is one set: every done
// shard's images in manifest order (the shards not done yet named), each photo read from its
// shard by key. No 'vscode' here (the editor in token-set-editor.ts holds that side), so the
// webview tests serve the editor exactly what the extension does.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import {
  codeStats, readManifestTokenSet, readTokenGrids, shardSampleImage, SHARD_MANIFEST, UserError,
  type ManifestTokenShard, type ShardFile, type TokenGrid,
} from '../engine/index.js';
import type { TokenSetGrid, TokenSetUsage, TokenSetView } from '../../common/protocol/tokens.js';
import { photoDataUri } from './images.js';

/** The codebook a set was tokenized with, when it is at hand (its fingerprint matches). */
export interface KnownCodebook {
  file: string;
  k: number;
}

/** Code usage over every grid of the set: used codes, most used first. */
export function tokenSetUsage(grids: TokenGrid[], k: number | null): TokenSetUsage {
  let maxId = -1;
  for (const g of grids) for (const id of g.ids) if (id > maxId) maxId = id;
  if (k !== null && maxId >= k) throw new UserError(`the set holds code ${maxId}, outside its codebook (K = ${k})`);
  const counts = new Float64Array(k ?? maxId + 1);
  for (const g of grids) for (const id of g.ids) counts[id]!++;
  const stats = codeStats(counts);
  const codes = Array.from(counts.keys()).filter((c) => counts[c]! > 0).sort((a, b) => counts[b]! - counts[a]! || a - b);
  return { tokens: stats.tokens, distinct: stats.used, k, perplexity: stats.perplexity, codes, counts: codes.map((c) => counts[c]!) };
}

/** A set as the editor reads it: its grids and, for a sharded output's manifest, its shards. */
export interface TokenSet {
  grids: TokenGrid[];
  shards: ManifestTokenShard[] | null;
}

/** Reads a tokens file, or a sharded tokenize output's manifest.json as one set (shards not done
 *  yet are kept in `shards`, marked missing). */
export async function readTokenSet(file: string): Promise<TokenSet> {
  if (path.basename(file) === SHARD_MANIFEST) return readManifestTokenSet(file);
  return { grids: await readTokenGrids(file), shards: null };
}

export function tokenSetView(file: string, grids: TokenGrid[], codebook: KnownCodebook | null, shards: ManifestTokenShard[] | null = null): TokenSetView {
  const first = grids[0];
  const missing = (shards ?? []).filter((s) => s.missing).map((s) => s.name);
  if (!first && missing.length > 0) throw new UserError(`${file}: none of its ${shards!.length} shards is tokenized yet (missing: ${missing.join(', ')})`);
  if (!first) throw new UserError(`${file} holds no token grids`);
  return {
    // a manifest is named by its folder: every sharded output's is manifest.json
    file: shards ? path.join(path.basename(path.dirname(file)), path.basename(file)) : path.basename(file),
    format: shards ? 'manifest' : file.toLowerCase().endsWith('.npy') ? 'npy' : 'json',
    images: shards ? shardImageList(grids, shards) : grids.map((g, i) => ({ label: g.image ? path.basename(g.image) : `grid ${i + 1}`, path: g.image ?? '' })),
    codebook: first.codebook ?? '',
    encoder: first.encoder ?? '',
    codebookFile: codebook ? path.basename(codebook.file) : '',
    usage: tokenSetUsage(grids, codebook?.k ?? null),
    ...(shards && { shards: { total: shards.length, missing } }),
  };
}

/** A sharded set's images: each labelled by its key whole (a key is a name, not a path), titled
 *  with its shard. */
function shardImageList(grids: TokenGrid[], shards: ManifestTokenShard[]): TokenSetView['images'] {
  const images: TokenSetView['images'] = [];
  for (const s of shards) {
    for (let i = s.first; i < s.first + s.count; i++) images.push({ label: grids[i]!.image || `grid ${i + 1}`, path: `shard ${s.name}: ${grids[i]!.image}` });
  }
  return images;
}

/** One grid of the set with its photo, or why the photo is not there. */
export async function tokenSetGrid(file: string, grids: TokenGrid[], index: number, roots: string[], shards: ManifestTokenShard[] | null = null): Promise<TokenSetGrid> {
  const g = grids[index];
  if (!g) throw new UserError(`${path.basename(file)} has ${grids.length} grids; there is no grid ${index + 1}`);
  const base = { index, grid: g.grid, ids: g.ids };
  if (shards) return { ...base, ...(await shardPhoto(grids, index, shards)) };
  if (!g.image) return { ...base, image: null, missing: 'the tokens name no image' };
  const found = await findImage(g.image, [path.dirname(file), ...roots]);
  if (!found) return { ...base, image: null, missing: `${g.image} is not there any more` };
  try {
    return { ...base, image: await photoDataUri(found, g.grid) };
  } catch (err) {
    return { ...base, image: null, missing: err instanceof UserError ? err.message : String(err) };
  }
}

/** The photo of grid `index` of a sharded set, read from its shard by key (the shard as it was
 *  tokenized: same size and mtime), or why it is not there. */
async function shardPhoto(grids: TokenGrid[], index: number, shards: ManifestTokenShard[]): Promise<{ image: string | null; missing?: string }> {
  const s = shards.find((x) => index >= x.first && index < x.first + x.count)!;
  const { image: key, grid } = grids[index]!;
  const stat = await fs.stat(s.shard).catch(() => null);
  if (!stat?.isFile()) return { image: null, missing: `its shard ${s.shard} is not there any more` };
  if (s.tokenized && (stat.size !== s.tokenized.bytes || stat.mtimeMs !== s.tokenized.mtimeMs)) return { image: null, missing: `its shard ${s.shard} has changed since it was tokenized` };
  // keys may repeat in a shard: the same occurrence of the key as this grid's among the shard's
  let occurrence = 0;
  for (let i = s.first; i < index; i++) if (grids[i]!.image === key) occurrence++;
  const shard: ShardFile = { path: s.shard, name: s.name, kind: s.shard.toLowerCase().endsWith('.parquet') ? 'parquet' : 'tar' };
  try {
    const image = await shardSampleImage(shard, key, occurrence, s.imageColumn !== undefined ? { imageColumn: s.imageColumn } : {});
    return image ? { image: await photoDataUri(image, grid) } : { image: null, missing: `shard ${s.name} holds no image for ${key}` };
  } catch (err) {
    return { image: null, missing: err instanceof UserError ? err.message : String(err) };
  }
}

/** An image path as recorded: absolute as is, relative from the tokens file's folder or a workspace folder. */
async function findImage(image: string, roots: string[]): Promise<string | null> {
  const candidates = path.isAbsolute(image) ? [image] : roots.map((r) => path.resolve(r, image));
  for (const c of candidates) {
    const stat = await fs.stat(c).catch(() => null);
    if (stat?.isFile()) return c;
  }
  return null;
}

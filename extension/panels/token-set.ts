// What the token set editor shows of a token data set: its images, each one's grid over its photo,
// and the set's code usage. No 'vscode' here (the editor in token-set-editor.ts holds that side), so
// the webview tests serve the editor exactly what the extension does.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { codeStats, UserError, type TokenGrid } from '../engine/index.js';
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

export function tokenSetView(file: string, grids: TokenGrid[], codebook: KnownCodebook | null): TokenSetView {
  const first = grids[0];
  if (!first) throw new UserError(`${file} holds no token grids`);
  return {
    file: path.basename(file),
    format: file.toLowerCase().endsWith('.npy') ? 'npy' : 'json',
    images: grids.map((g, i) => ({ label: g.image ? path.basename(g.image) : `grid ${i + 1}`, path: g.image ?? '' })),
    codebook: first.codebook ?? '',
    encoder: first.encoder ?? '',
    codebookFile: codebook ? path.basename(codebook.file) : '',
    usage: tokenSetUsage(grids, codebook?.k ?? null),
  };
}

/** One grid of the set with its photo, or why the photo is not there. */
export async function tokenSetGrid(file: string, grids: TokenGrid[], index: number, roots: string[]): Promise<TokenSetGrid> {
  const g = grids[index];
  if (!g) throw new UserError(`${path.basename(file)} has ${grids.length} grids; there is no grid ${index + 1}`);
  const base = { index, grid: g.grid, ids: g.ids };
  if (!g.image) return { ...base, image: null, missing: 'the tokens name no image' };
  const found = await findImage(g.image, [path.dirname(file), ...roots]);
  if (!found) return { ...base, image: null, missing: `${g.image} is not there any more` };
  try {
    return { ...base, image: await photoDataUri(found, g.grid) };
  } catch (err) {
    return { ...base, image: null, missing: err instanceof UserError ? err.message : String(err) };
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

// Search by words over a token data set that keeps its images' pooled embeddings: images ranked
// by the cosine similarity of their pooled image embedding to a text's embedding (the model's own
// image-text score, before its learned scale and bias), and the codes the best of them share.
// The score is the encoder's: it says how well the model's vision and text towers agree on these
// images, and the tokens are shown beside it; it is not a score of the tokens themselves.
import type { Matrix } from '../../../native-gpu/backend.js';
import { UserError } from '../../../common/errors.js';

export interface TextHit {
  /** the image's row in the set */
  index: number;
  /** cosine similarity, -1 to 1 */
  score: number;
}

export interface SharedCode {
  code: number;
  /** how many of the hits hold it */
  images: number;
  /** its tokens over those hits */
  tokens: number;
}

function norm(v: Float32Array, from: number, d: number): number {
  let s = 0;
  for (let j = 0; j < d; j++) s += v[from + j]! * v[from + j]!;
  return Math.sqrt(s);
}

/** The `top` images most similar to `query` (one text embedding), best first; ties by row. */
export function rankByText(pooled: Matrix, query: Float32Array, top: number): TextHit[] {
  const d = pooled.cols;
  if (query.length !== d) {
    throw new UserError(`the text embedding has d = ${query.length} but the images' pooled embeddings d = ${d}: the text tower and the vision model do not share a space`);
  }
  const qn = norm(query, 0, d) || 1;
  const hits: TextHit[] = [];
  for (let i = 0; i < pooled.rows; i++) {
    let dot = 0;
    for (let j = 0; j < d; j++) dot += pooled.data[i * d + j]! * query[j]!;
    hits.push({ index: i, score: dot / (qn * (norm(pooled.data, i * d, d) || 1)) });
  }
  return hits.sort((a, b) => b.score - a.score || a.index - b.index).slice(0, top);
}

/** The codes most of the hits hold (then most tokens, then the lower code), at most `limit`. */
export function sharedCodes(grids: readonly { ids: readonly number[] }[], hits: readonly TextHit[], limit: number): SharedCode[] {
  const images = new Map<number, number>();
  const tokens = new Map<number, number>();
  for (const { index } of hits) {
    const ids = grids[index]!.ids;
    for (const id of ids) tokens.set(id, (tokens.get(id) ?? 0) + 1);
    for (const id of new Set(ids)) images.set(id, (images.get(id) ?? 0) + 1);
  }
  return [...images.entries()]
    .map(([code, n]) => ({ code, images: n, tokens: tokens.get(code)! }))
    .sort((a, b) => b.images - a.images || b.tokens - a.tokens || a.code - b.code)
    .slice(0, limit);
}

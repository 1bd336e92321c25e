// Scoring token grids under a prior (model.ts): the held-out likelihood.
import { UserError } from '../../../../common/errors.js';
import { chainAt, checkIds, probability, unigramProbability, type GridTokens, type TokenPrior } from './model.js';

export interface PriorScore {
  tokens: number;
  /** mean negative log-likelihood per token, nats */
  nll: number;
  perplexity: number;
  /** the same data under the prior's own (smoothed) unigram */
  unigramPerplexity: number;
}

/** Held-out likelihood of token grids under the prior. */
export function scorePrior(prior: TokenPrior, grids: GridTokens[]): PriorScore {
  let nll = 0;
  let unigramNll = 0;
  let tokens = 0;
  for (const g of grids) {
    const [h, w] = g.grid;
    checkIds(prior, g.ids);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const code = g.ids[y * w + x];
        const p = probability(prior, chainAt(prior, g.ids, h, w, y, x), code);
        // A perplexity from impossible counts would print as if nothing were wrong.
        if (!(p > 0 && p <= 1 + 1e-9)) throw new UserError(`the prior gives code ${code} at (${y}, ${x}) the probability ${p}, outside (0, 1]: its counts are inconsistent`);
        nll -= Math.log(p);
        unigramNll -= Math.log(unigramProbability(prior, code));
        tokens++;
      }
    }
  }
  if (tokens === 0) throw new UserError('no tokens to score');
  return { tokens, nll: nll / tokens, perplexity: Math.exp(nll / tokens), unigramPerplexity: Math.exp(unigramNll / tokens) };
}

// Codebook health from per-code counts, as the VQ literature reports it. The window is whatever
// the counts cover (the corpus a codebook was built on, or a tokenized data set): callers say which.
export interface CodeStats {
  /** total tokens counted */
  tokens: number;
  /** codebook size K */
  k: number;
  /** codes used at least once */
  used: number;
  /** used / K */
  utilization: number;
  /** exp(entropy) of the code-frequency distribution, natural log, 0 log 0 = 0; between 1 and K
   *  (0 when nothing was counted) */
  perplexity: number;
  /** K - used */
  dead: number;
  /** counts sorted in descending order (the Zipf / rank-frequency curve) */
  rankFrequency: number[];
}

export function codeStats(counts: ArrayLike<number>): CodeStats {
  const k = counts.length;
  let tokens = 0;
  let used = 0;
  for (let i = 0; i < k; i++) {
    const c = counts[i];
    if (!(c >= 0) || !Number.isFinite(c)) throw new Error(`codeStats: count ${c} of code ${i} is not a non-negative number`);
    tokens += c;
    if (c > 0) used++;
  }
  let entropy = 0;
  for (let i = 0; i < k; i++) {
    const c = counts[i];
    if (c > 0) {
      const p = c / tokens;
      entropy -= p * Math.log(p);
    }
  }
  return {
    tokens,
    k,
    used,
    utilization: k > 0 ? used / k : 0,
    perplexity: tokens > 0 ? Math.exp(entropy) : 0,
    dead: k - used,
    rankFrequency: Array.from(counts).sort((a, b) => b - a),
  };
}

// The log-count colour ramp of the codebook utilization heatmap. One definition shared by the
// static HTML report (rendered to PNG on the host) and the codebook panel (drawn on a canvas in
// the webview), so both show the same colour for the same count. Pure code: no Node, no DOM.

export type Rgb = readonly [number, number, number];

/** Dead codes (count 0) get a colour outside the ramp so they stand out from rare codes. */
export const DEAD_CODE_RGB: Rgb = [40, 40, 48];

// Viridis sampled at five stops: perceptually ordered and readable for colour-blind viewers.
const RAMP: readonly Rgb[] = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];

/** Position of a count on the ramp: log(1 + count) / log(1 + maxCount), in [0, 1].
 *  Log scale because code frequencies are Zipf-like: linear would paint all but a few codes dark. */
export function logCountLevel(count: number, maxCount: number): number {
  if (maxCount <= 0 || count <= 0) return 0;
  return Math.min(1, Math.log1p(count) / Math.log1p(maxCount));
}

/** Colour at position t in [0, 1] of the ramp, channels 0..255. */
export function rampColor(t: number): Rgb {
  const x = Math.max(0, Math.min(1, t)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(x));
  const f = x - i;
  const a = RAMP[i]!;
  const b = RAMP[i + 1]!;
  return [
    Math.round(a[0] + (b[0] - a[0]) * f),
    Math.round(a[1] + (b[1] - a[1]) * f),
    Math.round(a[2] + (b[2] - a[2]) * f),
  ];
}

/** Heatmap colour of one code given its count and the largest count of the codebook. */
export function countColor(count: number, maxCount: number): Rgb {
  return count <= 0 ? DEAD_CODE_RGB : rampColor(logCountLevel(count, maxCount));
}

/** Columns of the near-square layout the heatmap uses for K codes (rows = ceil(K / columns)). */
export function heatmapColumns(k: number): number {
  return Math.max(1, Math.ceil(Math.sqrt(k)));
}

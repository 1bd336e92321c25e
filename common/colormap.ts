// The log-count colour ramp of the codebook utilization heatmap. One definition shared by the
// static HTML report (rendered to PNG on the host) and the codebook panel (drawn on a canvas in
// the webview), so both show the same colour for the same count. Pure code: no Node, no DOM.

export type Rgb = readonly [number, number, number];

/**
 * Dead codes (count 0) get a colour outside the ramp, chosen against the background they are
 * drawn on: finding them is the point, so they must stand out from the background in every theme
 * (a fixed dark grey vanished on dark themes) and from the rarely used codes at the ramp's dark
 * end. Magenta is far from every viridis colour and has at least 3:1 contrast with white, VS
 * Code's dark greys and black; on a background where it would not (a custom theme's), white or
 * black, whichever contrasts more, is used instead.
 */
export const DEAD_CODE_MAGENTA: Rgb = [230, 0, 160];
/** WCAG's minimum contrast for graphics that must be seen (non-text contrast, 1.4.11). */
export const MIN_GRAPHIC_CONTRAST = 3;

export function deadCodeColor(background: Rgb): Rgb {
  if (contrastRatio(DEAD_CODE_MAGENTA, background) >= MIN_GRAPHIC_CONTRAST) return DEAD_CODE_MAGENTA;
  return contrastRatio([255, 255, 255], background) >= contrastRatio([0, 0, 0], background) ? [255, 255, 255] : [0, 0, 0];
}

/** WCAG relative luminance of an sRGB colour (channels 0..255). */
export function relativeLuminance([r, g, b]: Rgb): number {
  const lin = (c: number): number => {
    const s = c / 255;
    return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}

/** WCAG contrast ratio of two colours, 1 (same) to 21 (black on white). */
export function contrastRatio(a: Rgb, b: Rgb): number {
  const [hi, lo] = [relativeLuminance(a), relativeLuminance(b)].sort((x, y) => y - x) as [number, number];
  return (hi + 0.05) / (lo + 0.05);
}

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

/** Heatmap colour of one code given its count and the largest count of the codebook; `dead`
 *  is deadCodeColor(the background the heatmap is drawn on). */
export function countColor(count: number, maxCount: number, dead: Rgb): Rgb {
  return count <= 0 ? dead : rampColor(logCountLevel(count, maxCount));
}

/** Heatmap colour of a code's training drift (its trainable row's distance from its frozen row):
 *  the same ramp, linear from 0 (unmoved) to the largest drift of the codebook. */
export function driftColor(distance: number, maxDistance: number): Rgb {
  return rampColor(maxDistance > 0 ? distance / maxDistance : 0);
}

/** Columns of the near-square layout the heatmap uses for K codes (rows = ceil(K / columns)). */
export function heatmapColumns(k: number): number {
  return Math.max(1, Math.ceil(Math.sqrt(k)));
}

// Colours drawn on canvases. Panels take their chrome from VS Code theme variables; data colours
// come from the engine's log-count ramp (viridis), the same one the static HTML report uses, so
// the panel and the report agree and every theme reads the same.
import type { Rgb } from '../../common/colormap.js';

export { countColor, driftColor, rampColor, deadCodeColor, heatmapColumns, type Rgb } from '../../common/colormap.js';

/** Any CSS colour as [r, g, b] (drawn on a 1 x 1 canvas and read back: theme colours come as #rgb,
 *  #rrggbbaa, rgb()…), composited on `under` when it is translucent. */
export function cssToRgb(color: string, under: Rgb = [0, 0, 0]): Rgb {
  const ctx = document.createElement('canvas').getContext('2d', { willReadFrequently: true })!;
  ctx.fillStyle = `rgb(${under.join(', ')})`;
  ctx.fillRect(0, 0, 1, 1);
  ctx.fillStyle = color;
  ctx.fillRect(0, 0, 1, 1);
  const [r, g, b] = ctx.getImageData(0, 0, 1, 1).data;
  return [r!, g!, b!];
}

/** A stable, well-spread colour per code id (for token-grid overlays). */
export function codeColor(id: number): Rgb {
  // integer hash (Murmur3 finalizer) -> hue; fixed saturation/lightness keep overlays legible
  let h = id | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return hslToRgb((h >>> 0) / 0x100000000, 0.65, 0.55);
}

function hslToRgb(h: number, s: number, l: number): Rgb {
  const q = l < 0.5 ? l * (1 + s) : l + s - l * s;
  const p = 2 * l - q;
  const channel = (t: number): number => {
    const u = t < 0 ? t + 1 : t > 1 ? t - 1 : t;
    const v = u < 1 / 6 ? p + (q - p) * 6 * u : u < 1 / 2 ? q : u < 2 / 3 ? p + (q - p) * (2 / 3 - u) * 6 : p;
    return Math.round(v * 255);
  };
  return [channel(h + 1 / 3), channel(h), channel(h - 1 / 3)];
}

export const css = (c: Rgb, alpha = 1): string => `rgba(${c[0]}, ${c[1]}, ${c[2]}, ${alpha})`;

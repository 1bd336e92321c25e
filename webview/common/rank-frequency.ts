// Rank-frequency (Zipf) plot of code counts on log-log axes. Used codes only: a dead code has
// no place on a log axis; the summary reports how many there are.
import { fitBackingStore, themeColor } from './viewport.js';

export function drawRankFrequency(canvas: HTMLCanvasElement, counts: number[]): void {
  const dpr = fitBackingStore(canvas);
  const ctx = canvas.getContext('2d')!;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  ctx.clearRect(0, 0, w, h);
  const sorted = Float64Array.from(counts.filter((c) => c > 0)).sort().reverse();
  const fg = themeColor('--vscode-descriptionForeground', '#999');
  ctx.font = `11px ${themeColor('--vscode-font-family', 'sans-serif')}`;
  ctx.fillStyle = fg;
  if (sorted.length === 0) {
    ctx.fillText('no code is used in this data set', 8, h / 2);
    return;
  }
  const pad = { l: 44, r: 10, t: 20, b: 34 };
  const maxRank = Math.log10(Math.max(10, sorted.length));
  const maxCount = Math.ceil(Math.log10(Math.max(10, sorted[0]!)));
  const X = (logRank: number): number => pad.l + (logRank / maxRank) * (w - pad.l - pad.r);
  const Y = (logCount: number): number => h - pad.b - (logCount / maxCount) * (h - pad.t - pad.b);

  // axes and decade ticks
  ctx.strokeStyle = themeColor('--vscode-editorWidget-border', '#555');
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(pad.l, pad.t);
  ctx.lineTo(pad.l, h - pad.b);
  ctx.lineTo(w - pad.r, h - pad.b);
  ctx.stroke();
  ctx.textAlign = 'center';
  for (let e = 0; e <= Math.floor(maxRank); e++) ctx.fillText(`1e${e}`, X(e), h - pad.b + 14);
  ctx.textAlign = 'right';
  for (let e = 0; e <= maxCount; e++) ctx.fillText(`1e${e}`, pad.l - 5, Y(e) + 4);
  ctx.textAlign = 'right';
  ctx.fillText('rank', w - pad.r, h - 4); // below the tick labels: a right-end tick would collide
  ctx.textAlign = 'left';
  ctx.fillText('count', 4, 10);

  // one point per horizontal pixel: ranks are log-spaced, so sample rank = 10^(x)
  ctx.strokeStyle = themeColor('--vscode-charts-blue', '#3794ff');
  ctx.lineWidth = 2;
  ctx.beginPath();
  const steps = Math.max(2, Math.round(w - pad.l - pad.r));
  for (let s = 0; s <= steps; s++) {
    const logRank = (s / steps) * Math.log10(sorted.length);
    const rank = Math.min(sorted.length, Math.round(10 ** logRank));
    const px = X(logRank);
    const py = Y(Math.log10(sorted[rank - 1]!));
    if (s === 0) ctx.moveTo(px, py);
    else ctx.lineTo(px, py);
  }
  ctx.stroke();
}

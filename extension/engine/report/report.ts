// The demo's static HTML report: one self-contained file (images as data: URIs, inline CSS and
// SVG, no scripts, nothing fetched) that can be mailed or attached to an issue and still open.
// Every metric is written as `data-metric="name" data-value="<exact number>"` so tools (and the
// tests) can read back exactly what was printed.
import type { BuildSummary } from '../build/build.js';
import type { CodeStats } from '../codebook/stats.js';
import { encodePng, type RgbImage } from '../embed/image.js';
import { countColor, deadCodeColor, heatmapColumns } from '../../../common/colormap.js';
import { meanPsnr } from './quality.js';
import { PRIOR_NEIGHBOURS } from '../generate/prior/index.js';

export interface ReportSample {
  name: string;
  /** the encoder input (for the DCT encoder, the photo's shape with its short side at 224) */
  input: RgbImage;
  reconstruction: RgbImage;
  grid: [number, number];
  ids: number[];
  psnr: number;
}

/** Grids sampled from a token prior fitted on the samples' tokens, decoded with the atlas. */
export interface ReportGenerated {
  order: number;
  /** the prior's perplexity on the tokens it was fitted on, and the unigram's */
  perplexity: number;
  unigramPerplexity: number;
  grids: { seed: number; grid: [number, number]; image: RgbImage }[];
}

export interface ReportInput {
  title: string;
  build: BuildSummary;
  /** stats of the tokens of the samples */
  stats: CodeStats;
  /** per-code token counts behind `stats`, [K] */
  counts: ArrayLike<number>;
  samples: ReportSample[];
  generated?: ReportGenerated;
  createdAt: string;
}

/** Widest the heatmap gets; each code is a square of at least one pixel. */
const HEATMAP_TARGET_PX = 512;
/** Pixels beyond the last code in the near-square layout. */
const HEATMAP_FILL = 0.92;
/** The page's background (the CSS below): dead codes get the colour that stands out on it. */
const REPORT_BACKGROUND = [255, 255, 255] as const;

/** Utilization heatmap: code i at (i % columns, i / columns), coloured by the shared log ramp. */
export function renderHeatmap(counts: ArrayLike<number>): RgbImage {
  const k = counts.length;
  const columns = heatmapColumns(k);
  const rows = Math.ceil(k / columns);
  const cell = Math.max(1, Math.floor(HEATMAP_TARGET_PX / columns));
  const width = columns * cell;
  const height = rows * cell;
  const plane = width * height;
  const data = new Float32Array(3 * plane).fill(HEATMAP_FILL);
  let max = 0;
  for (let i = 0; i < k; i++) max = Math.max(max, counts[i]!);
  const dead = deadCodeColor(REPORT_BACKGROUND);
  for (let code = 0; code < k; code++) {
    const rgb = countColor(counts[code]!, max, dead);
    const x0 = (code % columns) * cell;
    const y0 = Math.floor(code / columns) * cell;
    for (let y = y0; y < y0 + cell; y++) {
      for (let x = x0; x < x0 + cell; x++) {
        for (let c = 0; c < 3; c++) data[c * plane + y * width + x] = rgb[c]! / 255;
      }
    }
  }
  return { data, width, height };
}

/** Log-log rank-frequency (Zipf) plot of the non-zero counts, as inline SVG. */
export function rankFrequencySvg(rankFrequency: number[]): string {
  const counts = rankFrequency.filter((c) => c > 0);
  const [w, h, left, bottom, pad] = [480, 280, 48, 32, 12];
  const frame = `<rect x="${left}" y="${pad}" width="${w - left - pad}" height="${h - bottom - pad}" class="frame"/>`;
  if (counts.length === 0) {
    return `<svg class="plot" viewBox="0 0 ${w} ${h}" role="img" aria-label="rank-frequency: no tokens">${frame}</svg>`;
  }
  const maxRank = Math.log10(Math.max(counts.length, 10));
  const maxCount = Math.log10(Math.max(counts[0]!, 10));
  const x = (rank: number) => left + (Math.log10(rank) / maxRank) * (w - left - pad);
  const y = (count: number) => h - bottom - (Math.log10(count) / maxCount) * (h - bottom - pad);
  const points = counts.map((c, i) => `${x(i + 1).toFixed(1)},${y(c).toFixed(1)}`).join(' ');
  const ticks: string[] = [];
  for (let e = 0; e <= Math.floor(maxRank); e++) {
    ticks.push(`<text x="${x(10 ** e).toFixed(1)}" y="${h - bottom + 16}" class="tick" text-anchor="middle">1e${e}</text>`);
  }
  for (let e = 0; e <= Math.floor(maxCount); e++) {
    ticks.push(`<text x="${left - 6}" y="${(y(10 ** e) + 4).toFixed(1)}" class="tick" text-anchor="end">1e${e}</text>`);
  }
  return (
    `<svg class="plot" viewBox="0 0 ${w} ${h}" role="img" aria-label="rank-frequency of ${counts.length} used codes">` +
    `${frame}${ticks.join('')}` +
    `<polyline points="${points}" class="curve"/>` +
    `<text x="${(w + left) / 2}" y="${h - 2}" class="label" text-anchor="middle">rank</text>` +
    `<text x="12" y="${(h - bottom) / 2}" class="label" text-anchor="middle" transform="rotate(-90 12 ${(h - bottom) / 2})">count</text>` +
    `</svg>`
  );
}

/** Largest side of the samples' pictures on the page, and of the generated ones, in CSS pixels. */
const SAMPLE_PX = 448;
const GENERATED_PX = 224;

/** `style` giving an image its own aspect ratio on the page, its longer side `box` CSS pixels. */
function shownAt(img: RgbImage, box: number): string {
  const scale = box / Math.max(img.width, img.height);
  return `width:${Math.round(img.width * scale)}px;height:${Math.round(img.height * scale)}px`;
}

/** The image with its token ids written over the patches they stand for. */
function tokenGridFigure(imageUri: string, sample: ReportSample): string {
  const [gh, gw] = sample.grid;
  const cw = sample.input.width / gw;
  const ch = sample.input.height / gh;
  const lines: string[] = [];
  for (let c = 1; c < gw; c++) lines.push(`M${c * cw} 0V${sample.input.height}`);
  for (let r = 1; r < gh; r++) lines.push(`M0 ${r * ch}H${sample.input.width}`);
  const labels = sample.ids
    .map((id, i) => {
      const cx = ((i % gw) + 0.5) * cw;
      const cy = (Math.floor(i / gw) + 0.5) * ch;
      return `<text x="${cx}" y="${cy}">${id}</text>`;
    })
    .join('');
  return (
    `<div class="tokens" style="${shownAt(sample.input, SAMPLE_PX)}"><img src="${imageUri}" alt="${escapeHtml(sample.name)} with token ids">` +
    `<svg viewBox="0 0 ${sample.input.width} ${sample.input.height}">` +
    `<path d="${lines.join('')}" class="gridlines"/>` +
    // Sized to the cell so up to 5 digits fit; SVG scales it with the image.
    `<g class="ids" font-size="${(Math.min(cw, ch) * 0.32).toFixed(2)}">${labels}</g></svg></div>`
  );
}

async function pngDataUri(img: RgbImage): Promise<string> {
  return `data:image/png;base64,${Buffer.from(await encodePng(img)).toString('base64')}`;
}

export function formatDb(db: number): string {
  return Number.isFinite(db) ? `${db.toFixed(2)} dB` : '∞ dB';
}

function metric(name: string, label: string, value: number, shown: string): string {
  return `<div><dt>${label}</dt><dd data-metric="${name}" data-value="${value}">${shown}</dd></div>`;
}

export async function renderReport(input: ReportInput): Promise<string> {
  const { build, stats } = input;
  const heatmapUri = await pngDataUri(renderHeatmap(input.counts));
  const rows: string[] = [];
  for (const s of input.samples) {
    const inputUri = await pngDataUri(s.input);
    const reconUri = await pngDataUri(s.reconstruction);
    rows.push(
      `<section class="sample" data-image="${escapeHtml(s.name)}">` +
        `<h3>${escapeHtml(s.name)}</h3><div class="row">` +
        `<figure>${tokenGridFigure(inputUri, s)}<figcaption>input, ${s.grid[0]}x${s.grid[1]} tokens</figcaption></figure>` +
        `<figure><img class="reconstruction" style="${shownAt(s.reconstruction, SAMPLE_PX)}" src="${reconUri}" alt="reconstruction of ${escapeHtml(s.name)}">` +
        `<figcaption>reconstruction, PSNR <span data-metric="psnr" data-value="${s.psnr}">${formatDb(s.psnr)}</span></figcaption></figure>` +
        `</div></section>`,
    );
  }
  const mean = meanPsnr(input.samples.map((s) => s.psnr));
  const generated = input.generated ? await generatedSection(input.generated, input.samples.length) : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(input.title)}</title>
<style>${STYLE}</style></head>
<body>
<h1>${escapeHtml(input.title)}</h1>
<p class="sub">${escapeHtml(input.createdAt)} · ${escapeHtml(build.device)} · codebook ${escapeHtml(build.fingerprint)}</p>
<h2>Codebook</h2>
<dl class="metrics">
${metric('k', 'codes (K)', build.k, String(build.k))}
${metric('d', 'dimension (d)', build.d, String(build.d))}
${metric('iterations', 'k-means iterations', build.iterations, String(build.iterations))}
${metric('inertia', 'inertia', build.inertia, build.inertia.toPrecision(6))}
${metric('seconds', 'build time', build.seconds, `${build.seconds.toFixed(2)} s`)}
</dl>
<h2>Usage by the ${input.samples.length} sample images</h2>
<dl class="metrics">
${metric('tokens', 'tokens', stats.tokens, String(stats.tokens))}
${metric('used', 'codes used', stats.used, String(stats.used))}
${metric('utilization', 'utilization', stats.utilization, `${(stats.utilization * 100).toFixed(1)}%`)}
${metric('perplexity', 'perplexity', stats.perplexity, stats.perplexity.toFixed(1))}
${metric('dead', 'dead codes', stats.dead, String(stats.dead))}
${metric('meanPsnr', 'mean PSNR', mean, formatDb(mean))}
</dl>
<div class="row">
<figure><img id="heatmap" class="heatmap" src="${heatmapUri}" alt="utilization heatmap of ${stats.k} codes">
<figcaption>utilization heatmap: code i at row i / ${heatmapColumns(stats.k)}, colour = log(1 + count); magenta = dead</figcaption></figure>
<figure>${rankFrequencySvg(stats.rankFrequency)}<figcaption>rank-frequency (log-log)</figcaption></figure>
</div>
<h2>Token grids and reconstructions</h2>
${rows.join('\n')}
${generated}
</body></html>
`;
}

async function generatedSection(g: ReportGenerated, images: number): Promise<string> {
  const figures: string[] = [];
  for (const x of g.grids) {
    figures.push(`<figure><img class="generated" style="${shownAt(x.image, GENERATED_PX)}" src="${await pngDataUri(x.image)}" alt="grid sampled with seed ${x.seed}">` +
      `<figcaption>seed ${x.seed}, ${x.grid[0]}x${x.grid[1]} tokens</figcaption></figure>`);
  }
  return `<h2>Generated</h2>
<p class="note">Token grids sampled from a prior (order ${g.order}: each code given its ${PRIOR_NEIGHBOURS.slice(0, g.order - 1).map((n) => n[2]).join(' and ') || 'no'}
neighbours, interpolated Witten-Bell smoothing) fitted on the ${images} sample images' tokens, decoded with the atlas.</p>
<dl class="metrics">
${metric('priorPerplexity', 'prior perplexity (its own tokens)', g.perplexity, g.perplexity.toFixed(1))}
${metric('unigramPerplexity', 'unigram perplexity', g.unigramPerplexity, g.unigramPerplexity.toFixed(1))}
</dl>
<div class="row">${figures.join('')}</div>`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE = `
body{font:14px/1.5 system-ui,sans-serif;margin:24px auto;max-width:1040px;padding:0 16px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0}.sub{color:#59636e;margin-top:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #d1d9e0}
h3{font-size:14px;margin:16px 0 6px}
.metrics{display:flex;flex-wrap:wrap;gap:8px 28px;margin:8px 0}.metrics dt{color:#59636e;font-size:12px}.metrics dd{margin:0;font-size:18px;font-variant-numeric:tabular-nums}
.row{display:flex;flex-wrap:wrap;gap:20px;align-items:flex-start}figure{margin:0}figcaption{color:#59636e;font-size:12px;max-width:448px}
.heatmap{image-rendering:pixelated;width:448px;border:1px solid #d1d9e0}
.plot{width:448px;height:auto}.plot .frame{fill:none;stroke:#d1d9e0}.plot .curve{fill:none;stroke:#3b528b;stroke-width:2}
.plot .tick,.plot .label{font-size:11px;fill:#59636e}
.tokens{position:relative}.tokens img,.tokens svg{position:absolute;inset:0;width:100%;height:100%}
.tokens img,.reconstruction,.generated{image-rendering:pixelated}
.note{color:#59636e;max-width:720px}
.gridlines{stroke:rgba(255,255,255,.45);stroke-width:.4;fill:none}
.ids text{text-anchor:middle;dominant-baseline:central;fill:#fff;stroke:rgba(0,0,0,.75);stroke-width:.6px;paint-order:stroke;font-family:ui-monospace,monospace}
`;

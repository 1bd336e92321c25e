// The demo on the bundled sample photos, and the pieces of its report.
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import type { ComputeBackend } from '../../native-gpu/backend.js';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import { runDemo, demoK, defaultSamplesDir } from '../../extension/engine/report/demo.js';
import { renderHeatmap, rankFrequencySvg } from '../../extension/engine/report/report.js';
import { contrastRatio, countColor, deadCodeColor } from '../../common/colormap.js';
import { readCodebook } from '../../extension/engine/codebook/codebook.js';
import { openEncoder } from '../../extension/engine/embed/encoders/index.js';
import { psnr } from '../../extension/engine/report/quality.js';
import { encodePng, listImages } from '../../extension/engine/embed/image.js';

let backend: ComputeBackend;
let dir: string;

before(async () => {
  backend = await createCpuBackend();
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-demo-'));
});
after(async () => {
  await backend.dispose();
  await fs.rm(dir, { recursive: true, force: true });
});

/** `data-metric="name" data-value="x"` values of the report, by name (first occurrence). */
function reportMetrics(html: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const [, name, value] of html.matchAll(/data-metric="(\w+)" data-value="([^"]*)"/g)) {
    if (!m.has(name!)) m.set(name!, Number(value));
  }
  return m;
}

test('demo builds, tokenizes, decodes and reports on the bundled samples', async () => {
  const samples = await listImages(defaultSamplesDir());
  assert.ok(samples.length >= 2, `${samples.length} samples`);
  const r = await runDemo(path.join(dir, 'out'), backend);

  // K from the fewest tokens the samples can give: 196 each (a square photo's 14 x 14)
  assert.equal(r.summary.k, demoK(samples.length * 196));
  const cb = await readCodebook(r.codebook);
  assert.equal(cb.fingerprint, r.summary.fingerprint);
  const tokens = JSON.parse(await fs.readFile(r.tokens, 'utf8')) as { results: { image: string; grid: [number, number]; ids: number[] }[] };
  assert.equal(tokens.results.length, samples.length);
  // Each sample keeps its shape: the 224 x 149 photos are 14 x 21 tokens, the square one 14 x 14.
  const shapes = new Map<string, [number, number]>();
  for (const file of samples) {
    const { width, height } = await sharp(file).metadata();
    shapes.set(file, [width!, height!]);
  }
  for (const t of tokens.results) {
    const [w, h] = shapes.get(t.image)!;
    assert.deepEqual(t.grid, w === h ? [14, 14] : w > h ? [14, Math.round((224 * w) / h / 16)] : [Math.round((224 * h) / w / 16), 14], t.image);
  }
  assert.ok(new Set(tokens.results.map((t) => t.grid.join('x'))).size > 1, 'samples of several shapes');
  assert.equal(r.stats.tokens, tokens.results.reduce((n, t) => n + t.ids.length, 0));

  // Reconstructions must carry the picture: better than the best flat image (each input's mean).
  const encoder = await openEncoder('dct', backend);
  try {
    for (const s of r.samples) {
      const input = await encoder.load(s.image);
      const flat = new Float32Array(input.data.length);
      const plane = input.width * input.height;
      for (let c = 0; c < 3; c++) {
        const channel = input.data.subarray(c * plane, (c + 1) * plane);
        flat.fill(channel.reduce((a, v) => a + v, 0) / plane, c * plane, (c + 1) * plane);
      }
      const baseline = psnr(input, { ...input, data: flat });
      assert.ok(s.psnr > baseline + 3, `${s.image}: ${s.psnr} dB vs flat ${baseline} dB`);
    }
  } finally {
    await encoder.dispose();
  }

  const html = await fs.readFile(r.report, 'utf8');
  // Self-contained: nothing fetched from anywhere.
  assert.doesNotMatch(html, /(src|href)="(?!data:)/);
  assert.doesNotMatch(html, /<script|<link|url\(/i);
  assert.match(html, /<img id="heatmap" class="heatmap" src="data:image\/png;base64,/);
  assert.equal(html.match(/class="reconstruction" style="[^"]*" src="data:image\/png;base64,/g)?.length, samples.length);
  assert.equal(html.match(/<section class="sample"/g)?.length, samples.length);
  const metrics = reportMetrics(html);
  assert.equal(metrics.get('utilization'), r.stats.utilization);
  assert.equal(metrics.get('perplexity'), r.stats.perplexity);
  assert.equal(metrics.get('k'), r.summary.k);
  assert.equal(metrics.get('meanPsnr'), r.meanPsnr);
  const psnrs = [...html.matchAll(/data-metric="psnr" data-value="([^"]*)"/g)].map((m) => Number(m[1]));
  assert.deepEqual(psnrs, r.samples.map((s) => s.psnr));
  // Every picture of a sample is shown at its own ratio (the token grid over the input, the
  // reconstruction): its longer side 448 px.
  const shown = (cls: string) => [...html.matchAll(new RegExp(`class="${cls}" style="width:(\\d+)px;height:(\\d+)px"`, 'g'))].map((m) => [Number(m[1]), Number(m[2])]);
  const expectedShown = tokens.results.map((t) => {
    const [gh, gw] = t.grid;
    return gw >= gh ? [448, Math.round((448 * gh) / gw)] : [Math.round((448 * gw) / gh), 448];
  });
  assert.deepEqual(shown('tokens'), expectedShown);
  assert.deepEqual(shown('reconstruction'), expectedShown);

  // "Generated": grids sampled from a prior fitted on the samples' tokens, through the atlas, at
  // the samples' most common grid
  assert.deepEqual(r.generated.map((g) => g.seed), [0, 1, 2, 3]);
  for (const g of r.generated) assert.deepEqual(g.grid, [14, 21]);
  const generated = [...html.matchAll(/class="generated" style="[^"]*" src="(data:image\/png;base64,[^"]+)"/g)].map((m) => m[1]!);
  assert.equal(generated.length, 4);
  assert.equal(new Set(generated).size, 4, 'each seed draws another grid');
  const first = await sharp(Buffer.from(generated[0]!.split(',')[1]!, 'base64')).metadata();
  assert.deepEqual([first.width, first.height], [21 * 16, 14 * 16]);
  assert.deepEqual(shown('generated'), [0, 1, 2, 3].map(() => [224, Math.round((224 * 14) / 21)]));
  assert.ok(metrics.get('priorPerplexity')! < metrics.get('unigramPerplexity')!, 'the 2-D context helps on its own tokens');
});

test('demoK keeps at least ~4 vectors per code and at most 256 codes', () => {
  assert.equal(demoK(6 * 196), 256);
  assert.equal(demoK(2 * 196), 64);
  assert.equal(demoK(100_000), 256);
  assert.equal(demoK(3), 1);
});

test('the heatmap paints each code with the shared log-count ramp, dead codes apart', async () => {
  const counts = [0, 1, 10, 100, 1000, 0, 5];
  const img = renderHeatmap(counts);
  const png = await sharp(Buffer.from(await encodePng(img))).raw().toBuffer({ resolveWithObject: true });
  const { width, channels } = png.info;
  const columns = 3; // ceil(sqrt(7))
  const cell = width / columns;
  counts.forEach((count, code) => {
    const x = (code % columns) * cell + Math.floor(cell / 2);
    const y = Math.floor(code / columns) * cell + Math.floor(cell / 2);
    const at = (y * width + x) * channels;
    const pixel = [png.data[at], png.data[at + 1], png.data[at + 2]];
    assert.deepEqual(pixel, [...countColor(count, 1000, deadCodeColor([255, 255, 255]))], `code ${code}`);
  });
  // dead codes stand out on the report's white page
  assert.ok(contrastRatio(countColor(0, 1000, deadCodeColor([255, 255, 255])), [255, 255, 255]) >= 3);
  assert.notDeepEqual(countColor(1, 1000, [0, 0, 0]), countColor(1000, 1000, [0, 0, 0]));
});

test('the rank-frequency plot has one point per used code', () => {
  const svg = rankFrequencySvg([50, 20, 5, 1, 0, 0]);
  const points = svg.match(/points="([^"]*)"/)![1]!.trim().split(' ');
  assert.equal(points.length, 4);
  const ys = points.map((p) => Number(p.split(',')[1]));
  // Counts fall with rank, so the curve goes down the page (SVG y grows downward).
  for (let i = 1; i < ys.length; i++) assert.ok(ys[i]! > ys[i - 1]!);
});

test('a hostile file name comes out of the report escaped: no tag, attribute or script of its own', async () => {
  const hostile = '<img src=x onerror=alert(1)>.png';
  const samples = path.join(dir, 'hostile-samples');
  await fs.mkdir(samples);
  await fs.copyFile(path.join(defaultSamplesDir(), (await fs.readdir(defaultSamplesDir())).find((n) => n.endsWith('.jpg'))!), path.join(samples, 'plain.jpg'));
  await sharp(path.join(__dirname, '../fixtures/images/chelsea.png')).png().toFile(path.join(samples, hostile));
  const r = await runDemo(path.join(dir, 'hostile-out'), backend, {}, { samplesDir: samples });
  assert.deepEqual(r.samples.map((s) => path.basename(s.image)).sort(), [hostile, 'plain.jpg'].sort());
  const html = await fs.readFile(r.report, 'utf8');
  const escaped = '&#60;img src=x onerror=alert(1)&#62;.png';
  assert.ok(!html.includes(hostile), 'the raw name appears nowhere');
  assert.ok(html.includes(`<h3>${escaped}</h3>`), 'the heading shows the name as text');
  assert.ok(html.includes(`data-image="${escaped}"`));
  assert.ok(html.includes(`alt="${escaped} with token ids"`));
  // Every image tag is one of the report's own: a data: URI, and no attribute beyond these.
  const tags = [...html.matchAll(/<img\b([^>]*)>/g)].map((m) => m[1]!);
  assert.ok(tags.length >= 1 + 2 * r.samples.length, `${tags.length} images`);
  for (const attributes of tags) {
    const names = [...attributes.matchAll(/\s([\w-]+)="[^"]*"/g)].map((m) => m[1]!);
    assert.equal(attributes.replace(/\s[\w-]+="[^"]*"/g, '').trim(), '', `unquoted attributes in <img${attributes}>`);
    assert.ok(names.every((n) => ['src', 'alt', 'class', 'id', 'width', 'height', 'title', 'style'].includes(n)), `attributes ${names.join(', ')}`);
    // the one style the report sets: the picture's size at its own ratio
    for (const [, style] of attributes.matchAll(/\sstyle="([^"]*)"/g)) assert.match(style!, /^width:\d+px;height:\d+px$/);
    assert.match(attributes, /\ssrc="data:image\/png;base64,/);
  }
  assert.doesNotMatch(html, /<script\b/i);
  // Every attribute value is quoted and free of raw quotes and angle brackets.
  for (const [, value] of html.matchAll(/=\s*"([^"]*)"/g)) assert.doesNotMatch(value!, /[<>]/);
});

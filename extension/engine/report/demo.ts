// The demo job: the whole pipeline on the bundled sample photos with the built-in DCT encoder
// (no model weights needed): build a codebook, tokenize every sample, decode the tokens back to
// pixels, measure PSNR, and write a self-contained HTML report beside the codebook and tokens.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import type { ComputeBackend } from '../../../native-gpu/backend.js';
import { decodeTokens } from '../generate/atlas.js';
import { buildCodebook, type BuildProgress, type BuildSummary } from '../build/build.js';
import { readCodebook, type Codebook } from '../codebook/codebook.js';
import { openEncoder, type Encoder } from '../embed/encoders/index.js';
import { throwIfCancelled, UserError } from '../../../common/errors.js';
import { writeFileAtomic } from '../io/atomic-write.js';
import { stepsOf, type ProgressEvent } from '../core/progress.js';
import { listImages } from '../embed/image.js';
import { meanPsnr, psnr } from './quality.js';
import { renderReport, type ReportGenerated, type ReportSample } from './report.js';
import { fitPrior, samplePriorGrid, scorePrior } from '../generate/prior/index.js';
import { DEFAULTS } from '../core/defaults.js';
import { codeStats, type CodeStats } from '../codebook/stats.js';
import { tokenizeImages } from '../search/tokenize.js';
import { writeTokenJson, type TokenGrid } from '../codebook/token-files.js';

export interface DemoProgress extends ProgressEvent {
  phase: BuildProgress['phase'] | 'tokenize' | 'decode' | 'generate' | 'report';
}

export interface DemoControl {
  signal?: AbortSignal;
  onProgress?: (e: DemoProgress) => void;
}

export interface DemoOptions {
  /** folder of sample images; default: media/samples of this installation */
  samplesDir?: string;
}

export interface DemoResult {
  report: string;
  codebook: string;
  tokens: string;
  summary: BuildSummary;
  /** usage of the codebook by the samples' tokens (what the report shows) */
  stats: CodeStats;
  samples: { image: string; psnr: number }[];
  meanPsnr: number;
  /** the grids of the report's "Generated" section */
  generated: { seed: number; grid: [number, number] }[];
}

export const DEMO_ENCODER = 'dct';
const DEMO_LAMBDA = 0.1;
const DEMO_ITERATIONS = 20;
const DEMO_SEED = 0;
const DEMO_MAX_K = 256;
/** grids the report samples from a prior fitted on the samples' tokens (seeds 0, 1, ...) */
const DEMO_GENERATED = 4;

/** K for the demo: at most 256, and at least ~4 vectors per code so k-means has something to
 *  average (a power of two, as codebook sizes conventionally are). */
export function demoK(vectors: number): number {
  return Math.min(DEMO_MAX_K, 2 ** Math.floor(Math.log2(Math.max(1, vectors / 4))));
}

/** media/samples of this installation: found walking up from this file, which sits at
 *  extension/engine/report/ in the sources and at dist/ in the bundle. */
export function defaultSamplesDir(): string {
  let dir = __dirname;
  for (let up = 0; up < 4; up++) {
    const candidate = path.join(dir, 'media', 'samples');
    if (existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  throw new UserError('the bundled sample images (media/samples) were not found next to this installation');
}

/** The demo's codebook, built from the `images` sample photos in `samplesDir` into `out`. */
function buildDemoCodebook(samplesDir: string, images: number, encoder: Encoder, out: string, backend: ComputeBackend, control: DemoControl): Promise<BuildSummary> {
  return buildCodebook(
    {
      images: samplesDir,
      encoder: DEMO_ENCODER,
      // the fewest vectors the samples can give (a photo's grid is at least the square's)
      k: demoK(images * encoder.tokensPerImage.min),
      iterations: DEMO_ITERATIONS,
      lambda: DEMO_LAMBDA,
      seed: DEMO_SEED,
      out,
    },
    backend,
    control,
  );
}

/** Every sample beside its tokens decoded back through the atlas, with their PSNR. */
async function reconstructSamples(cb: Codebook, encoder: Encoder, results: TokenGrid[], backend: ComputeBackend, control: DemoControl): Promise<ReportSample[]> {
  const samples: ReportSample[] = [];
  for (const [i, r] of results.entries()) {
    throwIfCancelled(control.signal);
    control.onProgress?.({ phase: 'decode', done: i, total: results.length });
    const input = await encoder.load(r.image);
    const reconstruction = await decodeTokens(cb, Int32Array.from(r.ids), r.grid, backend);
    samples.push({ name: path.basename(r.image), input, reconstruction, grid: r.grid, ids: r.ids, psnr: psnr(input, reconstruction) });
  }
  control.onProgress?.({ phase: 'decode', done: results.length, total: results.length });
  return samples;
}

/** A prior fitted on the samples' own tokens, and a few grids drawn from it through the atlas. */
async function generateFromPrior(cb: Codebook, results: TokenGrid[], backend: ComputeBackend, control: DemoControl): Promise<ReportGenerated> {
  const prior = fitPrior(results, cb.frozen.rows, DEFAULTS.generation.priorOrder, cb.fingerprint);
  const fit = scorePrior(prior, results);
  const generated: ReportGenerated = { order: prior.order, perplexity: fit.perplexity, unigramPerplexity: fit.unigramPerplexity, grids: [] };
  for (let seed = 0; seed < DEMO_GENERATED; seed++) {
    throwIfCancelled(control.signal);
    control.onProgress?.({ phase: 'generate', done: seed, total: DEMO_GENERATED });
    const ids = samplePriorGrid(prior, prior.grid, { seed });
    generated.grids.push({ seed, grid: prior.grid, image: await decodeTokens(cb, ids, prior.grid, backend) });
  }
  control.onProgress?.({ phase: 'generate', done: DEMO_GENERATED, total: DEMO_GENERATED });
  return generated;
}

export async function runDemo(
  outDir: string,
  backend: ComputeBackend,
  control: DemoControl = {},
  options: DemoOptions = {},
): Promise<DemoResult> {
  const samplesDir = options.samplesDir ?? defaultSamplesDir();
  const images = await listImages(samplesDir);
  if (images.length === 0) throw new UserError(`no sample images in ${samplesDir}`);
  const encoder = await openEncoder(DEMO_ENCODER, backend);
  try {
    const codebookPath = path.join(outDir, 'codebook.safetensors');
    const summary = await buildDemoCodebook(samplesDir, images.length, encoder, codebookPath, backend, control);
    const cb = await readCodebook(codebookPath);

    const { results } = await tokenizeImages(cb, encoder, images, backend, {
      signal: control.signal,
      onProgress: stepsOf('tokenize', control.onProgress),
    });
    const tokensPath = path.join(outDir, 'tokens.json');
    await writeTokenJson(tokensPath, results);

    const samples = await reconstructSamples(cb, encoder, results, backend, control);
    const generated = await generateFromPrior(cb, results, backend, control);

    const counts = await backend.histogram(Int32Array.from(results.flatMap((r) => r.ids)), cb.frozen.rows);
    const stats = codeStats(counts);
    control.onProgress?.({ phase: 'report', done: 0, total: 1 });
    const reportPath = path.join(outDir, 'report.html');
    const html = await renderReport({
      title: 'UniCode² demo',
      build: summary,
      stats,
      counts,
      samples,
      generated,
      createdAt: new Date().toISOString(),
    });
    throwIfCancelled(control.signal);
    await writeFileAtomic(reportPath, html);
    control.onProgress?.({ phase: 'report', done: 1, total: 1 });

    const perSample = samples.map((s, i) => ({ image: results[i]!.image, psnr: s.psnr }));
    return {
      report: reportPath,
      codebook: codebookPath,
      tokens: tokensPath,
      summary,
      stats,
      samples: perSample,
      meanPsnr: meanPsnr(perSample.map((s) => s.psnr)),
      generated: generated.grids.map(({ seed, grid }) => ({ seed, grid })),
    };
  } finally {
    await encoder.dispose();
  }
}

// `unicode2 build`
import { COMPUTE, ENCODER_MODEL, encoderOptions, fmt, num, pct, reportSkipped, str, type Command } from '../command.js';
import {
  buildCodebook, defaultMemoryMB, CALIBRATION_SAMPLE, CALIBRATION_TARGET, DEFAULTS, EXTERNAL_ENCODER, FLAT_MAX_WORK, MIN_VECTORS_PER_CODE, MSE_SAMPLE, REFINE_NPROBE, POINTS_PER_CENTROID, REFINE_PASSES,
  type BuildMethod, type BuildRequest, type BuildSummary, type CodebookDtype,
} from '../../engine/index.js';
import { isSlurmRun } from '../slurm.js';
import { asFinalTask, buildOnSlurm, runStageTask, BUILD_SLURM_OPTIONS } from '../build-slurm.js';
import { IMAGE_COLUMN } from '../shards.js';

export const build: Command = {
  spec: {
    name: 'build',
    summary: 'Build a codebook by (utilization-regularized) k-means over patch embeddings.',
    options: {
      images: { kind: 'string', value: 'DIR|SHARDS', help: "images to embed: a folder, one file, or data-set shards ('shards/{00000..00099}.tar', .parquet)" },
      'image-column': IMAGE_COLUMN,
      embeddings: { kind: 'string', value: 'FILE|DIR', help: "precomputed embeddings: one .npy (f32/f16), a folder of shards, or a brace list of them ('emb/{0..9}.npy')" },
      k: { kind: 'int', value: 'K', required: true, help: 'number of codes' },
      out: { kind: 'string', value: 'FILE', required: true, help: 'output codebook (.safetensors)' },
      encoder: {
        kind: 'string',
        value: 'E',
        help: `encoder of the images (default ${DEFAULTS.encoder}), or that made the embeddings (default '${EXTERNAL_ENCODER}': unknown)`,
      },
      ...ENCODER_MODEL,
      iters: { kind: 'int', value: 'N', help: `k-means iterations (default ${DEFAULTS.iterations})` },
      lambda: { kind: 'number', value: 'X', help: `utilization regularization: pull toward the mean codeword (default ${DEFAULTS.lambda})` },
      seed: { kind: 'int', value: 'S', help: `random seed (default ${DEFAULTS.seed})` },
      sample: { kind: 'int', value: 'N', help: 'train on a seeded uniform random subset of N vectors' },
      tolerance: { kind: 'number', value: 'X', help: `stop when the relative inertia change is below X (default ${DEFAULTS.tolerance}; 0: run all iterations)` },
      method: { kind: 'string', choices: ['auto', 'flat', 'two-level'], help: `k-means over all vectors at once, or coarse cells then codes per cell (default ${DEFAULTS.method}; see below)` },
      coarse: { kind: 'int', value: 'K1', help: 'two-level: coarse cells (default round(sqrt K))' },
      refine: { kind: 'int', value: 'N', help: `two-level: passes that reassign every vector through the coarse level and update every code (default ${REFINE_PASSES})` },
      nprobe: { kind: 'int', value: 'P', help: `two-level: coarse cells searched per vector in those passes (default ${REFINE_NPROBE})` },
      memory: { kind: 'int', value: 'MB', help: `working-set budget (default half the RAM: ${defaultMemoryMB()} MB here)` },
      dtype: { kind: 'string', choices: ['f32', 'f16'], help: 'how the codebook tensors are stored (default f32)' },
      ...BUILD_SLURM_OPTIONS,
      ...COMPUTE,
    },
    exactlyOne: [['images', 'embeddings']],
    notes: [
      `--method auto builds two-level when one flat pass would take more than ${FLAT_MAX_WORK.toExponential(0)} multiply-adds`,
      '(N x K x d, about 15 s a pass on two cores) or the vectors would not fit --memory as f32, and flat otherwise.',
      `Two-level: coarse k-means with K1 cells on at most ${POINTS_PER_CENTROID} vectors per cell, every vector to its cell`,
      `(f16 scratch files), k-means in each cell with its share of K, then refinement passes. It streams the vectors`,
      'and keeps its progress in <out>.checkpoint/: run the same command again after an interruption (Ctrl-C, kill,',
      'reboot) and it resumes, ending with the same codebook. --json adds vectors (those trained on), warning (set when',
      `they are fewer than ${MIN_VECTORS_PER_CODE} per code: the numbers then measure memorization), method, coarse, mse (exact, on a seeded`,
      `sample of ${MSE_SAMPLE.toLocaleString('en')} training vectors) and peakRssMB. A two-level build holds ${CALIBRATION_SAMPLE.toLocaleString('en')} vectors out of training`,
      '(those --sample leaves out, else at most a tenth of the input) and calibrates its IVF search on them: the smallest nprobe',
      `reaching recall@1 ${CALIBRATION_TARGET}, recorded in the codebook (search and tokenize default to it) and in --json as calibration: {nprobe, recall, queries}.`,
    ],
  },
  async run(ctx) {
    const a = ctx.args;
    const images = str(a, 'images');
    const req: BuildRequest = {
      images,
      imageColumn: str(a, 'image-column'),
      embeddings: str(a, 'embeddings'),
      encoder: str(a, 'encoder') ?? (images ? DEFAULTS.encoder : EXTERNAL_ENCODER),
      encoderOptions: encoderOptions(ctx),
      k: num(a, 'k')!,
      iterations: num(a, 'iters'),
      lambda: num(a, 'lambda'),
      seed: num(a, 'seed'),
      sample: num(a, 'sample'),
      tolerance: num(a, 'tolerance'),
      method: str(a, 'method') as BuildMethod | undefined,
      coarse: num(a, 'coarse'),
      refine: num(a, 'refine'),
      nprobe: num(a, 'nprobe'),
      memoryMB: num(a, 'memory'),
      dtype: str(a, 'dtype') as CodebookDtype | undefined,
      out: str(a, 'out')!,
    };
    if (isSlurmRun(ctx)) return buildOnSlurm(ctx, req, summaryResult);
    const stage = str(a, 'stage');
    if (stage !== undefined) return runStageTask(ctx, req, stage);
    const backend = await ctx.backend();
    const summary = await asFinalTask(() => buildCodebook(req, backend, { signal: ctx.signal, onProgress: (e) => ctx.progress.report(e) }));
    reportSkipped(ctx.progress, summary.skipped);
    return summaryResult(summary);
  },
};

/** A build's summary as the command prints it. */
function summaryResult(s: BuildSummary): { json: unknown; text: string } {
  return {
    json: s,
    text:
      `wrote ${s.out} (K=${s.k}, d=${s.d}, ${s.dtype}, fingerprint ${s.fingerprint})\n` +
      `${s.method}${s.coarse !== null ? ` (${s.coarse} coarse cells)` : ''}${s.resumedAt ? `, resumed at ${s.resumedAt}` : ''}, ` +
      `iterations ${s.iterations}, MSE ${s.mse.toPrecision(4)}, utilization ${pct(s.utilization)}, ` +
      `perplexity ${fmt(s.perplexity, 1)}, dead ${s.dead}, ${s.seconds.toFixed(2)} s on ${s.device}, peak RSS ${s.peakRssMB} MB` +
      (s.calibration ? `\nIVF search: nprobe ${s.calibration.nprobe} (recall@1 ${s.calibration.recall.toFixed(4)} on ${s.calibration.queries} held-out vectors)` : '') +
      (s.warning ? `\nwarning: ${s.warning}` : ''),
  };
}

// `unicode2 build`
import { COMPUTE, fmt, num, pct, reportSkipped, str, type Command } from '../command';
import { buildCodebook, DEFAULTS, EXTERNAL_ENCODER } from '../../engine/index';

export const build: Command = {
  spec: {
    name: 'build',
    summary: 'Build a codebook by (utilization-regularized) k-means over patch embeddings.',
    options: {
      images: { kind: 'string', value: 'DIR', help: 'images to embed (a folder or one file)' },
      embeddings: { kind: 'string', value: 'FILE|DIR', help: 'precomputed embeddings: one .npy (f32/f16) or a folder of shards' },
      k: { kind: 'int', value: 'K', required: true, help: 'number of codes' },
      out: { kind: 'string', value: 'FILE', required: true, help: 'output codebook (.safetensors)' },
      encoder: {
        kind: 'string',
        value: 'E',
        help: `encoder of the images (default ${DEFAULTS.encoder}), or that made the embeddings (default '${EXTERNAL_ENCODER}': unknown)`,
      },
      iters: { kind: 'int', value: 'N', help: `k-means iterations (default ${DEFAULTS.iterations})` },
      lambda: { kind: 'number', value: 'X', help: `utilization regularization: pull toward the mean codeword (default ${DEFAULTS.lambda})` },
      seed: { kind: 'int', value: 'S', help: `random seed (default ${DEFAULTS.seed})` },
      sample: { kind: 'int', value: 'N', help: 'train on a seeded uniform random subset of N vectors' },
      tolerance: { kind: 'number', value: 'X', help: `stop when the relative inertia change is below X (default ${DEFAULTS.tolerance}; 0: run all iterations)` },
      ...COMPUTE,
    },
    exactlyOne: [['images', 'embeddings']],
  },
  async run(ctx) {
    const a = ctx.args;
    const images = str(a, 'images');
    const summary = await buildCodebook(
      {
        images,
        embeddings: str(a, 'embeddings'),
        encoder: str(a, 'encoder') ?? (images ? DEFAULTS.encoder : EXTERNAL_ENCODER),
        k: num(a, 'k')!,
        iterations: num(a, 'iters'),
        lambda: num(a, 'lambda'),
        seed: num(a, 'seed'),
        sample: num(a, 'sample'),
        tolerance: num(a, 'tolerance'),
        out: str(a, 'out')!,
      },
      await ctx.backend(),
      { signal: ctx.signal, onProgress: (e) => ctx.progress.report(e) },
    );
    reportSkipped(ctx.progress, summary.skipped);
    const s = summary;
    return {
      json: s,
      text:
        `wrote ${s.out} (K=${s.k}, d=${s.d}, fingerprint ${s.fingerprint})\n` +
        `iterations ${s.iterations}, inertia ${s.inertia.toPrecision(6)}, utilization ${pct(s.utilization)}, ` +
        `perplexity ${fmt(s.perplexity, 1)}, dead ${s.dead}, ${s.seconds.toFixed(2)} s on ${s.device}`,
    };
  },
};

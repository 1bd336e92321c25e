// `unicode2 embed`
import { COMPUTE, ENCODER_MODEL, IMAGES_OPERANDS, encoderOptions, imageProgress, listAll, reportSkipped, str, type Command, type Context } from '../command.js';
import { embedIdentity, embedImages, embedShards, openEncoder, requireSomeImages, writeEmbeddingSet, DEFAULTS, ENCODER_SPEC_HELP, UserError } from '../../engine/index.js';
import { isShardRun, shardProgress, shardResult, shardRun, tracked, SHARD_OPTIONS } from '../shards.js';
import { isSlurmRun, runOnSlurm, slurmRequest, SLURM_OPTIONS } from '../slurm.js';

export const embed: Command = {
  spec: {
    name: 'embed',
    summary: 'Encode images into patch embeddings: float32 [sum of L, d] .npy plus <out>.index.json (images, grid or grids, encoder).',
    operands: IMAGES_OPERANDS,
    options: {
      out: { kind: 'string', value: 'FILE|DIR/', required: true, help: 'output .npy; over data-set shards, a folder: DIR/<shard>.npy each + DIR/manifest.json' },
      encoder: { kind: 'string', value: 'E', help: `encoder: ${ENCODER_SPEC_HELP} (default ${DEFAULTS.encoder})` },
      ...ENCODER_MODEL,
      ...SHARD_OPTIONS,
      ...SLURM_OPTIONS,
      ...COMPUTE,
    },
  },
  async run(ctx) {
    if (isShardRun(ctx)) return embedShardRun(ctx, isSlurmRun(ctx));
    if (ctx.args.options.slurm === true) throw new UserError('runs on Slurm are over data-set shards (.tar, .parquet)');
    const images = await listAll(ctx.args.operands);
    const out = str(ctx.args, 'out')!;
    const encoder = await openEncoder(str(ctx.args, 'encoder') ?? DEFAULTS.encoder, await ctx.backend(), encoderOptions(ctx));
    try {
      const r = await embedImages(encoder, images, { signal: ctx.signal, onProgress: imageProgress(ctx, 'embed') });
      requireSomeImages(r.images.length, r.skipped);
      reportSkipped(ctx.progress, r.skipped);
      const { shape, index } = await writeEmbeddingSet(out, r, encoder.descriptor);
      return {
        json: { out, shape, index, images: r.images.length, skipped: r.skipped.length },
        text: `wrote ${out} [${shape.join(', ')}] and ${index}`,
      };
    } finally {
      await encoder.dispose();
    }
  },
};

/** `embed SHARDS --out DIR/ [--shard I/N]`: one embedding set per shard, and the manifest; with
 *  --slurm, the same job as Slurm array tasks and a merge step. The encoder is opened on the
 *  submit side too: its descriptor is part of the job's identity. */
async function embedShardRun(ctx: Context, onSlurm: boolean): Promise<{ json: unknown; text: string; exitCode?: number }> {
  const run = await shardRun(ctx);
  const encoder = await openEncoder(str(ctx.args, 'encoder') ?? DEFAULTS.encoder, await ctx.backend(), encoderOptions(ctx));
  if (onSlurm) {
    // not held while the jobs are followed: only its descriptor is needed here
    const identity = embedIdentity(encoder.descriptor, run);
    await encoder.dispose();
    return runOnSlurm(ctx, slurmRequest(ctx, 'embed', { out: run.out, shards: run.shards, identity }));
  }
  try {
    const summary = await tracked(run, () => embedShards(encoder, { ...run, signal: ctx.signal, onShard: shardProgress(ctx, 'embed shards') }));
    return shardResult(summary, run.out);
  } finally {
    await encoder.dispose();
  }
}

// `unicode2 tokenize`
import { CODEBOOK, COMPUTE, ENCODER_OVERRIDE, IMAGES_OPERANDS, SEARCH, imageProgress, listAll, reportSkipped, searchOptions, str, type Command, type Context, hubDownload } from '../command.js';
import { commonGrid, tokenizeIdentity, readCodebook, requireSomeImages, tokenizeImages, tokenizeShards, writeTokenDataset, writeTokenJson, UserError, openCodebookEncoder, pooledPathOf, PADDING } from '../../engine/index.js';
import { isShardRun, shardProgress, shardResult, shardRun, tracked, SHARD_OPTIONS } from '../shards.js';
import { isSlurmRun, runOnSlurm, slurmRequest, SLURM_OPTIONS } from '../slurm.js';

export const tokenize: Command = {
  spec: {
    name: 'tokenize',
    summary: 'Turn images into token grids (nearest frozen code of every patch).',
    operands: IMAGES_OPERANDS,
    options: {
      codebook: CODEBOOK,
      out: { kind: 'string', value: 'FILE|DIR/', help: `write .json (per-image grids) or .npy (int32 [N, L] data set + FILE.index.json; rows padded with ${PADDING} when the grids differ); over data-set shards, a folder: DIR/<shard>.tokens.npy each + DIR/manifest.json; default: print` },
      encoder: ENCODER_OVERRIDE,
      pooled: { kind: 'flag', help: "also keep each image's pooled embedding (the model's image_embeds or pooler_output) beside its tokens: <name>.pooled.npy float32 [N, d], named in the index (an .npy output over images; over data-set shards each shard's DIR/<shard>.tokens.pooled.npy; the token set editor's search by words needs it)" },
      ...SHARD_OPTIONS,
      ...SLURM_OPTIONS,
      ...SEARCH,
      ...COMPUTE,
    },
  },
  async run(ctx) {
    if (isShardRun(ctx)) return isSlurmRun(ctx) ? tokenizeOnSlurm(ctx) : tokenizeShardRun(ctx);
    if (ctx.args.options.slurm === true) throw new UserError('runs on Slurm are over data-set shards (.tar, .parquet)');
    const out = str(ctx.args, 'out');
    if (out && !/\.(json|npy)$/i.test(out)) throw new UserError(`--out must end in .json or .npy, got ${out}`);
    const pooled = ctx.args.options.pooled === true;
    if (pooled && !/\.npy$/i.test(out ?? '')) throw new UserError('pooled embeddings are kept beside a token data set (.npy)', { cli: 'give --out FILE.npy with --pooled', vscode: 'tokenize into an .npy data set' });
    const images = await listAll(ctx.args.operands);
    const cb = await readCodebook(str(ctx.args, 'codebook')!);
    const search = searchOptions(ctx.args, cb);
    const backend = await ctx.backend();
    const encoder = await openCodebookEncoder(cb, str(ctx.args, 'encoder'), backend, hubDownload(ctx));
    try {
      const { results, skipped, pooled: keep } = await tokenizeImages(cb, encoder, images, backend, {
        signal: ctx.signal,
        onProgress: imageProgress(ctx, 'tokenize'),
        search,
        pooled,
      });
      requireSomeImages(results.length, skipped);
      reportSkipped(ctx.progress, skipped);
      if (!out) {
        const doc = { results, device: backend.device };
        return { json: doc, text: JSON.stringify(doc) };
      }
      const { search: searched } = results[0]!;
      // the grid of every image, or null when they differ (photos of other shapes)
      const grid = commonGrid(results.map((r) => r.grid));
      const grids = grid ? grid.join('x') : 'of different shapes';
      if (/\.npy$/i.test(out)) {
        const { shape } = await writeTokenDataset(out, results, keep ? { pooled: keep } : {});
        const padded = grid ? '' : ` (grids ${grids}: rows padded with ${PADDING})`;
        const withPooled = keep ? { pooled: { file: pooledPathOf(out), shape: [keep.embeddings.rows, keep.embeddings.cols], output: keep.output } } : {};
        return { json: { out, shape, grid, index: `${out}.index.json`, device: backend.device, search: searched, ...withPooled }, text: `wrote ${out} [${shape.join(', ')}]${padded}${keep ? ` and ${pooledPathOf(out)} [${keep.embeddings.rows}, ${keep.embeddings.cols}] (${keep.output})` : ''}` };
      }
      await writeTokenJson(out, results);
      return { json: { out, images: results.length, grid, device: backend.device, search: searched }, text: `wrote ${out} (${results.length} token grids, ${grids})` };
    } finally {
      await encoder.dispose();
    }
  },
};

/** `tokenize SHARDS --out DIR/ [--shard I/N]`: one token data set per shard, and the manifest. */
async function tokenizeShardRun(ctx: Context): Promise<{ json: unknown; text: string; exitCode: number }> {
  const run = await shardRun(ctx);
  const cb = await readCodebook(str(ctx.args, 'codebook')!);
  const search = searchOptions(ctx.args, cb);
  const backend = await ctx.backend();
  const encoder = await openCodebookEncoder(cb, str(ctx.args, 'encoder'), backend, hubDownload(ctx));
  try {
    const summary = await tracked(run, () => tokenizeShards(cb, encoder, backend, { ...run, pooled: ctx.args.options.pooled === true, control: { signal: ctx.signal, search }, onShard: shardProgress(ctx, 'tokenize shards') }));
    return shardResult(summary, run.out);
  } finally {
    await encoder.dispose();
  }
}

/** `tokenize SHARDS --out DIR/ --slurm`: the same job as Slurm array tasks and a merge step. The
 *  encoder is opened only when --encoder names another one: its id is part of the job's identity. */
async function tokenizeOnSlurm(ctx: Context): Promise<{ json: unknown; text: string; exitCode?: number }> {
  const run = await shardRun(ctx);
  const cb = await readCodebook(str(ctx.args, 'codebook')!);
  searchOptions(ctx.args, cb);
  const override = str(ctx.args, 'encoder');
  let encoderId = cb.meta.encoder.id;
  if (override !== undefined) {
    const encoder = await openCodebookEncoder(cb, override, await ctx.backend(), hubDownload(ctx));
    encoderId = encoder.descriptor.id;
    await encoder.dispose();
  }
  return runOnSlurm(ctx, slurmRequest(ctx, 'tokenize', { out: run.out, shards: run.shards, identity: tokenizeIdentity(cb, encoderId, { ...run, pooled: ctx.args.options.pooled === true }) }));
}

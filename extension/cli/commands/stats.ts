// `unicode2 stats`
import { CODEBOOK, COMPUTE, ENCODER_OVERRIDE, fmt, imageProgress, pct, reportSkipped, str, type Command, hubDownload } from '../command.js';
import { checkTokensMatchCodebook, codeStats, readCodebook, readTokenGrids, requireSomeImages, tokenizeImages, type Codebook, openCodebookEncoder, UserError } from '../../engine/index.js';
import { imagesOption, IMAGE_COLUMN } from '../shards.js';

export const stats: Command = {
  spec: {
    name: 'stats',
    summary: 'Codebook usage over images or a tokens file: utilization, perplexity, dead codes.',
    options: {
      codebook: CODEBOOK,
      images: { kind: 'string', value: 'DIR|SHARDS', help: "tokenize these images and count: a folder, or data-set shards ('shards/{00000..00099}.tar', .parquet)" },
      'image-column': IMAGE_COLUMN,
      tokens: { kind: 'string', value: 'FILE', help: 'count the ids of a tokenize output (.json or .npy data set)' },
      encoder: ENCODER_OVERRIDE,
      ...COMPUTE,
    },
    exactlyOne: [['images', 'tokens']],
  },
  async run(ctx) {
    const cb = await readCodebook(str(ctx.args, 'codebook')!);
    const k = cb.frozen.rows;
    const tokensPath = str(ctx.args, 'tokens');
    const backend = await ctx.backend();
    let ids: number[];
    if (tokensPath) {
      if (str(ctx.args, 'image-column') !== undefined) throw new UserError('an image column applies to images in data-set shards, not to tokens', { cli: 'drop --image-column', vscode: 'leave the image column empty' });
      const grids = await readTokenGrids(tokensPath);
      checkTokensMatchCodebook(cb, grids, tokensPath);
      ids = grids.flatMap((g) => g.ids);
    } else {
      const images = await imagesOption(ctx, 'tokenize');
      const encoder = await openCodebookEncoder(cb, str(ctx.args, 'encoder'), backend, hubDownload(ctx));
      try {
        const r = await tokenizeImages(cb, encoder, images.images, backend, { signal: ctx.signal, onProgress: imageProgress(ctx, 'tokenize') });
        const skipped = [...images.skipped, ...r.skipped];
        requireSomeImages(r.results.length, skipped);
        reportSkipped(ctx.progress, skipped);
        ids = r.results.flatMap((g) => g.ids);
      } finally {
        await encoder.dispose();
      }
    }
    const s = codeStats(await backend.histogram(Int32Array.from(ids), k));
    return {
      json: { tokens: s.tokens, k: s.k, used: s.used, utilization: s.utilization, perplexity: s.perplexity, dead: s.dead, device: backend.device },
      text: `${s.tokens} tokens over K=${s.k}: used ${s.used}, utilization ${pct(s.utilization)}, perplexity ${fmt(s.perplexity, 1)}, dead ${s.dead}`,
    };
  },
};

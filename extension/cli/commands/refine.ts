// `unicode2 refine`
import { CODEBOOK, COMPUTE, ENCODER_OVERRIDE, imageProgress, reportSkipped, str, type Command, type Context, hubDownload } from '../command.js';
import { readCodebook, refineAtlas, writeCodebook, openCodebookEncoder, withOutputLock } from '../../engine/index.js';
import { imagesOption, IMAGE_COLUMN } from '../shards.js';

export const refine: Command = {
  spec: {
    name: 'refine',
    summary: "Refine the codebook's atlas (trainable half) to the mean pixel patch of each code over images.",
    options: {
      codebook: CODEBOOK,
      images: { kind: 'string', value: 'DIR|SHARDS', required: true, help: "images to refine from: a folder, or data-set shards ('shards/{00000..00099}.tar', .parquet)" },
      'image-column': IMAGE_COLUMN,
      out: { kind: 'string', value: 'FILE', help: 'output codebook (default: rewrite --codebook in place, atomically)' },
      encoder: ENCODER_OVERRIDE,
      ...COMPUTE,
    },
  },
  async run(ctx) {
    const cbPath = str(ctx.args, 'codebook')!;
    // Read, refine and rewrite as one job: another job writing the output meanwhile would be lost.
    return withOutputLock(str(ctx.args, 'out') ?? cbPath, 'refine', () => refineInto(ctx, cbPath));
  },
};

async function refineInto(ctx: Context, cbPath: string): Promise<{ json: unknown; text: string }> {
  const cb = await readCodebook(cbPath);
  const images = await imagesOption(ctx, 'refine');
  const backend = await ctx.backend();
  const encoder = await openCodebookEncoder(cb, str(ctx.args, 'encoder'), backend, hubDownload(ctx));
  try {
    const refined = await refineAtlas(cb, encoder, images.images, backend, { signal: ctx.signal, onProgress: imageProgress(ctx, 'refine') });
    reportSkipped(ctx.progress, images.skipped);
    const out = str(ctx.args, 'out') ?? cbPath;
    const fingerprint = await writeCodebook(out, refined);
    return {
      json: { out, k: refined.frozen.rows, d: refined.frozen.cols, atlas: refined.meta.atlas, fingerprint, device: backend.device },
      text: `wrote ${out} (atlas ${refined.meta.atlas}, ${images.count()} images)`,
    };
  } finally {
    await encoder.dispose();
  }
}

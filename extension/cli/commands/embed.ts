// `unicode2 embed`
import { COMPUTE, ENCODER_MODEL, IMAGES_OPERANDS, encoderOptions, imageProgress, listAll, reportSkipped, str, type Command } from '../command.js';
import { commonGrid, embedImages, indexPathOf, openEncoder, requireSomeImages, writeIndexedNpy, DEFAULTS, ENCODER_SPEC_HELP } from '../../engine/index.js';

export const embed: Command = {
  spec: {
    name: 'embed',
    summary: 'Encode images into patch embeddings: float32 [sum of L, d] .npy plus <out>.index.json (images, grid or grids, encoder).',
    operands: IMAGES_OPERANDS,
    options: {
      out: { kind: 'string', value: 'FILE', required: true, help: 'output .npy' },
      encoder: { kind: 'string', value: 'E', help: `encoder: ${ENCODER_SPEC_HELP} (default ${DEFAULTS.encoder})` },
      ...ENCODER_MODEL,
      ...COMPUTE,
    },
  },
  async run(ctx) {
    const images = await listAll(ctx.args.operands);
    const out = str(ctx.args, 'out')!;
    const encoder = await openEncoder(str(ctx.args, 'encoder') ?? DEFAULTS.encoder, await ctx.backend(), encoderOptions(ctx));
    try {
      const r = await embedImages(encoder, images, { signal: ctx.signal, onProgress: imageProgress(ctx, 'embed') });
      requireSomeImages(r.images.length, r.skipped);
      reportSkipped(ctx.progress, r.skipped);
      const shape = [r.embeddings.rows, r.embeddings.cols];
      const index = indexPathOf(out);
      // One grid for all (rows per image fixed), or each image's grid, its rows after the previous image's.
      const grid = commonGrid(r.grids);
      const rows = { images: r.images, ...(grid ? { grid, rowsPerImage: grid[0] * grid[1] } : { grids: r.grids }), encoder: encoder.descriptor };
      await writeIndexedNpy(out, { shape, dtype: 'float32', data: r.embeddings.data }, rows);
      return {
        json: { out, shape, index, images: r.images.length, skipped: r.skipped.length },
        text: `wrote ${out} [${shape.join(', ')}] and ${index}`,
      };
    } finally {
      await encoder.dispose();
    }
  },
};

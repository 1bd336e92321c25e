// `unicode2 tokenize`
import { CODEBOOK, COMPUTE, ENCODER_OVERRIDE, IMAGES_OPERANDS, SEARCH, imageProgress, listAll, reportSkipped, searchOptions, str, type Command } from '../command.js';
import { commonGrid, readCodebook, requireSomeImages, tokenizeImages, writeTokenDataset, writeTokenJson, UserError, openCodebookEncoder, PADDING } from '../../engine/index.js';

export const tokenize: Command = {
  spec: {
    name: 'tokenize',
    summary: 'Turn images into token grids (nearest frozen code of every patch).',
    operands: IMAGES_OPERANDS,
    options: {
      codebook: CODEBOOK,
      out: { kind: 'string', value: 'FILE', help: `write .json (per-image grids) or .npy (int32 [N, L] data set + FILE.index.json; rows padded with ${PADDING} when the grids differ); default: print` },
      encoder: ENCODER_OVERRIDE,
      ...SEARCH,
      ...COMPUTE,
    },
  },
  async run(ctx) {
    const out = str(ctx.args, 'out');
    if (out && !/\.(json|npy)$/i.test(out)) throw new UserError(`--out must end in .json or .npy, got ${out}`);
    const images = await listAll(ctx.args.operands);
    const cb = await readCodebook(str(ctx.args, 'codebook')!);
    const search = searchOptions(ctx.args, cb);
    const backend = await ctx.backend();
    const encoder = await openCodebookEncoder(cb, str(ctx.args, 'encoder'), backend);
    try {
      const { results, skipped } = await tokenizeImages(cb, encoder, images, backend, {
        signal: ctx.signal,
        onProgress: imageProgress(ctx, 'tokenize'),
        search,
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
        const { shape } = await writeTokenDataset(out, results);
        const padded = grid ? '' : ` (grids ${grids}: rows padded with ${PADDING})`;
        return { json: { out, shape, grid, index: `${out}.index.json`, device: backend.device, search: searched }, text: `wrote ${out} [${shape.join(', ')}]${padded}` };
      }
      await writeTokenJson(out, results);
      return { json: { out, images: results.length, grid, device: backend.device, search: searched }, text: `wrote ${out} (${results.length} token grids, ${grids})` };
    } finally {
      await encoder.dispose();
    }
  },
};

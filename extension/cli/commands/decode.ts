// `unicode2 decode`
import { CODEBOOK, COMPUTE, num, readOneGrid, str, type Command } from '../command.js';
import { decodeTokens, readCodebook, writePng } from '../../engine/index.js';

export const decode: Command = {
  spec: {
    name: 'decode',
    summary: "Token grid -> image through the codebook's atlas (each code's pixel patch).",
    options: {
      codebook: CODEBOOK,
      tokens: { kind: 'string', value: 'FILE', required: true, help: 'tokens as written by tokenize (.json, or .npy data set)' },
      out: { kind: 'string', value: 'FILE', required: true, help: 'output .png' },
      index: { kind: 'int', value: 'I', help: 'which grid of the tokens file (default 0)' },
      ...COMPUTE,
    },
  },
  async run(ctx) {
    const cb = await readCodebook(str(ctx.args, 'codebook')!);
    const g = await readOneGrid(str(ctx.args, 'tokens')!, num(ctx.args, 'index'), cb);
    const backend = await ctx.backend();
    const img = await decodeTokens(cb, Int32Array.from(g.ids), g.grid, backend);
    const out = str(ctx.args, 'out')!;
    await writePng(out, img);
    return {
      json: { out, width: img.width, height: img.height, image: g.image, device: backend.device },
      text: `wrote ${out} (${img.width}x${img.height}) from the tokens of ${g.image}`,
    };
  },
};

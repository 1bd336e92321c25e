// `unicode2 search`
import { CODEBOOK, COMPUTE, str, type Command } from '../command';
import { readCodebook, readEmbeddings, writeNpy, UserError } from '../../engine/index';

export const search: Command = {
  spec: {
    name: 'search',
    summary: 'Exact nearest code (squared L2) for each query vector: int32 [Q] .npy of code ids.',
    options: {
      codebook: CODEBOOK,
      queries: { kind: 'string', value: 'FILE', required: true, help: 'queries: .npy [Q, d] (f32/f16/f64) or a folder of shards' },
      out: { kind: 'string', value: 'FILE', required: true, help: 'output .npy (int32 [Q])' },
      ...COMPUTE,
    },
  },
  async run(ctx) {
    const cb = await readCodebook(str(ctx.args, 'codebook')!);
    const queries = await readEmbeddings(str(ctx.args, 'queries')!);
    if (queries.cols !== cb.frozen.cols) {
      throw new UserError(`codebook has d=${cb.frozen.cols} but the queries have d=${queries.cols}`);
    }
    const backend = await ctx.backend();
    const handle = await backend.loadCodebook(cb.frozen);
    try {
      const { ids } = await backend.nearest(handle, queries, { signal: ctx.signal });
      const out = str(ctx.args, 'out')!;
      await writeNpy(out, { shape: [ids.length], dtype: 'int32', data: ids });
      return { json: { out, shape: [ids.length], device: backend.device }, text: `wrote ${out} [${ids.length}]` };
    } finally {
      handle.dispose();
    }
  },
};

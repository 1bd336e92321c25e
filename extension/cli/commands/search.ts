// `unicode2 search`
import { CODEBOOK, COMPUTE, SEARCH, num, searchOptions, str, type Command } from '../command.js';
import { measureRecall, openSearch, readCodebook, readEmbeddings, writeNpy, UserError, type NearestResult } from '../../engine/index.js';

export const search: Command = {
  spec: {
    name: 'search',
    summary: 'Nearest code (squared L2) for each query vector: int32 [Q] .npy of code ids. IVF through the codebook\'s coarse level when it has one, else exact.',
    options: {
      codebook: CODEBOOK,
      queries: { kind: 'string', value: 'FILE', required: true, help: 'queries: .npy [Q, d] (f32/f16/f64) or a folder of shards' },
      out: { kind: 'string', value: 'FILE', required: true, help: 'output .npy (int32 [Q])' },
      ...SEARCH,
      recall: { kind: 'int', value: 'N', help: 'also search N seeded sampled queries exactly and report recall@1: the share given exact search\'s code (or one as near, to f32 rounding)' },
      ...COMPUTE,
    },
    notes: ['--json prints {queries, k, d, method, nprobe, seconds, recall, out, shape, device}; recall is null without --recall (and 1 for exact search).'],
  },
  async run(ctx) {
    const recallSample = num(ctx.args, 'recall');
    if (recallSample !== undefined && recallSample < 1) throw new UserError(`--recall needs a whole number of at least 1, got ${recallSample}`);
    const cb = await readCodebook(str(ctx.args, 'codebook')!);
    const options = searchOptions(ctx.args, cb);
    const queries = await readEmbeddings(str(ctx.args, 'queries')!);
    if (queries.cols !== cb.frozen.cols) {
      throw new UserError(`codebook has d=${cb.frozen.cols} but the queries have d=${queries.cols}`);
    }
    const backend = await ctx.backend();
    const searcher = await openSearch(cb, backend, options);
    let answer: NearestResult, seconds: number;
    try {
      const started = performance.now();
      answer = await searcher.nearest(queries, { signal: ctx.signal });
      seconds = (performance.now() - started) / 1000;
    } finally {
      searcher.dispose();
    }
    const { method, nprobe } = searcher.info;
    let recall: number | null = null;
    if (recallSample !== undefined) {
      recall = method === 'exact' ? 1 : (await measureRecall(cb, backend, queries, answer, recallSample, { signal: ctx.signal })).recall;
    }
    const { ids } = answer;
    const out = str(ctx.args, 'out')!;
    await writeNpy(out, { shape: [ids.length], dtype: 'int32', data: ids });
    const how = method === 'ivf' ? `IVF, nprobe ${nprobe} of ${cb.coarse!.centroids.rows} cells` : 'exact';
    return {
      json: { queries: queries.rows, k: cb.frozen.rows, d: cb.frozen.cols, method, nprobe, seconds, recall, out, shape: [ids.length], device: backend.device },
      text: `wrote ${out} [${ids.length}] (${how}, ${seconds.toFixed(3)} s${recall === null ? '' : `, recall@1 ${recall.toFixed(4)}`})`,
    };
  },
};

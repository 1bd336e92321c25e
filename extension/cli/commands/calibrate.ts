// `unicode2 calibrate`
import { CODEBOOK, COMPUTE, num, str, type Command, type Context } from '../command.js';
import { calibrateCodebook, readCodebook, readEmbeddings, writeCodebook, withOutputLock, CALIBRATION_SAMPLE, CALIBRATION_TARGET } from '../../engine/index.js';

export const calibrate: Command = {
  spec: {
    name: 'calibrate',
    summary: "Measure the IVF search's nprobe for a codebook with a coarse level on given vectors and record it in the codebook: search and tokenize then use it by default.",
    options: {
      codebook: CODEBOOK,
      queries: { kind: 'string', value: 'FILE', required: true, help: 'vectors like the ones to be searched: .npy [Q, d] (f32/f16/f64) or a folder of shards (`unicode2 embed` makes them from images)' },
      target: { kind: 'number', value: 'R', help: `recall@1 to reach (default ${CALIBRATION_TARGET})` },
      sample: { kind: 'int', value: 'N', help: `vectors searched: a seeded sample of N of the queries (default ${CALIBRATION_SAMPLE.toLocaleString('en')}; all when fewer)` },
      out: { kind: 'string', value: 'FILE', help: 'output codebook (default: rewrite --codebook in place, atomically)' },
      ...COMPUTE,
    },
    notes: [
      'The nprobe recorded is the smallest of 1, 2, 4, 8, 12, 16, 24, 32, 48, 64, ... (up to every cell) whose recall@1',
      'against exact search reaches the target. A two-level build already does this on vectors it held out of training.',
      '--json prints {out, nprobe, recall, queries, curve: [{nprobe, recall}], fingerprint, device}.',
    ],
  },
  async run(ctx) {
    const cbPath = str(ctx.args, 'codebook')!;
    // Read, calibrate and rewrite as one job: another job writing the output meanwhile would be lost.
    return withOutputLock(str(ctx.args, 'out') ?? cbPath, 'calibrate', () => calibrateInto(ctx, cbPath));
  },
};

async function calibrateInto(ctx: Context, cbPath: string): Promise<{ json: unknown; text: string }> {
  const cb = await readCodebook(cbPath);
  const queries = await readEmbeddings(str(ctx.args, 'queries')!);
  const backend = await ctx.backend();
  const calibration = await calibrateCodebook(cb, backend, queries, {
    signal: ctx.signal,
    target: num(ctx.args, 'target'),
    sample: num(ctx.args, 'sample'),
    onRung: (nprobe, recall) => ctx.progress.note(`calibrate: nprobe ${nprobe}: recall@1 ${recall.toFixed(4)}`),
  });
  const out = str(ctx.args, 'out') ?? cbPath;
  const fingerprint = await writeCodebook(out, { ...cb, meta: { ...cb.meta, nprobe: calibration.nprobe, nprobeRecall: calibration.recall } });
  const { nprobe, recall, queries: searched, curve } = calibration;
  return {
    json: { out, nprobe, recall, queries: searched, curve, fingerprint, device: backend.device },
    text: `wrote ${out}: nprobe ${nprobe} of ${cb.coarse!.centroids.rows} cells (recall@1 ${recall.toFixed(4)} on ${searched} vectors)`,
  };
}

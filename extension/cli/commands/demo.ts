// `unicode2 demo`
import * as path from 'node:path';
import { COMPUTE, fmt, pct, str, type Command } from '../command.js';
import { runDemo } from '../../engine/index.js';

export const demo: Command = {
  spec: {
    name: 'demo',
    summary:
      'The whole pipeline on the bundled sample photos with the DCT encoder: build a codebook, tokenize, decode, ' +
      'measure PSNR, write report.html (self-contained), codebook.safetensors and tokens.json.',
    options: { out: { kind: 'string', value: 'DIR', help: 'output folder (default ./unicode2-demo)' }, ...COMPUTE },
  },
  async run(ctx) {
    const outDir = path.resolve(str(ctx.args, 'out') ?? 'unicode2-demo');
    const r = await runDemo(outDir, await ctx.backend(), { signal: ctx.signal, onProgress: (e) => ctx.progress.report(e) });
    const s = r.stats;
    const json = {
      report: r.report,
      codebook: r.codebook,
      tokens: r.tokens,
      k: r.summary.k,
      d: r.summary.d,
      iterations: r.summary.iterations,
      inertia: r.summary.inertia,
      utilization: s.utilization,
      perplexity: s.perplexity,
      used: s.used,
      dead: s.dead,
      meanPsnr: r.meanPsnr,
      samples: r.samples,
      seconds: r.summary.seconds,
      device: r.summary.device,
    };
    const lines = [
      `codebook  ${r.codebook} (K=${r.summary.k}, d=${r.summary.d}, ${r.summary.iterations} iterations, ${r.summary.seconds.toFixed(2)} s on ${r.summary.device})`,
      `usage     ${s.tokens} tokens: utilization ${pct(s.utilization)}, perplexity ${fmt(s.perplexity, 1)}, dead ${s.dead}`,
      ...r.samples.map((x) => `psnr      ${x.psnr.toFixed(2)} dB  ${path.basename(x.image)}`),
      `mean psnr ${r.meanPsnr.toFixed(2)} dB`,
      `report    ${r.report}`,
    ];
    return { json, text: lines.join('\n') };
  },
};

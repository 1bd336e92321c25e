// `unicode2 generate`: tokens (given, or sampled from a prior) -> image through the atlas or a
// diffusion decoder folder.
import { CODEBOOK, COMPUTE, num, parseGrid, readOneGrid, str, type Command, type Context } from '../command.js';
import { SAMPLING, samplingOptions } from './prior.js';
import { AR_SAMPLING, arSampleOptions, isArPriorFolder, refuseArOptions, withArModel } from './ar-prior.js';
import {
  ATLAS_DECODER,
  DEFAULTS,
  SCHEDULER_KINDS,
  UserError,
  checkArMatchesCodebook,
  checkTokenDecoder,
  checkPriorMatchesCodebook,
  diffusionSettings,
  openTokenDecoder,
  readCodebook,
  readNpy,
  readPrior,
  sampleArGrid,
  samplePriorGrid,
  writePng,
  f16ToF32,
  type Codebook,
  type SampleOptions,
  type SchedulerKind,
} from '../../engine/index.js';

async function readInitNoise(file: string): Promise<{ shape: number[]; data: Float32Array }> {
  const a = await readNpy(file);
  if (a.dtype !== 'float32' && a.dtype !== 'float16') throw new UserError(`${file}: initial noise must be float32 or float16, found ${a.dtype}`);
  if (a.shape.length !== 4) throw new UserError(`${file}: initial noise must be latents [1, C, h, w], found shape (${a.shape.join(', ')})`);
  const data = a.dtype === 'float16' ? f16ToF32(a.data as Uint16Array) : (a.data as Float32Array);
  if (!data.every(Number.isFinite)) throw new UserError(`${file}: initial noise holds a non-finite value`);
  return { shape: a.shape, data };
}

/** The grid `generate` decodes: one of --tokens, or sampled from --prior. */
async function gridToDecode(ctx: Context, cb: Codebook, sampling: SampleOptions): Promise<{ ids: Int32Array; grid: [number, number] }> {
  const a = ctx.args;
  const tokensFile = str(a, 'tokens');
  if (tokensFile) {
    for (const name of ['grid', 'temperature', 'top-k', 'top-p', ...Object.keys(AR_SAMPLING)]) if (a.options[name] !== undefined) throw new UserError(`--${name} is for --prior`);
    const g = await readOneGrid(tokensFile, num(a, 'index'), cb);
    return { ids: Int32Array.from(g.ids), grid: g.grid };
  }
  if (a.options.index !== undefined) throw new UserError('--index is for --tokens');
  const file = str(a, 'prior')!;
  if (await isArPriorFolder(file)) {
    const backend = await ctx.backend();
    return withArModel(ctx, file, backend.name, async (model) => {
      checkArMatchesCodebook(model.folder, { k: cb.frozen.rows, fingerprint: cb.fingerprint }, str(a, 'codebook')!);
      const grid = str(a, 'grid') ? parseGrid('grid', str(a, 'grid')!) : model.folder.sidecar.grid;
      return { ids: await sampleArGrid(model, grid, arSampleOptions(a, model.folder, sampling, ctx, grid[0] * grid[1])), grid };
    });
  }
  refuseArOptions(a, file);
  const prior = await readPrior(file);
  checkPriorMatchesCodebook(prior, { k: cb.frozen.rows, fingerprint: cb.fingerprint }, file);
  const grid = str(a, 'grid') ? parseGrid('grid', str(a, 'grid')!) : prior.grid;
  return { ids: samplePriorGrid(prior, grid, sampling), grid };
}

export const generate: Command = {
  spec: {
    name: 'generate',
    summary: 'Tokens (a tokens file, or sampled from a prior) -> image, through the atlas or a diffusion decoder.',
    options: {
      codebook: CODEBOOK,
      tokens: { kind: 'string', value: 'FILE', help: 'tokens to decode (.json or .npy data set, from tokenize or prior sample)' },
      index: { kind: 'int', value: 'I', help: 'which grid of --tokens (default 0)' },
      prior: { kind: 'string', value: 'P', help: 'sample the tokens from this prior: a .safetensors from prior fit, or an autoregressive model folder (README: AR prior)' },
      grid: { kind: 'string', value: 'HxW', help: "with --prior: grid size (default: the prior's training grid)" },
      decoder: {
        kind: 'string',
        value: 'atlas|DIR',
        help: `'${ATLAS_DECODER}' or a diffusers ONNX export folder (unet/ or transformer/, vae_decoder/, scheduler/) (default ${DEFAULTS.generation.decoder})`,
      },
      scheduler: { kind: 'string', choices: SCHEDULER_KINDS, help: `diffusion sampler (default ${DEFAULTS.generation.scheduler})` },
      steps: { kind: 'int', value: 'N', help: `denoising steps (default ${DEFAULTS.generation.steps})` },
      guidance: { kind: 'number', value: 'G', help: `classifier-free guidance scale, <= 1 = none (default ${DEFAULTS.generation.guidance})` },
      eta: { kind: 'number', value: 'X', help: `DDIM eta (default ${DEFAULTS.generation.eta})` },
      'init-noise': { kind: 'string', value: 'FILE', help: 'start from these N(0,1) latents (.npy [1, C, h, w]) instead of seeded noise' },
      ...SAMPLING,
      ...AR_SAMPLING,
      out: { kind: 'string', value: 'FILE', required: true, help: 'output .png' },
      ...COMPUTE,
    },
    exactlyOne: [['tokens', 'prior']],
    notes: [
      '--seed seeds both the prior sampling and the diffusion noise. The same arguments and seed give a',
      'byte-identical image on the same device.',
    ],
  },
  async run(ctx) {
    const a = ctx.args;
    const started = Date.now();
    const out = str(a, 'out')!;
    if (!/\.png$/i.test(out)) throw new UserError(`--out must end in .png, got ${out}`);
    const decoderSpec = str(a, 'decoder') ?? DEFAULTS.generation.decoder;
    if (decoderSpec === ATLAS_DECODER) {
      for (const name of ['scheduler', 'steps', 'guidance', 'eta', 'init-noise']) {
        if (a.options[name] !== undefined) throw new UserError(`--${name} is for a diffusion decoder; the atlas decoder takes none`);
      }
    }
    await checkTokenDecoder(decoderSpec); // a bad folder is refused before anything loads
    const cb = await readCodebook(str(a, 'codebook')!);
    const sampling = samplingOptions(a);
    const { ids, grid } = await gridToDecode(ctx, cb, sampling);
    const initNoiseFile = str(a, 'init-noise');
    const settings = diffusionSettings({
      scheduler: (str(a, 'scheduler') as SchedulerKind | undefined) ?? DEFAULTS.generation.scheduler,
      steps: num(a, 'steps') ?? DEFAULTS.generation.steps,
      guidance: num(a, 'guidance') ?? DEFAULTS.generation.guidance,
      eta: num(a, 'eta') ?? DEFAULTS.generation.eta,
      seed: sampling.seed,
      initNoise: initNoiseFile ? await readInitNoise(initNoiseFile) : undefined,
    });
    const backend = await ctx.backend();
    const decoder = await openTokenDecoder(decoderSpec, backend, (m) => ctx.progress.note(`unicode2: warning: ${m}`));
    try {
      const result = await decoder.decode(cb, ids, grid, settings, {
        signal: ctx.signal,
        onStep: (e) => ctx.progress.report({ phase: 'denoise', done: e.step, total: e.total }),
      });
      await writePng(out, result.image);
      const d = result.diffusion;
      const json = {
        out,
        grid,
        ids: Array.from(ids),
        decoder: decoder.name,
        scheduler: d?.scheduler ?? null,
        steps: d?.steps ?? null,
        seed: sampling.seed,
        seconds: (Date.now() - started) / 1000,
        device: result.device,
      };
      const how = d ? `${decoder.name} (${d.scheduler}, ${d.steps} steps)` : 'the atlas';
      return { json, text: `wrote ${out} (${result.image.width}x${result.image.height}) from a ${grid.join('x')} token grid through ${how} on ${result.device}` };
    } finally {
      await decoder.dispose();
    }
  },
};

// `unicode2 prior fit | eval | sample`: the built-in token prior (engine/generate/prior/).
import { COMMON, fmt, num, parseGrid, readOneGrid, str, type Command, type CommandGroup, type Context } from '../command.js';
import type { OptionSpec, ParsedArgs } from '../args.js';
import {
  DEFAULTS,
  MAX_PRIOR_ORDER,
  PRIOR_NEIGHBOURS,
  UserError,
  checkPriorMatchesCodebook,
  fitPrior,
  inpaintGrid,
  readCodebook,
  readPrior,
  readTokenGrids,
  samplePriorGrid,
  scorePrior,
  variationMask,
  writePrior,
  writeTokenJson,
  type SampleOptions,
  type TokenGrid,
  type TokenPrior,
} from '../../engine/index.js';
import { AR_SAMPLING, arDrawer, evaluateArPrior, isArPriorFolder, refuseArOptions, withArModel, type GridDrawer } from './ar-prior.js';

const PRIOR: OptionSpec = { kind: 'string', value: 'P', required: true, help: 'token prior: a .safetensors from prior fit, or an autoregressive model folder (README: AR prior)' };

/** Sampling options shared by `prior sample` and `generate --prior`. */
export const SAMPLING: Record<string, OptionSpec> = {
  seed: { kind: 'int', value: 'S', help: `random seed (default ${DEFAULTS.seed})` },
  temperature: { kind: 'number', value: 'X', help: `sampling temperature > 0 (default ${DEFAULTS.generation.temperature})` },
  'top-k': { kind: 'int', value: 'K', help: `sample among the K most probable codes (default ${DEFAULTS.generation.topK} = off)` },
  'top-p': { kind: 'number', value: 'P', help: `sample among the most probable codes up to probability P (default ${DEFAULTS.generation.topP} = off)` },
};

export function samplingOptions(args: ParsedArgs): SampleOptions {
  return {
    seed: num(args, 'seed') ?? DEFAULTS.seed,
    temperature: num(args, 'temperature') ?? DEFAULTS.generation.temperature,
    topK: num(args, 'top-k') ?? DEFAULTS.generation.topK,
    topP: num(args, 'top-p') ?? DEFAULTS.generation.topP,
  };
}

async function readAllGrids(file: string): Promise<TokenGrid[]> {
  const grids = await readTokenGrids(file);
  const codebooks = new Set(grids.map((g) => g.codebook));
  if (codebooks.size > 1) throw new UserError(`${file} mixes tokens of ${codebooks.size} codebooks (${[...codebooks].join(', ')})`);
  return grids;
}

const fit: Command = {
  spec: {
    name: 'prior fit',
    summary: `Fit a 2-D context prior (interpolated Witten-Bell, contexts of up to ${MAX_PRIOR_ORDER - 1} causal neighbours) over a token data set.`,
    options: {
      tokens: { kind: 'string', value: 'DATA', required: true, help: 'token data set (.npy + .index.json) or tokens .json, from tokenize' },
      out: { kind: 'string', value: 'FILE', required: true, help: 'output prior (.safetensors)' },
      order: {
        kind: 'int',
        value: 'N',
        help: `context length + 1: 1 = unigram, then adding ${PRIOR_NEIGHBOURS.map((n) => n[2]).join(', ')} (default ${DEFAULTS.generation.priorOrder})`,
      },
      codebook: { kind: 'string', value: 'CB', help: 'the codebook the tokens were made with: K from it, fingerprint checked' },
      k: { kind: 'int', value: 'K', help: 'codebook size instead of --codebook (default: 1 + the largest id seen)' },
      ...COMMON,
    },
    notes: ['Give --codebook (or --k) so that codes the data never uses keep a share of the probability.'],
  },
  async run(ctx) {
    const tokens = str(ctx.args, 'tokens')!;
    const grids = await readAllGrids(tokens);
    const maxId = grids.reduce((m, g) => g.ids.reduce((a, b) => Math.max(a, b), m), -1);
    const codebookFile = str(ctx.args, 'codebook');
    if (codebookFile && ctx.args.options.k !== undefined) throw new UserError('give only one of --codebook or --k');
    let k = num(ctx.args, 'k') ?? maxId + 1;
    if (codebookFile) {
      const cb = await readCodebook(codebookFile);
      k = cb.frozen.rows;
      const made = grids[0]?.codebook;
      if (made && made !== cb.fingerprint) throw new UserError(`${tokens} was made with codebook ${made}, not with ${codebookFile} (${cb.fingerprint})`);
    }
    if (maxId >= k) throw new UserError(`${tokens} holds token id ${maxId}, outside the codebook's range 0..${k - 1}`);
    const order = num(ctx.args, 'order') ?? DEFAULTS.generation.priorOrder;
    const started = Date.now();
    const prior = fitPrior(grids, k, order, grids[0]?.codebook ?? '');
    const out = str(ctx.args, 'out')!;
    await writePrior(out, prior);
    const contexts = prior.levels.reduce((s, l) => s + l.keys.length, 0);
    const json = { out, k, order, tokens: prior.tokens, images: prior.images, grid: prior.grid, contexts, codebook: prior.codebook, seconds: (Date.now() - started) / 1000 };
    return { json, text: `wrote ${out} (order ${order}, K=${k}, ${prior.tokens} tokens of ${prior.images} grids, ${contexts} contexts)` };
  },
};

const evaluate: Command = {
  spec: {
    name: 'prior eval',
    summary: 'Held-out likelihood of a token data set under a prior: nll (nats/token), perplexity = exp(nll), and the unigram perplexity.',
    options: {
      prior: PRIOR,
      tokens: { kind: 'string', value: 'DATA', required: true, help: 'token data set (.npy) or tokens .json to score' },
      ngram: { kind: 'string', value: 'P', help: 'with an AR prior folder: the n-gram prior (.safetensors) to compare with (default: one fitted on --tokens itself)' },
      ...COMMON,
    },
  },
  async run(ctx) {
    const file = str(ctx.args, 'prior')!;
    const grids = await readAllGrids(str(ctx.args, 'tokens')!);
    if (await isArPriorFolder(file)) return evaluateArPrior(ctx, file, grids);
    if (ctx.args.options.ngram !== undefined) throw new UserError(`--ngram is for an autoregressive prior folder; ${file} is an n-gram prior file`);
    const prior = await readPrior(file);
    if (grids[0]?.codebook) checkPriorMatchesCodebook(prior, { fingerprint: grids[0].codebook }, file);
    const s = scorePrior(prior, grids);
    return {
      json: s,
      text: `${s.tokens} tokens: nll ${fmt(s.nll)} nats/token, perplexity ${fmt(s.perplexity, 2)} (unigram ${fmt(s.unigramPerplexity, 2)})`,
    };
  },
};

/** "y0,x0,y1,x1" (half-open rows and columns) -> mask */
function regionMask(text: string, [h, w]: [number, number]): Uint8Array {
  const parts = text.split(',').map((s) => Number(s.trim()));
  const [y0, x0, y1, x1] = parts;
  if (parts.length !== 4 || !parts.every(Number.isInteger) || y0! < 0 || x0! < 0 || y1! > h || x1! > w || y0! >= y1! || x0! >= x1!) {
    throw new UserError(`--region must be y0,x0,y1,x1 with 0 <= y0 < y1 <= ${h} and 0 <= x0 < x1 <= ${w}, got '${text}'`);
  }
  const mask = new Uint8Array(h * w);
  for (let y = y0!; y < y1!; y++) mask.fill(1, y * w + x0!, y * w + x1!);
  return mask;
}

const sample: Command = {
  spec: {
    name: 'prior sample',
    summary: 'Draw a token grid from a prior, or edit one: redraw a region given the tokens around it, or a share of its cells (variations).',
    options: {
      prior: PRIOR,
      out: { kind: 'string', value: 'FILE', required: true, help: 'output tokens (.json, as tokenize writes)' },
      grid: { kind: 'string', value: 'HxW', help: "size of a new grid (default: the training data's)" },
      tokens: { kind: 'string', value: 'FILE', help: 'edit this grid instead (tokens .json or .npy data set)' },
      index: { kind: 'int', value: 'I', help: 'which grid of --tokens (default 0)' },
      region: { kind: 'string', value: 'Y0,X0,Y1,X1', help: 'with --tokens: redraw the cells of rows Y0..Y1-1, columns X0..X1-1' },
      variations: { kind: 'number', value: 'F', help: `with --tokens: redraw a seeded random share F of the cells (default ${DEFAULTS.generation.variations} when no --region)` },
      ...SAMPLING,
      ...AR_SAMPLING,
      ...COMMON,
    },
    notes: ['An AR prior folder runs on the CPU here; `generate --prior DIR` runs it on --device.'],
  },
  async run(ctx) {
    const file = str(ctx.args, 'prior')!;
    if (await isArPriorFolder(file)) return withArModel(ctx, file, 'cpu', (model) => sampleGrid(ctx, file, arDrawer(ctx, model)));
    refuseArOptions(ctx.args, file);
    return sampleGrid(ctx, file, ngramDrawer(await readPrior(file), file));
  },
};

function ngramDrawer(prior: TokenPrior, file: string): GridDrawer {
  return {
    grid: prior.grid,
    codebook: prior.codebook,
    check: (fingerprint) => checkPriorMatchesCodebook(prior, { fingerprint }, file),
    sample: async (size, options) => samplePriorGrid(prior, size, options),
    inpaint: async (ids, grid, mask, options) => inpaintGrid(prior, ids, grid, mask, options),
  };
}

/** `prior sample` with either kind of prior: a new grid, or an edit of --tokens. */
async function sampleGrid(ctx: Context, file: string, prior: GridDrawer): Promise<{ json: unknown; text: string }> {
  const a = ctx.args;
  const options = samplingOptions(a);
  const tokensFile = str(a, 'tokens');
  const out = str(a, 'out')!;
  if (!/\.json$/i.test(out)) throw new UserError(`--out must end in .json, got ${out}`);
  let grid: TokenGrid;
  let edited = 0;
  if (!tokensFile) {
    for (const editOnly of ['index', 'region', 'variations']) if (a.options[editOnly] !== undefined) throw new UserError(`--${editOnly} needs --tokens`);
    const size = str(a, 'grid') ? parseGrid('grid', str(a, 'grid')!) : prior.grid;
    const ids = await prior.sample(size, options);
    grid = { image: `sampled from ${file}`, grid: size, ids: Array.from(ids), codebook: prior.codebook, encoder: '', device: 'cpu' };
    edited = ids.length;
  } else {
    if (a.options.grid !== undefined) throw new UserError('--grid is for new grids; an edited grid keeps the size of --tokens');
    if (a.options.region !== undefined && a.options.variations !== undefined) throw new UserError('give only one of --region or --variations');
    const source = await readOneGrid(tokensFile, num(a, 'index'));
    if (source.codebook) prior.check(source.codebook);
    const cells = source.grid[0] * source.grid[1];
    const region = str(a, 'region');
    const mask = region ? regionMask(region, source.grid) : variationMask(cells, num(a, 'variations') ?? DEFAULTS.generation.variations, options.seed);
    const ids = await prior.inpaint(source.ids, source.grid, mask, options);
    edited = mask.reduce((s, m) => s + m, 0);
    grid = { ...source, image: source.image, ids: Array.from(ids), device: 'cpu' };
  }
  await writeTokenJson(out, [grid]);
  return {
    json: { out, grid: grid.grid, ids: grid.ids, redrawn: edited, seed: options.seed },
    text: `wrote ${out} (${grid.grid.join('x')} grid, ${edited} cells drawn from ${file})`,
  };
}

export const prior: CommandGroup = {
  name: 'prior',
  summary: 'Token priors: fit one over a token data set, score held-out tokens, sample or edit grids.',
  subcommands: { fit, eval: evaluate, sample },
};

// The autoregressive prior folder in `generate --prior`, `prior sample` and `prior eval`: a
// `--prior` that names a folder is an AR model (engine/generate/ar/), a file the fitted n-gram.
import { promises as fs } from 'node:fs';
import { fmt, num, str, type Context } from '../command.js';
import type { OptionSpec, ParsedArgs } from '../args.js';
import {
  DEFAULTS,
  UserError,
  checkArMatchesCodebook,
  checkPriorMatchesCodebook,
  fitPrior,
  inpaintArGrid,
  openArModel,
  readPrior,
  sampleArGrid,
  scoreArGrids,
  scorePrior,
  readArFolder,
  resolveClass,
  type ArFolder,
  type ArModel,
  type ArSampleOptions,
  type BackendName,
  type SampleOptions,
  type TokenGrid,
  type TokenPrior,
} from '../../engine/index.js';

/** Options only an AR prior folder takes. */
export const AR_SAMPLING: Record<string, OptionSpec> = {
  class: { kind: 'string', value: 'C', help: "with an AR prior folder: the class, a number or one of unicode2.json's class_names (default: unconditional)" },
  'prior-guidance': { kind: 'number', value: 'G', help: 'with an AR prior folder and --class: classifier-free guidance, uncond + G * (cond - uncond) (default 1 = none)' },
};

export async function isArPriorFolder(prior: string): Promise<boolean> {
  return fs.stat(prior).then((s) => s.isDirectory(), () => false);
}

/** Refuses the AR-only options for an n-gram prior file. */
export function refuseArOptions(a: ParsedArgs, prior: string): void {
  for (const name of Object.keys(AR_SAMPLING)) {
    if (a.options[name] !== undefined) throw new UserError(`--${name} is for an autoregressive prior folder; ${prior} is an n-gram prior file`);
  }
}

export function arSampleOptions(a: ParsedArgs, f: ArFolder, sampling: SampleOptions, ctx: Context, total: number): ArSampleOptions {
  const text = str(a, 'class');
  let drawn = 0;
  return {
    ...sampling,
    classId: text === undefined ? null : resolveClass(f.sidecar, text),
    guidance: num(a, 'prior-guidance') ?? 1,
    signal: ctx.signal,
    onToken: () => ctx.progress.report({ phase: 'sample', done: ++drawn, total }),
  };
}

/** Opens the folder's model, runs `use`, releases the session. */
export async function withArModel<T>(ctx: Context, dir: string, device: BackendName, use: (m: ArModel) => Promise<T>): Promise<T> {
  const model = await openArModel(await readArFolder(dir), { device, onWarning: (m) => ctx.progress.note(`unicode2: warning: ${m}`) });
  try {
    return await use(model);
  } finally {
    await model.session.release();
  }
}

/** What `prior sample` draws with: an n-gram prior or an AR model. */
export interface GridDrawer {
  /** the grid a new sample has by default */
  grid: [number, number];
  codebook: string;
  /** throws unless tokens of codebook `fingerprint` suit this prior */
  check(fingerprint: string): void;
  sample(grid: [number, number], opts: SampleOptions): Promise<Int32Array>;
  inpaint(ids: ArrayLike<number>, grid: [number, number], mask: Uint8Array, opts: SampleOptions): Promise<Int32Array>;
}

export function arDrawer(ctx: Context, model: ArModel): GridDrawer {
  const f = model.folder;
  const options = (opts: SampleOptions, total: number) => arSampleOptions(ctx.args, f, opts, ctx, total);
  return {
    grid: f.sidecar.grid,
    codebook: f.sidecar.codebook,
    check: (fingerprint) => checkArMatchesCodebook(f, { fingerprint }, `the tokens' codebook ${fingerprint}`),
    sample: (grid, opts) => sampleArGrid(model, grid, options(opts, grid[0] * grid[1])),
    inpaint: (ids, grid, mask, opts) => inpaintArGrid(model, ids, grid, mask, options(opts, mask.reduce((s, m) => s + m, 0))),
  };
}

/** `prior eval` of an AR folder: its perplexity beside an n-gram prior's (--ngram, or one fitted on
 *  the evaluated data itself, which flatters it) and that n-gram's unigram, on the same grids. */
export async function evaluateArPrior(ctx: Context, dir: string, grids: TokenGrid[]): Promise<{ json: unknown; text: string }> {
  const a = ctx.args;
  return withArModel(ctx, dir, 'cpu', async (model) => {
    const made = grids[0]?.codebook;
    if (made) checkArMatchesCodebook(model.folder, { fingerprint: made }, `the tokens' codebook ${made}`);
    const ngramFile = str(a, 'ngram');
    const order = DEFAULTS.generation.priorOrder;
    let ngram: TokenPrior;
    if (ngramFile) {
      ngram = await readPrior(ngramFile);
      checkPriorMatchesCodebook(ngram, { k: model.folder.sidecar.numImageTokens, fingerprint: made ?? '' }, ngramFile);
    } else {
      ngram = fitPrior(grids, model.folder.sidecar.numImageTokens, order, made ?? '');
    }
    const ar = await scoreArGrids(model, grids, ctx.signal);
    const n = scorePrior(ngram, grids);
    const source = ngramFile ?? 'fitted on --tokens itself (in-sample: optimistic)';
    const json = {
      tokens: ar.tokens,
      nll: ar.nll,
      perplexity: ar.perplexity,
      unigramPerplexity: n.unigramPerplexity,
      ngram: { source, order: ngram.order, nll: n.nll, perplexity: n.perplexity },
      model: model.folder.model,
      device: model.session.device,
    };
    const text = `${ar.tokens} tokens: AR model nll ${fmt(ar.nll)} nats/token, perplexity ${fmt(ar.perplexity, 2)}; n-gram (order ${ngram.order}, ${source}) ${fmt(n.perplexity, 2)}; unigram ${fmt(n.unigramPerplexity, 2)}`;
    return { json, text };
  });
}

// What every `unicode2` command shares: the Command shape, the options several commands take,
// and small helpers for reading options and reporting.
import type { CommandSpec, OptionSpec, ParsedArgs } from './args.js';
import type { ProgressReporter } from './progress.js';
import { DEFAULTS, DEFAULT_PRECISION, ENCODER_SPEC_HELP, PRECISIONS, UNCALIBRATED_NPROBE, checkGridSize, checkTokensMatchCodebook, listImages, readTokenGrids, stepsOf, UserError, type Codebook, type ComputeBackend, type DownloadControl, type EncoderOptions, type SearchOptions, type SkippedImage, type TokenGrid } from '../engine/index.js';

export const DEVICE: OptionSpec = {
  kind: 'string',
  choices: ['auto', 'cpu', 'webgpu'],
  help: `compute device: 'auto' (a hardware GPU if present, else cpu), 'cpu' or 'webgpu' (default ${DEFAULTS.device})`,
};
export const COMMON: Record<string, OptionSpec> = {
  json: { kind: 'flag', help: 'print exactly one JSON document on stdout' },
  quiet: { kind: 'flag', help: 'no progress on stderr' },
  help: { kind: 'flag', help: 'show this help' },
};
export const COMPUTE: Record<string, OptionSpec> = { device: DEVICE, ...COMMON };
export const CODEBOOK: OptionSpec = { kind: 'string', value: 'CB', required: true, help: 'codebook (.safetensors)' };
export const ENCODER_OVERRIDE: OptionSpec = {
  kind: 'string',
  value: 'E',
  help: `encoder to use instead of the one recorded in the codebook: ${ENCODER_SPEC_HELP}`,
};
/** Which of a model's files and layers (--precision, --layer), where --encoder names a model. */
export const ENCODER_MODEL: Record<string, OptionSpec> = {
  precision: {
    kind: 'string',
    choices: Object.keys(PRECISIONS),
    help: `which of the export's files: ${Object.entries(PRECISIONS).map(([p, suffix]) => `${p} (*${suffix}.onnx)`).join(', ')} (default ${DEFAULT_PRECISION})`,
  },
  layer: {
    kind: 'int',
    value: 'I',
    help: "the hidden state to take, as Python indexes outputs.hidden_states (-1 the last layer, -2 the penultimate, as LLaVA-style models use), for exports with hidden_states.<i> outputs (default: the model's last_hidden_state, after its final layer norm)",
  },
};

/** --precision / --layer as the engine's encoder options, with a download's progress and Ctrl-C. */
export function encoderOptions(ctx: Context): EncoderOptions {
  const precision = str(ctx.args, 'precision') as EncoderOptions['precision'];
  const layer = num(ctx.args, 'layer');
  return { ...(precision !== undefined && { precision }), ...(layer !== undefined && { layer }), download: hubDownload(ctx) };
}

/** A model downloaded from the hub: its bytes on the progress line; Ctrl-C stops it (resumed next time). */
export function hubDownload(ctx: Context): DownloadControl {
  return { signal: ctx.signal, onProgress: (e) => ctx.progress.report(e) };
}
export const IMAGES_OPERANDS = { name: 'IMAGES', min: 1, max: Infinity };
export const SEARCH: Record<string, OptionSpec> = {
  nprobe: {
    kind: 'int',
    value: 'P',
    help: `IVF search through the codebook's coarse level (used whenever it has one): cells probed per query (default: the codebook's calibrated nprobe, else ${UNCALIBRATED_NPROBE}; more cells, better recall, slower)`,
  },
  exact: { kind: 'flag', help: 'exact search even when the codebook has a coarse level' },
};

/** What a command gets to work with; the backend is opened lazily so `--help` and input errors
 *  found before computing never start a GPU. */
export interface Context {
  args: ParsedArgs;
  signal: AbortSignal;
  progress: ProgressReporter;
  backend(): Promise<ComputeBackend>;
}

export interface Command {
  spec: CommandSpec;
  /** exitCode: 2 when part of the input failed while the rest was done (a shard) */
  run(ctx: Context): Promise<{ json: unknown; text: string; exitCode?: number }>;
}

/** A command with subcommands, e.g. `unicode2 prior fit`; each subcommand's spec name is the full
 *  "prior fit" so its messages and help name it that way. */
export interface CommandGroup {
  name: string;
  summary: string;
  subcommands: Record<string, Command>;
}

export const str = (args: ParsedArgs, name: string) => args.options[name] as string | undefined;

/** --nprobe / --exact (SEARCH) as the engine's search options, checked against the codebook. */
export function searchOptions(args: ParsedArgs, cb: Codebook): SearchOptions {
  const nprobe = num(args, 'nprobe');
  const exact = args.options.exact === true;
  if (nprobe !== undefined) {
    if (exact) throw new UserError('give only one of --nprobe or --exact');
    if (!(Number.isInteger(nprobe) && nprobe >= 1)) throw new UserError(`--nprobe must be a whole number of at least 1 (leave it out for the codebook's calibrated nprobe); got ${nprobe}`);
    if (!cb.coarse) throw new UserError('--nprobe needs a codebook with a coarse level (IVF); this one has none, so its search is exact');
  }
  return { search: exact ? 'exact' : 'auto', ...(nprobe !== undefined && { nprobe }) };
}
export const num = (args: ParsedArgs, name: string) => args.options[name] as number | undefined;

export async function listAll(operands: string[]): Promise<string[]> {
  const lists = await Promise.all(operands.map((o) => listImages(o)));
  const images = lists.flat();
  if (images.length === 0) throw new UserError(`no images found in ${operands.join(', ')}`);
  return images;
}

export function reportSkipped(progress: ProgressReporter, skipped: SkippedImage[]): void {
  for (const s of skipped) progress.note(`unicode2: skipped ${s.path}: ${s.reason}`);
}

export const imageProgress = (ctx: Context, phase: string) => stepsOf(phase, (e) => ctx.progress.report(e));

/** Grid `index` (default 0) of a tokens file (--tokens with --index); with `cb`, checked to be
 *  tokens of that codebook (fingerprint when recorded, grid, id range). */
export async function readOneGrid(file: string, index: number | undefined, cb?: Codebook): Promise<TokenGrid> {
  const grids = await readTokenGrids(file);
  const g = grids[index ?? 0];
  if (!g) throw new UserError(`--index ${index} is out of range: ${file} holds ${grids.length} token grid(s)`);
  if (cb) checkTokensMatchCodebook(cb, [g], file);
  return g;
}

/** "HxW" (e.g. 14x14) -> [h, w] */
export function parseGrid(option: string, text: string): [number, number] {
  const m = /^(\d+)x(\d+)$/i.exec(text.trim());
  const grid = m ? ([Number(m[1]), Number(m[2])] as [number, number]) : null;
  if (!grid || grid[0] < 1 || grid[1] < 1) throw new UserError(`--${option} must be HxW with whole numbers >= 1 (e.g. 14x14), got '${text}'`);
  checkGridSize(grid, `--${option}`);
  return grid;
}

export function fmt(x: number, digits = 4): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(digits);
}

/** a share in [0, 1] as a percentage, e.g. utilization 0.8734 -> "87.34%" */
export function pct(x: number): string {
  return `${(100 * x).toFixed(2)}%`;
}

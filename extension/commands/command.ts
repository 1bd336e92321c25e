// What the VS Code commands share, as cli/command.ts does for the CLI: the shape of a command
// module, a Lab cell read back into a run, and what several runs do alike.
//
// Each command module exports a prompt that asks for what is missing (file dialogs, the encoder of
// a codebook that needs one: prompts.ts) and reads today's settings, and a run that takes
// everything explicitly and records it in its Lab cell. Its Lab re-run reads a cell back
// (Recorded) into the same run, so a re-run repeats the cell's inputs, parameters, codebook and
// encoder — what the cell shows — not today's settings or active codebook.
import * as path from 'node:path';
import { writeTokenJson, SEARCH_CHOICES, UserError, type RgbImage, type SearchOptions, type TokenGrid } from '../engine/index.js';
import type { LabCell } from '../../common/protocol/lab.js';
import type { Studio } from '../state/studio.js';
import { errorText } from '../state/errors.js';
import { workspaceDataDir } from '../state/config.js';
import { tokensFile } from '../state/codebook-names.js';
import { thumbnailUri } from '../panels/images.js';

/** A palette (and Explorer menu) command. */
export interface StudioCommand {
  /** its id in package.json */
  readonly id: string;
  /** asks for what is missing, then runs; `target` is the file or folder it was invoked on */
  prompt(studio: Studio, target?: string): Promise<void>;
}

/** The command of a Lab cell kind: a new run prompts as the palette does, a re-run replays a cell. */
export interface LabCommand {
  prompt(studio: Studio): Promise<void>;
  rerun(studio: Studio, cell: LabCell): Promise<void>;
  /** follows a cell's run on Slurm again after a reload (the jobs went on without the window) */
  reattach?(studio: Studio, cell: LabCell): Promise<void>;
}

/** What a tokenize run takes besides its images. */
export interface TokenizeWith {
  codebook: string;
  /** the encoder spec to tokenize with; absent in cells of earlier versions: the codebook's own */
  encoder?: string;
  /** IVF through the codebook's coarse level or exact, and nprobe */
  search: Required<SearchOptions>;
}

/** A tokenize run's parameters as its cell records them (Recorded.tokenizeWith reads them back):
 *  nprobe 0 (the codebook's own, which the cell's metrics name; meaningless for a flat codebook)
 *  is kept for the re-run but not shown. */
export function tokenizeParams({ encoder, search }: TokenizeWith): { params: Record<string, string | number>; replay: Record<string, string | number> } {
  const shown = search.nprobe > 0 ? search : { search: search.search };
  return { params: { ...(encoder ? { encoder } : {}), ...shown }, replay: { nprobe: search.nprobe } };
}

/** A Lab cell read back into a run: a value the cell lacks is a clear error, not a guess. */
export class Recorded {
  constructor(private readonly cell: LabCell) {}

  private missing(name: string): UserError {
    return new UserError(`this Lab cell does not record its ${name} (it was made by an earlier version); start the run again from the palette`);
  }

  input(name: string): string {
    const value = this.cell.inputs[name];
    if (typeof value !== 'string' || !value) throw this.missing(name);
    return value;
  }

  /** a parameter, shown or kept for the re-run only (cells of earlier versions showed them all) */
  number(name: string): number {
    const value = this.cell.params[name] ?? this.cell.replay?.[name];
    if (typeof value !== 'number' || !Number.isFinite(value)) throw this.missing(name);
    return value;
  }

  text(name: string): string {
    const value = this.optionalText(name);
    if (value === undefined) throw this.missing(name);
    return value;
  }

  oneOf<T extends string>(name: string, choices: readonly T[]): T {
    const value = this.text(name);
    if (!choices.includes(value as T)) throw this.missing(name);
    return value as T;
  }

  optionalNumber(name: string): number | undefined {
    const value = this.cell.params[name] ?? this.cell.replay?.[name];
    return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
  }

  optionalText(name: string): string | undefined {
    const value = this.cell.params[name] ?? this.cell.replay?.[name];
    return typeof value === 'string' && value ? value : undefined;
  }

  tokenizeWith(): TokenizeWith {
    const search = { search: this.oneOf('search', SEARCH_CHOICES), nprobe: this.number('nprobe') };
    return { codebook: this.input('codebook'), encoder: this.optionalText('encoder'), search };
  }
}

export const MAX_THUMBS = 4;
export const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

/** A thumbnail for a Lab cell, or null (logged) when it cannot be made: a finished job never
 *  fails because of its pictures. */
export async function thumbnail(studio: Studio, source: string | RgbImage): Promise<Awaited<ReturnType<typeof thumbnailUri>> | null> {
  try {
    return await thumbnailUri(source);
  } catch (err) {
    studio.log.appendLine(`[thumbnail] ${typeof source === 'string' ? `${source}: ` : ''}${errorText(err)}`);
    return null;
  }
}

/** Thumbnails of the first few images or pictures; those that cannot be made are left out. */
export async function thumbnails(studio: Studio, sources: (string | RgbImage)[]): Promise<string[]> {
  const out: string[] = [];
  for (const source of sources.slice(0, MAX_THUMBS)) {
    const thumb = await thumbnail(studio, source);
    if (thumb) out.push(thumb.uri);
  }
  return out;
}

/** Token JSON under <workspace>/.unicode2/tokens, named after the set and its codebook (none
 *  without a workspace: the set stays in memory). */
export async function saveTokens(name: string, codebook: string, grids: TokenGrid[]): Promise<string[]> {
  const dir = workspaceDataDir();
  if (!dir) return [];
  const file = tokensFile(path.join(dir, 'tokens'), name, codebook, '.tokens.json');
  await writeTokenJson(file, grids);
  return [file];
}

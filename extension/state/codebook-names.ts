// Where a workspace's codebooks live and what they are called: each build writes a codebook of its
// own, `<workspace>/.unicode2/codebooks/<name>.safetensors`, so several sit side by side and the
// token sets, priors and Lab cells made with one keep pointing at a file that still exists. A name
// is offered from what the build does (K, encoder, method) and never names an existing codebook.
// (No 'vscode' here: the unit tests use these as the commands do.)
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { UserError, type BuildMethod } from '../engine/index.js';

export const CODEBOOKS_FOLDER = 'codebooks';
/** where builds of earlier versions wrote their one codebook (still listed, never written) */
export const LEGACY_CODEBOOK = 'codebook.safetensors';
const EXTENSION = '.safetensors';
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** `<data dir>/codebooks` */
export function codebooksDir(dataDir: string): string {
  return path.join(dataDir, CODEBOOKS_FOLDER);
}

/** A codebook's name as lists and headers show it: its file name without `.safetensors`. */
export function codebookName(file: string): string {
  const base = path.basename(file);
  return base.toLowerCase().endsWith(EXTENSION) ? base.slice(0, -EXTENSION.length) : base;
}

/** A short word for an encoder spec: 'dct' for the DCT in any size, else the model's folder, file or repository name. */
export function encoderTag(spec: string): string {
  if (/^dct(:|$)/i.test(spec)) return 'dct';
  const last = spec.replace(/[\\/]+$/, '').split(/[\\/]/).pop() ?? spec;
  return last.replace(/\.onnx$/i, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '') || 'model';
}

/** The name a build is offered: `k<K>-<encoder>`, with the method when it is not chosen automatically. */
export function suggestedName({ k, encoder, method }: { k: number; encoder: string; method: BuildMethod }): string {
  return [`k${k}`, encoderTag(encoder), ...(method === 'auto' ? [] : [method])].join('-');
}

/** Why `name` cannot name a new codebook in `dir` (null when it can): a file name of letters,
 *  digits, '.', '-' and '_', not that of an existing codebook nor of a build still writing it. */
export function nameProblem(dir: string, name: string): string | null {
  const stem = stemOf(name);
  if (!NAME.test(stem)) return 'use letters, digits, ".", "-" and "_" (no spaces or slashes), starting with a letter or digit';
  const file = path.join(dir, stem + EXTENSION);
  if (existsSync(file)) return `${stem} already exists: a build never replaces a codebook, choose another name`;
  if (existsSync(`${file}.lock`)) return `a build into ${stem} is running: choose another name`;
  return null;
}

/** The file a new codebook called `name` is written to; a UserError when the name cannot be used. */
export function newCodebookFile(dir: string, name: string): string {
  const problem = nameProblem(dir, name);
  if (problem) throw new UserError(`cannot name a codebook "${name}": ${problem}`);
  return path.join(dir, stemOf(name) + EXTENSION);
}

/** A typed name without the `.safetensors` one may type along (a path stays a path, and is refused). */
function stemOf(name: string): string {
  const trimmed = name.trim();
  return trimmed.toLowerCase().endsWith(EXTENSION) ? trimmed.slice(0, -EXTENSION.length) : trimmed;
}

/** `base` when it names no codebook yet, else the first free `base-2`, `base-3`, … */
export function uniqueName(dir: string, base: string): string {
  const stem = codebookName(base);
  if (!nameProblem(dir, stem)) return stem;
  for (let n = 2; ; n++) if (!nameProblem(dir, `${stem}-${n}`)) return `${stem}-${n}`;
}

/** The workspace's codebooks: every `.safetensors` of `<data dir>/codebooks` (by name), then the
 *  legacy `<data dir>/codebook.safetensors` when there is one. */
export async function listCodebookFiles(dataDir: string): Promise<string[]> {
  const dir = codebooksDir(dataDir);
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  // by name, numbers in order: k64-dct, k64-dct-2, …, k64-dct-10
  const byName = (a: string, b: string) => codebookName(a).localeCompare(codebookName(b), 'en', { numeric: true });
  const files = names.filter((n) => n.toLowerCase().endsWith(EXTENSION)).sort(byName).map((n) => path.join(dir, n));
  const legacy = path.join(dataDir, LEGACY_CODEBOOK);
  return existsSync(legacy) ? [...files, legacy] : files;
}

/** Where a token set of `name` (an image's or a folder's) made with `codebook` is saved:
 *  `<tokens dir>/<name>.<codebook name><suffix>`, so tokenizing the same images with a second
 *  codebook keeps the first one's tokens, and the Explorer lists an image's sets side by side.
 *  (Sets saved by earlier versions as `<name><suffix>` are read as before: readers go by content.) */
export function tokensFile(tokensDir: string, name: string, codebook: string, suffix: '.tokens.json' | '.tokens.npy'): string {
  return path.join(tokensDir, `${name}.${codebookName(codebook)}${suffix}`);
}

/** Where something made from `name`'s tokens with `codebook` is written (a decoded or generated
 *  image, a fitted prior): `<dir>/<name>.<codebook name><ext>` — with `fresh`, `<name>-2.…`,
 *  `<name>-3.…` when it is taken (every generation keeps its own file); without, one file per
 *  name and codebook, so two codebooks' decodes of the same tokens sit side by side. */
export function madeFile(dir: string, name: string, codebook: string, ext: string, fresh = false): string {
  const file = (n: number) => path.join(dir, `${n > 1 ? `${name}-${n}` : name}.${codebookName(codebook)}${ext}`);
  if (!fresh) return file(1);
  for (let n = 1; ; n++) if (!existsSync(file(n))) return file(n);
}

/** A word in a set's name or its images' folder that marks it as kept out of training. */
const HELD_OUT = /(^|[^a-z])(held[-_ ]?out|holdout|test|val|valid|validation|eval)([^a-z]|$)/i;

/** Whether a token set is held out (Fit leaves it unticked): its label, its file's name or its
 *  images' folder says so (`held-out`, `holdout`, `test`, `val`, `validation`, `eval`). */
export function isHeldOut(set: { label: string; file?: string; grids: readonly { image: string }[] }): boolean {
  const folder = set.grids[0] ? path.basename(path.dirname(set.grids[0].image)) : '';
  return [set.label, set.file ? path.basename(set.file) : '', folder].some((name) => HELD_OUT.test(name));
}

/** Each file's label as lists, headers and the status bar show it: its codebook name, and where
 *  two files share that name, ` · ` and the fewest last folders that tell them apart (as VS Code's
 *  tab labels do): `codebook · .unicode2` beside `codebook · demo-out`. */
export function codebookLabels(files: readonly string[]): Map<string, string> {
  const unique = [...new Set(files.map((f) => path.resolve(f)))];
  const byName = new Map<string, string[]>();
  for (const file of unique) byName.set(codebookName(file), [...(byName.get(codebookName(file)) ?? []), file]);
  const labels = new Map<string, string>();
  for (const [name, same] of byName) {
    if (same.length === 1) {
      labels.set(same[0]!, name);
      continue;
    }
    const folders = same.map((f) => path.dirname(f).split(/[\\/]+/).filter(Boolean));
    const depth = Math.max(...folders.map((parts) => parts.length));
    // the shortest tail of folders that differs for all of them (the whole folder when none does)
    let n = 1;
    while (n < depth && new Set(folders.map((parts) => parts.slice(-n).join('/'))).size < same.length) n++;
    same.forEach((file, i) => labels.set(file, `${name} · ${folders[i]!.slice(-n).join('/') || path.dirname(file)}`));
  }
  for (const file of files) labels.set(file, labels.get(path.resolve(file))!);
  return labels;
}

/** `file`'s label among `others` (see codebookLabels). */
export function codebookLabel(file: string, others: readonly string[]): string {
  return codebookLabels([file, ...others]).get(file)!;
}

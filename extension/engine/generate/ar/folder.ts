// An autoregressive prior folder: `config.json`, the decoder ONNX model (`onnx/model.onnx` or
// `decoder_model_merged.onnx`, as optimum and Transformers.js lay them out) and the sidecar
// `unicode2.json` that says which vocabulary ids are image tokens, the grid, the codebook and the
// conditioning. Every number here that later sizes an array or a loop is bounded before use.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { UserError } from '../../../../common/errors.js';
import { MAX_AR_PREFIX, MAX_AR_VOCAB, checkGridSize } from '../../core/limits.js';
import { isFile, readJson } from '../diffusion/folder.js';

/** Where the decoder model may sit, in the order looked for. */
export const AR_MODEL_CANDIDATES = ['onnx/model.onnx', 'decoder_model_merged.onnx', 'onnx/decoder_model_merged.onnx', 'model.onnx'];
export const AR_SIDECAR = 'unicode2.json';

export type ArCondition =
  | { type: 'class'; tokenOffset: number; numClasses: number; nullToken: number }
  | { type: 'none' };

/** unicode2.json, checked. */
export interface ArSidecar {
  imageTokenOffset: number;
  numImageTokens: number;
  grid: [number, number];
  /** the codebook's fingerprint ('' = not recorded) */
  codebook: string;
  condition: ArCondition;
  /** prompt tokens before the condition token (or alone, for type none): BOS, <image_start>... */
  prefix: number[];
  classNames: string[] | null;
}

export interface ArFolder {
  folder: string;
  model: string;
  sidecarFile: string;
  sidecar: ArSidecar;
  /** config.json as read (the layout check takes layers, heads, sizes from it) */
  config: Record<string, unknown>;
}

/** A whole number in [min, max], or a UserError naming the key. */
function whole(doc: Record<string, unknown>, key: string, file: string, min: number, max: number): number {
  const v = doc[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new UserError(`${file}: "${key}" must be a whole number in ${min}..${max}, found ${JSON.stringify(v) ?? 'nothing'}`);
  }
  return v;
}

function readCondition(doc: Record<string, unknown>, file: string): ArCondition {
  const c = doc.condition ?? { type: 'none' };
  if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new UserError(`${file}: "condition" must be an object {"type": "class" | "none", ...}`);
  const cond = c as Record<string, unknown>;
  if (cond.type === 'none') return { type: 'none' };
  if (cond.type !== 'class') throw new UserError(`${file}: "condition"."type" must be "class" or "none", found ${JSON.stringify(cond.type)}`);
  const where = `${file} "condition"`;
  return {
    type: 'class',
    tokenOffset: whole(cond, 'token_offset', where, 0, MAX_AR_VOCAB - 1),
    numClasses: whole(cond, 'num_classes', where, 1, MAX_AR_VOCAB),
    nullToken: whole(cond, 'null_token', where, 0, MAX_AR_VOCAB - 1),
  };
}

function readIds(doc: Record<string, unknown>, key: string, file: string): number[] {
  const v = doc[key] ?? [];
  if (!Array.isArray(v) || v.length > MAX_AR_PREFIX || !v.every((t) => Number.isInteger(t) && t >= 0 && t < MAX_AR_VOCAB)) {
    throw new UserError(`${file}: "${key}" must be a list of at most ${MAX_AR_PREFIX} token ids in 0..${MAX_AR_VOCAB - 1}`);
  }
  return v as number[];
}

function readClassNames(doc: Record<string, unknown>, file: string, condition: ArCondition): string[] | null {
  const v = doc.class_names;
  if (v === undefined) return null;
  const n = condition.type === 'class' ? condition.numClasses : 0;
  if (!Array.isArray(v) || v.length > n || !v.every((s) => typeof s === 'string')) {
    throw new UserError(`${file}: "class_names" must be a list of at most "num_classes" (${n}) strings`);
  }
  return v as string[];
}

/** unicode2.json's keys, checked; the ranges it names must not overlap. */
export function parseSidecar(doc: Record<string, unknown>, file: string): ArSidecar {
  const imageTokenOffset = whole(doc, 'image_token_offset', file, 0, MAX_AR_VOCAB - 1);
  const numImageTokens = whole(doc, 'num_image_tokens', file, 1, MAX_AR_VOCAB - imageTokenOffset);
  const grid = doc.grid;
  if (!Array.isArray(grid)) throw new UserError(`${file}: "grid" must be [height, width] in tokens`);
  checkGridSize(grid, `${file} "grid"`);
  const codebook = doc.codebook ?? '';
  if (typeof codebook !== 'string') throw new UserError(`${file}: "codebook" must be the codebook's fingerprint (a string)`);
  const condition = readCondition(doc, file);
  const prefix = readIds(doc, 'prefix', file);
  if (condition.type === 'class') {
    const { tokenOffset: c0, numClasses: n, nullToken: u } = condition;
    // half-open ranges [a, a + m) and [b, b + n) overlap
    const overlap = (a: number, m: number, b: number, k: number) => Math.max(a, b) < Math.min(a + m, b + k);
    if (c0 + n > MAX_AR_VOCAB) throw new UserError(`${file}: class tokens ${c0}..${c0 + n - 1} exceed the vocabulary limit ${MAX_AR_VOCAB}`);
    if (overlap(c0, n, imageTokenOffset, numImageTokens) || overlap(u, 1, imageTokenOffset, numImageTokens) || overlap(u, 1, c0, n)) {
      throw new UserError(`${file}: the class tokens ${c0}..${c0 + n - 1}, the null token ${u} and the image tokens ${imageTokenOffset}..${imageTokenOffset + numImageTokens - 1} must not overlap`);
    }
  } else if (prefix.length === 0) {
    throw new UserError(`${file}: an unconditional model ("condition": {"type": "none"}) needs "prefix": the token ids it starts from (e.g. [BOS])`);
  }
  return { imageTokenOffset, numImageTokens, grid, codebook, condition, prefix, classNames: readClassNames(doc, file, condition) };
}

/** Finds the model, reads and checks config.json and unicode2.json. */
export async function readArFolder(folder: string): Promise<ArFolder> {
  const stat = await fs.stat(folder).catch(() => null);
  if (!stat?.isDirectory()) throw new UserError(`prior '${folder}': no such folder (expected a .safetensors n-gram prior or an autoregressive model folder)`);
  const at = (rel: string) => path.join(folder, rel);
  let model: string | null = null;
  for (const candidate of AR_MODEL_CANDIDATES) if (await isFile(at(candidate))) { model = at(candidate); break; }
  const missing = [model ? null : AR_MODEL_CANDIDATES.join(' or '), ...(await Promise.all(['config.json', AR_SIDECAR].map(async (f) => ((await isFile(at(f))) ? null : f))))].filter(Boolean);
  if (missing.length || !model) throw new UserError(`${folder}: not an autoregressive prior folder: ${missing.join(', ')} missing`);
  const config = await readJson(at('config.json'));
  const sidecar = parseSidecar(await readJson(at(AR_SIDECAR)), at(AR_SIDECAR));
  return { folder, model, sidecarFile: at(AR_SIDECAR), sidecar, config };
}

/** Throws unless the model's image tokens are this codebook's codes: the same K, and the same
 *  fingerprint when the sidecar records one. */
export function checkArMatchesCodebook(f: ArFolder, codebook: { k?: number; fingerprint: string }, codebookName: string): void {
  const s = f.sidecar;
  if (codebook.k !== undefined && codebook.k !== s.numImageTokens) {
    throw new UserError(`${f.sidecarFile} says ${s.numImageTokens} image tokens, but codebook ${codebookName} has K = ${codebook.k}`);
  }
  if (s.codebook && codebook.fingerprint && s.codebook !== codebook.fingerprint) {
    throw new UserError(`${f.sidecarFile} was trained on codebook ${s.codebook}, not on ${codebookName} (${codebook.fingerprint})`);
  }
}

/** The prompt rows for one sampling: [prefix, class token] (and [prefix, null token] as the second
 *  row under guidance), or [prefix] for an unconditional model. */
export function promptRows(s: ArSidecar, classId: number | null, guided: boolean): number[][] {
  if (s.condition.type === 'none') {
    if (classId !== null) throw new UserError('this prior is unconditional ("condition": {"type": "none"}): it takes no class');
    if (guided) throw new UserError('this prior is unconditional: guidance needs a class-conditional model');
    return [s.prefix];
  }
  const { tokenOffset, numClasses, nullToken } = s.condition;
  if (classId !== null && (!Number.isInteger(classId) || classId < 0 || classId >= numClasses)) {
    throw new UserError(`class ${classId} is outside the model's classes 0..${numClasses - 1}`);
  }
  if (guided && classId === null) throw new UserError('guidance needs a class: it mixes the class row with the unconditional row', { cli: 'name one with --class', vscode: 'choose a class' });
  const cond = [...s.prefix, classId === null ? nullToken : tokenOffset + classId];
  return guided ? [cond, [...s.prefix, nullToken]] : [cond];
}

/** A class given as a number or as one of `class_names`. */
export function resolveClass(s: ArSidecar, text: string): number {
  const byName = s.classNames?.indexOf(text) ?? -1;
  if (byName >= 0) return byName;
  const n = Number(text);
  if (text.trim() === '' || !Number.isInteger(n)) {
    throw new UserError(`class '${text}' is neither a class number nor one of the model's class_names${s.classNames ? ` (${s.classNames.slice(0, 5).join(', ')}...)` : ''}`);
  }
  return n;
}

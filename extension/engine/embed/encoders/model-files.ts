// Where a vision model's files are, as real exports lay them out, and what exactly the weights are.
// A spec names a folder, an .onnx file, or a Hugging Face id resolved from the local cache
// (hub-cache.ts), what the cache lacks of the files below downloaded (hub-download.ts). In a folder
// the vision tower is, first match wins: optimum's model.onnx at the top, a vision_model.onnx, then
// onnx-community / Transformers.js's onnx/vision_model.onnx (the vision tower of a CLIP or SigLIP)
// and onnx/model.onnx (a vision-only model such as DINOv2, or a combined image+text model, which
// onnx.ts refuses naming the file to use); each with the precision's suffix (_fp16, _quantized...).
// External data (model.onnx_data) sits beside its model. The weights are identified by the sha256
// of every file they are in, which for a cache snapshot is also the name of each LFS blob
// (checked: a truncated or altered blob is refused).
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../../../common/errors.js';
import { DEFAULTS } from '../../core/defaults.js';
import { fileDigest, onFile, requireRegularFile } from '../../io/files.js';
import { cachedSnapshot, downloadHint, hubOffline, parseHubId, resolveHubModel, snapshotOfFolder, type HubRef, type ModelSource } from './hub-cache.js';
import { downloadSnapshot, type DownloadControl } from './hub-download.js';

/** Transformers.js's dtype names -> the suffix of their file names. */
export const PRECISIONS = { fp32: '', fp16: '_fp16', q8: '_quantized', int8: '_int8', uint8: '_uint8', q4: '_q4', q4f16: '_q4f16', bnb4: '_bnb4' } as const;
export type Precision = keyof typeof PRECISIONS;
export const DEFAULT_PRECISION: Precision = DEFAULTS.encoderPrecision;
const MODEL_STEMS = ['model', 'vision_model', 'onnx/vision_model', 'onnx/model'];

/** The model files for `precision`, in the order they are looked for. */
export function modelCandidates(precision: Precision): string[] {
  return MODEL_STEMS.map((stem) => `${stem}${PRECISIONS[precision]}.onnx`);
}

export interface ModelFiles {
  /** the .onnx file */
  model: string;
  /** the folder the files are in, and the model's path relative to it */
  dir: string;
  relative: string;
  config: string | null;
  preprocessor: string | null;
  /** the Hugging Face id and commit, when the folder is a cache snapshot */
  hub: ModelSource['hub'];
  /** whether the spec was a path (else a Hugging Face id) */
  byPath: boolean;
}

async function present(file: string): Promise<boolean> {
  return fs.stat(file).then(
    () => true,
    () => false,
  );
}

/** The precisions a folder (or a repo's file list) has a model for. */
async function precisionsIn(has: (relative: string) => boolean | Promise<boolean>): Promise<Precision[]> {
  const found: Precision[] = [];
  for (const p of Object.keys(PRECISIONS) as Precision[]) {
    for (const c of modelCandidates(p)) {
      if (await has(c)) {
        found.push(p);
        break;
      }
    }
  }
  return found;
}

function snapshotName(source: ModelSource): string {
  return source.hub ? `${source.hub.repo} (snapshot ${source.hub.commit.slice(0, 12)} in the Hugging Face cache)` : source.dir;
}

/** A file of the model missing from a cache snapshot: one line saying which and how to get it. */
function missingInSnapshot(source: ModelSource, files: string[]): UserError {
  const hub = source.hub!;
  const hint = downloadHint(hub.repo, hub.commit, files);
  return new UserError(`${snapshotName(source)} has no ${files.join(' or ')}`, { cli: hint, vscode: hint });
}

/** The model file of a folder for `precision`, checked to be a regular file (onnxruntime would
 *  block forever on a FIFO). */
async function modelIn(source: ModelSource, precision: Precision): Promise<string> {
  const candidates = modelCandidates(precision);
  for (const candidate of candidates) {
    const model = path.join(source.dir, candidate);
    if (await present(model)) {
      await requireRegularFile(model, 'an ONNX model');
      return candidate;
    }
  }
  const others = await precisionsIn((c) => present(path.join(source.dir, c)));
  if (others.length > 0) {
    throw new UserError(`${snapshotName(source)}: no ${precision} model (looked for ${candidates.join(', ')}); it has ${others.join(', ')}`, { cli: 'choose one of those with --precision', vscode: 'choose one of those precisions' });
  }
  if (source.hub) throw missingInSnapshot(source, [candidates[2]!, candidates[3]!]);
  throw new UserError(`${source.dir}: no ONNX model found (looked for ${candidates.join(', ')})`);
}

const CONFIGS = ['config.json', 'preprocessor_config.json'];

/** `<model>_data`, `<model>_data_<n>`, `<model>.data`: the external data of `model` (same folder;
 *  exactly these names, so a repo's file list cannot name a path outside the snapshot). */
function isExternalData(model: string, name: string): boolean {
  return name.startsWith(model) && /^(_data(_\d+)?|\.data)$/.test(name.slice(model.length));
}

/** What to fetch of a repo for `precision`: its configs, the model file and its external data. */
async function filesToFetch(ref: HubRef, precision: Precision, files: Set<string>): Promise<string[]> {
  const candidates = modelCandidates(precision);
  const model = candidates.find((c) => files.has(c));
  if (!model) {
    const others = await precisionsIn((c) => files.has(c));
    if (others.length > 0) throw new UserError(`${ref.repo}: no ${precision} model in the repo (looked for ${candidates.join(', ')}); it has ${others.join(', ')}`, { cli: 'choose one of those with --precision', vscode: 'choose one of those precisions' });
    throw new UserError(`${ref.repo}: the repo has no ONNX export of a vision model (looked for ${candidates.join(', ')})`, { cli: 'name a repo with an ONNX export (e.g. onnx-community/...), or export one with optimum and name its folder', vscode: 'name a repo with an ONNX export, or an exported folder' });
  }
  return [...CONFIGS.filter((f) => files.has(f)), model, ...[...files].filter((f) => isExternalData(model, f)).sort()];
}

/** A snapshot holding the configs and a model for `precision`: usable without the network. */
async function completeFor(dir: string, precision: Precision): Promise<boolean> {
  const [configs, models] = await Promise.all([Promise.all(CONFIGS.map((f) => present(path.join(dir, f)))), Promise.all(modelCandidates(precision).map((c) => present(path.join(dir, c))))]);
  return configs.every(Boolean) && models.some(Boolean);
}

/** What a spec naming a Hugging Face id needs of its repo: whether a cached snapshot has it all,
 *  and which of the repo's files to fetch when not. */
interface Needs {
  complete(dir: string): Promise<boolean>;
  choose(ref: HubRef, files: Set<string>): Promise<string[]>;
}

const VISION_NEEDS = (precision: Precision): Needs => ({ complete: (dir) => completeFor(dir, precision), choose: (ref, files) => filesToFetch(ref, precision, files) });

/** The folder a spec names: a path here, else a Hugging Face id from the local cache, what it
 *  lacks downloaded unless HF_HUB_OFFLINE is set. A snapshot in the cache is used as it is: the
 *  hub is not asked whether a branch has moved since. */
async function sourceOf(spec: string, isPath: boolean, needs: Needs, download: DownloadControl): Promise<ModelSource> {
  if (isPath) return { dir: spec, hub: snapshotOfFolder(spec) };
  const ref = parseHubId(spec);
  if (!ref) throw new UserError(`encoder '${spec}': no such model folder or .onnx file, and not a Hugging Face id (org/name[@revision]); or use 'dct', 'dct:<size>' or 'dct:<size>:square'`);
  const cached = cachedSnapshot(ref);
  if (cached && (await needs.complete(cached.dir))) return cached;
  if (hubOffline()) return cached ?? resolveHubModel(ref);
  return downloadSnapshot(ref, (files) => needs.choose(ref, files), download);
}

/** The files of the model a spec names (see the file comment). */
export async function locateModel(spec: string, precision: Precision, download: DownloadControl = {}): Promise<ModelFiles> {
  const stat = await fs.stat(spec).catch(() => null);
  if (stat && !stat.isDirectory()) {
    await requireRegularFile(spec, 'an ONNX model');
    return { model: spec, dir: path.dirname(spec), relative: path.basename(spec), config: null, preprocessor: null, hub: snapshotOfFolder(path.dirname(spec)), byPath: true };
  }
  const source = await sourceOf(spec, stat !== null, VISION_NEEDS(precision), download);
  const relative = await modelIn(source, precision);
  const [config, preprocessor] = await Promise.all(CONFIGS.map(async (f) => ((await present(path.join(source.dir, f))) ? path.join(source.dir, f) : null)));
  // A snapshot holds what the repo has: one without its configs was downloaded in part.
  if (source.hub && (!config || !preprocessor)) throw missingInSnapshot(source, [!config && 'config.json', !preprocessor && 'preprocessor_config.json'].filter((f): f is string => !!f));
  return { model: path.join(source.dir, relative), dir: source.dir, relative, config: config ?? null, preprocessor: preprocessor ?? null, hub: source.hub, byPath: stat !== null };
}

/** A cache blob is named by its sha256: one that is not has been truncated or altered. */
async function checkBlob(file: string, sha256: string): Promise<void> {
  const real = await fs.realpath(file).catch(() => file);
  const name = path.basename(real);
  if (path.basename(path.dirname(real)) === 'blobs' && /^[0-9a-f]{64}$/.test(name) && name !== sha256) {
    throw new UserError(`${file}: the cached file's sha256 is ${sha256.slice(0, 12)}…, not ${name.slice(0, 12)}… as its blob is named: a truncated or altered download`, {
      cli: `delete ${real} and download the model again`,
      vscode: `delete ${real} and download the model again`,
    });
  }
}

/**
 * The sha256 of each file the weights are in: the .onnx and its external data (`<name>_data`,
 * `<name>_data_<n>`, `<name>.data` beside it), keyed by their paths relative to the folder.
 */
export async function weightsSha256(files: ModelFiles): Promise<Record<string, string>> {
  const base = path.basename(files.model);
  const siblings = await fs.readdir(path.dirname(files.model)).catch(() => [] as string[]);
  const data = siblings.filter((n) => isExternalData(base, n)).sort();
  const relDir = path.dirname(files.relative);
  const out: Record<string, string> = {};
  for (const name of [base, ...data]) {
    const file = path.join(path.dirname(files.model), name);
    const sha = await onFile(file, 'hash the model weights', () => fileDigest(file, 'sha256'));
    await checkBlob(file, sha);
    out[relDir === '.' ? name : `${relDir}/${name}`] = sha;
  }
  return out;
}

/** A text tower's model files, first match wins: a text model of its own (optimum's
 *  text_model.onnx, onnx-community's onnx/text_model.onnx), else a combined image+text model
 *  (text.ts checks that it takes input_ids). */
const TEXT_STEMS = ['text_model', 'onnx/text_model', 'model', 'onnx/model'];
/** The tokenizer as transformers saves it: tokenizer.json is required, the others are read when
 *  there (special_tokens_map.json: older exports keep the pad token there). */
export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];

function textCandidates(precision: Precision): string[] {
  return TEXT_STEMS.map((stem) => `${stem}${PRECISIONS[precision]}.onnx`);
}

export interface TextModelFiles {
  /** the .onnx file, and its path relative to `dir` */
  model: string;
  dir: string;
  relative: string;
  config: string | null;
  preprocessor: string | null;
  tokenizer: string;
  tokenizerConfig: string | null;
  specialTokens: string | null;
  hub: ModelSource['hub'];
}

/** What to fetch of a repo for its text tower: configs, tokenizer files, the model and its data. */
function textFilesToFetch(ref: HubRef, precision: Precision, files: Set<string>): Promise<string[]> {
  const model = textCandidates(precision).find((c) => files.has(c));
  const missing = [!model && `a text model (${textCandidates(precision).join(', ')})`, !files.has('tokenizer.json') && 'tokenizer.json'].filter(Boolean);
  if (!model || missing.length > 0) throw new UserError(`${ref.repo}: the repo has no text tower: no ${missing.join(' and no ')}`, { cli: 'name a CLIP or SigLIP repo with an ONNX export of its text model', vscode: 'choose an encoder with a text tower (CLIP, SigLIP)' });
  const wanted = [...CONFIGS, ...TOKENIZER_FILES].filter((f) => files.has(f));
  return Promise.resolve([...wanted, model, ...[...files].filter((f) => isExternalData(model, f)).sort()]);
}

const TEXT_NEEDS = (precision: Precision): Needs => ({
  complete: async (dir) => (await present(path.join(dir, 'tokenizer.json'))) && (await Promise.all(textCandidates(precision).map((c) => present(path.join(dir, c))))).some(Boolean),
  choose: (ref, files) => textFilesToFetch(ref, precision, files),
});

/** The first of `names` in `dirs` (a folder, then the one above: an onnx/ file's tokenizer is
 *  beside the onnx/ folder), or null. */
async function firstIn(dirs: string[], name: string): Promise<string | null> {
  for (const dir of dirs) if (await present(path.join(dir, name))) return path.join(dir, name);
  return null;
}

/**
 * The text tower of the model a spec names (a folder, an .onnx file, or a Hugging Face id, its text
 * files downloaded as for the vision tower): one line naming what is missing when there is none.
 */
export async function locateTextModel(spec: string, precision: Precision, download: DownloadControl = {}): Promise<TextModelFiles> {
  const stat = await fs.stat(spec).catch(() => null);
  const isFile = stat !== null && !stat.isDirectory();
  const source = isFile ? { dir: path.dirname(spec), hub: snapshotOfFolder(path.dirname(spec)) } : await sourceOf(spec, stat !== null, TEXT_NEEDS(precision), download);
  let relative: string | null = isFile ? path.basename(spec) : null;
  for (const c of isFile ? [] : textCandidates(precision)) {
    if (await present(path.join(source.dir, c))) {
      relative = c;
      break;
    }
  }
  const dirs = isFile && path.basename(source.dir) === 'onnx' ? [source.dir, path.dirname(source.dir)] : [source.dir];
  const [tokenizer, tokenizerConfig, specialTokens, config, preprocessor] = await Promise.all([...TOKENIZER_FILES, ...CONFIGS].map((f) => firstIn(dirs, f)));
  const missing = [!relative && `text model (looked for ${textCandidates(precision).join(', ')})`, !tokenizer && 'tokenizer.json'].filter(Boolean);
  if (!relative || !tokenizer) {
    // a cache snapshot holds what was fetched of the repo: the rest may be there to download
    const hint = source.hub && downloadHint(source.hub.repo, source.hub.commit, [textCandidates(precision)[1]!, ...TOKENIZER_FILES]);
    throw new UserError(`${snapshotName(source)} has no text tower: no ${missing.join(' and no ')}`, hint ? { cli: hint, vscode: hint } : { cli: 'name a CLIP or SigLIP model exported with its text model and tokenizer', vscode: 'choose an encoder with a text tower (CLIP, SigLIP)' });
  }
  const model = path.join(source.dir, relative);
  await requireRegularFile(model, 'an ONNX model');
  return { model, dir: source.dir, relative, config, preprocessor, tokenizer, tokenizerConfig, specialTokens, hub: source.hub };
}

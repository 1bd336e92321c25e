// Hugging Face model ids ('org/name[@revision]') resolved from the local cache that Python's
// huggingface_hub fills (and the Rust and JavaScript clients share): the root is HF_HUB_CACHE, else
// $HF_HOME/hub, else ~/.cache/huggingface/hub; repo org/name lives in models--org--name/, where
// refs/<revision> holds the commit a branch or tag points to and snapshots/<commit>/ the files of
// that commit (links into blobs/, named by their sha256 for LFS files). A model a researcher
// already used in Python needs no download.
//
// Nothing is downloaded here: what the cache lacks, hub-download.ts fetches into this same layout
// (model-files.ts decides when), unless HF_HUB_OFFLINE is set.
import { existsSync, readFileSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UserError } from '../../../../common/errors.js';

export interface HubRef {
  /** 'org/name' */
  repo: string;
  /** a branch, tag or commit; 'main' when the id names none */
  revision: string;
}

/** A model resolved to a folder: a cache snapshot (repo and commit known) or a folder named by path. */
export interface ModelSource {
  /** the folder holding config.json, preprocessor_config.json and the ONNX files */
  dir: string;
  /** the Hugging Face id and the snapshot's commit, when the folder is a cache snapshot */
  hub: { repo: string; commit: string } | null;
}

// huggingface_hub's validate_repo_id: letters, digits, '-', '_', '.'; no '--' or '..'; 96 at most.
const REPO_PART = /^[A-Za-z0-9_.-]+$/;
const REVISION = /^[A-Za-z0-9_.\-/]+$/;
const COMMIT = /^[0-9a-f]{40}$/;

function validRepo(repo: string): boolean {
  const parts = repo.split('/');
  return parts.length === 2 && parts.every((p) => REPO_PART.test(p) && !p.startsWith('.') && !p.startsWith('-')) && !repo.includes('--') && !repo.includes('..') && repo.length <= 96;
}

/** 'org/name' or 'org/name@revision' as a HubRef, or null when `spec` is not shaped like one. */
export function parseHubId(spec: string): HubRef | null {
  const at = spec.indexOf('@');
  const repo = at < 0 ? spec : spec.slice(0, at);
  const revision = at < 0 ? 'main' : spec.slice(at + 1);
  if (!validRepo(repo)) return null;
  if (!REVISION.test(revision) || revision.split('/').some((p) => p === '' || p === '.' || p === '..')) return null;
  return { repo, revision };
}

/** The cache root huggingface_hub uses. */
export function hubCacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HF_HOME) return path.join(env.HF_HOME, 'hub');
  return path.join(os.homedir(), '.cache', 'huggingface', 'hub');
}

/** HF_HUB_OFFLINE as huggingface_hub reads it (1, ON, YES, TRUE). */
export function hubOffline(env: NodeJS.ProcessEnv = process.env): boolean {
  return ['1', 'ON', 'YES', 'TRUE'].includes((env.HF_HUB_OFFLINE ?? '').toUpperCase());
}

export function repoFolder(root: string, repo: string): string {
  return path.join(root, `models--${repo.replace('/', '--')}`);
}

/** The commit a revision names in the cache: itself when it is a full commit hash, else what
 *  refs/<revision> holds; null when the cache has no such ref. */
function commitOf(folder: string, revision: string): string | null {
  if (COMMIT.test(revision)) return revision;
  const ref = path.join(folder, 'refs', revision);
  try {
    if (!statSync(ref).isFile()) return null;
    const commit = readFileSync(ref, 'utf8').trim();
    return COMMIT.test(commit) ? commit : null;
  } catch {
    return null;
  }
}

/** The snapshot folder of a ref in the cache, or null when the cache does not hold it. */
export function cachedSnapshot(ref: HubRef, env: NodeJS.ProcessEnv = process.env): ModelSource | null {
  const folder = repoFolder(hubCacheRoot(env), ref.repo);
  const commit = commitOf(folder, ref.revision);
  if (!commit) return null;
  const dir = path.join(folder, 'snapshots', commit);
  return existsSync(dir) ? { dir, hub: { repo: ref.repo, commit } } : null;
}

/** How to get a model that is not in the cache, in one line. */
export function downloadHint(repo: string, revision: string, files: string[] = []): string {
  const rev = revision === 'main' ? '' : ` --revision ${revision}`;
  return `download it: name it by its id with HF_HUB_OFFLINE unset, or with Python's huggingface_hub (huggingface-cli download ${repo}${files.length ? ` ${files.join(' ')}` : ''}${rev}); or name the model's folder`;
}

/**
 * The snapshot a Hugging Face id names, from the local cache alone (HF_HUB_OFFLINE). Not there: one
 * line saying where it looked and how to get it.
 */
export function resolveHubModel(ref: HubRef, env: NodeJS.ProcessEnv = process.env): ModelSource {
  const found = cachedSnapshot(ref, env);
  if (found) return found;
  const id = ref.revision === 'main' ? ref.repo : `${ref.repo}@${ref.revision}`;
  const offline = hubOffline(env) ? ' (HF_HUB_OFFLINE is set)' : '';
  const short = !COMMIT.test(ref.revision) && /^[0-9a-f]{7,39}$/.test(ref.revision) ? '; a commit must be given in full (40 hex digits)' : '';
  throw new UserError(`encoder '${id}': not a folder here, and not in the Hugging Face cache at ${hubCacheRoot(env)}${offline}${short}`, {
    cli: downloadHint(ref.repo, ref.revision),
    vscode: downloadHint(ref.repo, ref.revision),
  });
}

/** The id and commit of a folder inside a cache snapshot (.../models--org--name/snapshots/<commit>),
 *  so a model named by its path is recorded as what it is. */
export function snapshotOfFolder(dir: string): ModelSource['hub'] {
  const m = /(?:^|[/\\])models--([^/\\]+?)--([^/\\]+)[/\\]snapshots[/\\]([0-9a-f]{40})(?:[/\\]|$)/.exec(path.resolve(dir));
  if (!m) return null;
  const repo = `${m[1]}/${m[2]}`;
  return validRepo(repo) ? { repo, commit: m[3]! } : null;
}

// Downloads the files of a model named by its Hugging Face id from the hub (or the mirror at
// HF_ENDPOINT) into the local cache hub-cache.ts reads, laid out as Python's huggingface_hub lays it
// out (blobs/<etag>, snapshots/<commit>/<file> linking to the blob, refs/<revision>), so Python finds
// what this fetched and this finds what Python fetched. Only the files asked for are fetched.
//
// The protocol is huggingface_hub's: the revision's commit and file list from
// /api/models/<id>/revision/<rev>; per file a HEAD of /<id>/resolve/<commit>/<file>, whose
// X-Linked-Etag (LFS files: their sha256) or ETag (other files: their git blob sha1) names the
// blob, then a GET that may redirect to another host (a CDN). The token (HF_TOKEN, else the file
// `huggingface-cli login` writes) goes to the hub's own host only: it is dropped on a redirect to
// another. The bytes go to blobs/<etag>.incomplete; a cut connection or an earlier cancelled run is
// resumed from its end with a Range request. A finished file is checked against its ETag (sha256
// or git sha1) and its size before it is renamed into place, so a file in the cache is verified or
// absent; the ref is written last, once every file is placed.
import { promises as fs, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CancelledError, UserError, type Remedy } from '../../../../common/errors.js';
import type { ProgressListener } from '../../core/progress.js';
import { writeFileAtomic } from '../../io/atomic-write.js';
import { fileDigest, formatBytes } from '../../io/files.js';
import { lockOutput } from '../../io/output-lock.js';
import { hubCacheRoot, repoFolder, type HubRef, type ModelSource } from './hub-cache.js';

export const DEFAULT_HUB_ENDPOINT = 'https://huggingface.co';
const MAX_REDIRECTS = 10;
/** Resumes after a connection cut mid-file, within one run. */
const RESUMES = 3;
const COMMIT = /^[0-9a-f]{40}$/;

/** Progress (bytes of the file being fetched) and Cancel; a cancelled file resumes next time. */
export interface DownloadControl {
  onProgress?: ProgressListener;
  signal?: AbortSignal;
}

interface Hub {
  endpoint: string;
  token: string | null;
  /** 'org/name' or 'org/name@revision', as messages name the model */
  id: string;
  control: DownloadControl;
}

/** HF_ENDPOINT, without a trailing slash. */
export function hubEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  return (env.HF_ENDPOINT || DEFAULT_HUB_ENDPOINT).replace(/\/+$/, '');
}

/** The token huggingface_hub would send: HF_TOKEN, else the file HF_TOKEN_PATH names, else
 *  $HF_HOME/token (where `huggingface-cli login` writes it). Never printed. */
function hubToken(env: NodeJS.ProcessEnv): string | null {
  if (env.HF_TOKEN) return env.HF_TOKEN.trim() || null;
  const home = env.HF_HOME || path.join(os.homedir(), '.cache', 'huggingface');
  try {
    return readFileSync(env.HF_TOKEN_PATH || path.join(home, 'token'), 'utf8').trim() || null;
  } catch {
    return null;
  }
}

const TOKEN_REMEDY: Remedy = { cli: 'set HF_TOKEN to a token that can read it (gated and private models)', vscode: 'set HF_TOKEN (in the environment VS Code starts from) to a token that can read it' };
const NETWORK_REMEDY: Remedy = {
  cli: 'check the connection, set HF_ENDPOINT to a mirror, or HF_HUB_OFFLINE=1 to use only the local cache',
  vscode: 'check the connection, or set HF_ENDPOINT (a mirror) or HF_HUB_OFFLINE=1 in the environment VS Code starts from',
};

/**
 * A fetch with redirects followed by hand: the token is sent to the hub's own origin only.
 * `crossHost: false` stops at a redirect to another host and returns it (a HEAD's metadata is on
 * the hub's redirect, not on the CDN's answer).
 */
async function request(hub: Hub, url: string, init: { method: 'GET' | 'HEAD'; headers?: Record<string, string>; crossHost: boolean }): Promise<Response> {
  const hubOrigin = new URL(hub.endpoint).origin;
  let current = new URL(url);
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const headers: Record<string, string> = { 'accept-encoding': 'identity', 'user-agent': 'unicode2', ...init.headers };
    if (hub.token && current.origin === hubOrigin) headers.authorization = `Bearer ${hub.token}`;
    let res: Response;
    try {
      res = await fetch(current, { method: init.method, headers, redirect: 'manual', signal: hub.control.signal });
    } catch (err) {
      if (hub.control.signal?.aborted) throw new CancelledError();
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new UserError(`encoder '${hub.id}': cannot reach ${current.origin} (${cause?.code ?? cause?.message ?? (err as Error).message})`, NETWORK_REMEDY);
    }
    const location = res.headers.get('location');
    if (res.status < 300 || res.status >= 400 || !location) return res;
    const next = new URL(location, current);
    if (!init.crossHost && next.origin !== current.origin) return res;
    await res.body?.cancel();
    current = next;
  }
  throw new UserError(`encoder '${hub.id}': more than ${MAX_REDIRECTS} redirects from ${hub.endpoint}`, NETWORK_REMEDY);
}

/** One line for an answer that is not what was asked for. */
function statusError(hub: Hub, res: Response, what: string): UserError {
  const code = res.headers.get('x-error-code');
  if (res.status === 401 || res.status === 403) return new UserError(`encoder '${hub.id}': ${hub.endpoint} refuses ${what} (${res.status}): a gated or private model, or no such model${hub.token ? ' (a token was sent)' : ''}`, TOKEN_REMEDY);
  if (res.status === 404 && code === 'RevisionNotFound') return new UserError(`encoder '${hub.id}': ${hub.endpoint} has no such revision`, { cli: 'check the revision after @ (a branch, a tag or a 40-hex commit)', vscode: 'check the revision after @' });
  if (res.status === 404 && code !== 'EntryNotFound') return new UserError(`encoder '${hub.id}': ${hub.endpoint} has no such model`, { cli: 'check the id (org/name[@revision])', vscode: 'check the id (org/name[@revision])' });
  return new UserError(`encoder '${hub.id}': ${hub.endpoint} answered ${res.status} ${res.statusText} for ${what}`, NETWORK_REMEDY);
}

/** The commit a revision names and the repo's files at it. */
async function revisionInfo(hub: Hub, ref: HubRef): Promise<{ commit: string; files: Set<string> }> {
  const res = await request(hub, `${hub.endpoint}/api/models/${ref.repo}/revision/${encodeURIComponent(ref.revision)}`, { method: 'GET', crossHost: true });
  if (res.status !== 200) throw statusError(hub, res, 'the model');
  const info = (await res.json().catch(() => null)) as { sha?: unknown; siblings?: { rfilename?: unknown }[] } | null;
  if (!info || typeof info.sha !== 'string' || !COMMIT.test(info.sha) || !Array.isArray(info.siblings)) {
    throw new UserError(`encoder '${hub.id}': ${hub.endpoint} answered the model's revision without a commit and file list`, NETWORK_REMEDY);
  }
  return { commit: info.sha, files: new Set(info.siblings.map((s) => s.rfilename).filter((f): f is string => typeof f === 'string')) };
}

interface FileMeta {
  /** the blob's name: an LFS file's sha256, another file's git blob sha1 */
  etag: string;
  size: number | null;
}

/** The ETag and size of a file, from the hub's own answer to a HEAD (huggingface_hub's
 *  get_hf_file_metadata). */
async function fileMeta(hub: Hub, url: string, file: string): Promise<FileMeta> {
  const res = await request(hub, url, { method: 'HEAD', crossHost: false });
  if (res.status >= 400) throw statusError(hub, res, file);
  const raw = res.headers.get('x-linked-etag') ?? res.headers.get('etag');
  const etag = raw?.replace(/^W\//, '').replace(/^"|"$/g, '');
  // it names the blob: a plain file name, never '..' or a path
  if (!etag || !/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(etag)) throw new UserError(`encoder '${hub.id}': ${hub.endpoint} gave no usable ETag for ${file}, so it cannot be checked`, NETWORK_REMEDY);
  const size = Number(res.headers.get('x-linked-size') ?? res.headers.get('content-length') ?? NaN);
  return { etag, size: Number.isSafeInteger(size) && size >= 0 ? size : null };
}

/** Thrown for a connection cut mid-body: what arrived is kept, and the rest is asked for. */
class ConnectionCut extends Error {}

/** Fetches `url` onto the end of `partial` (a Range request from its size), reporting bytes. */
async function fetchInto(hub: Hub, url: string, partial: string, meta: FileMeta, file: string): Promise<void> {
  const have = (await fs.stat(partial).catch(() => null))?.size ?? 0;
  if (meta.size !== null && have === meta.size) return;
  const res = await request(hub, url, { method: 'GET', crossHost: true, headers: have > 0 ? { range: `bytes=${have}-` } : {} });
  const resumed = res.status === 206 && new RegExp(`^bytes ${have}-`).test(res.headers.get('content-range') ?? '');
  if (res.status !== 200 && !resumed) {
    await res.body?.cancel();
    // a partial file longer than the file, or a server that resumes elsewhere: start over
    if ((res.status === 416 || res.status === 206) && have > 0) return fs.rm(partial, { force: true }).then(() => fetchInto(hub, url, partial, meta, file));
    throw statusError(hub, res, file);
  }
  const out = await fs.open(partial, resumed ? 'a' : 'w');
  let done = resumed ? have : 0;
  const total = meta.size ?? done + Number(res.headers.get('content-length') ?? 0);
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      await out.write(chunk);
      done += chunk.length;
      hub.control.onProgress?.({ phase: 'download', done, total, message: `${file}, ${formatBytes(done)} of ${formatBytes(total)}` });
    }
  } catch (err) {
    if (hub.control.signal?.aborted) throw new CancelledError();
    throw new ConnectionCut((err as Error).message);
  } finally {
    await out.close();
  }
}

/** The file is what its ETag says: its sha256 (LFS) or its git blob sha1, and its size. An ETag
 *  of another form (a mirror's own) is not a digest: only the size is checked. */
async function verify(hub: Hub, partial: string, meta: FileMeta, file: string): Promise<void> {
  const size = (await fs.stat(partial)).size;
  let problem = meta.size !== null && size !== meta.size ? `${size} bytes, not ${meta.size}` : null;
  if (!problem && /^[0-9a-f]{64}$/.test(meta.etag)) {
    const sha = await fileDigest(partial, 'sha256');
    if (sha !== meta.etag) problem = `sha256 ${sha.slice(0, 12)}…, not ${meta.etag.slice(0, 12)}… as the hub's ETag says`;
  } else if (!problem && /^[0-9a-f]{40}$/.test(meta.etag)) {
    const sha1 = await fileDigest(partial, 'sha1', `blob ${size}\0`);
    if (sha1 !== meta.etag) problem = `git blob sha1 ${sha1.slice(0, 12)}…, not ${meta.etag.slice(0, 12)}… as the hub's ETag says`;
  }
  if (!problem) return;
  await fs.rm(partial, { force: true });
  throw new UserError(`encoder '${hub.id}': the download of ${file} from ${new URL(hub.endpoint).host} has ${problem}: refused, nothing kept`, {
    cli: 'try again; if it recurs, the server (HF_ENDPOINT) serves other bytes than it names',
    vscode: 'try again; if it recurs, the server (HF_ENDPOINT) serves other bytes than it names',
  });
}

/** blobs/<etag>, fetched and verified unless already there; one process fetches a blob at a time. */
async function placeBlob(hub: Hub, folder: string, url: string, meta: FileMeta, file: string): Promise<string> {
  const blob = path.join(folder, 'blobs', meta.etag);
  if (await fs.stat(blob).then((s) => s.isFile(), () => false)) return blob;
  await fs.mkdir(path.dirname(blob), { recursive: true });
  const lock = await lockOutput(path.join(path.dirname(folder), '.locks', path.basename(folder), `${meta.etag}.unicode2`), 'download');
  try {
    const partial = `${blob}.incomplete`;
    for (let attempt = 0; ; attempt++) {
      try {
        await fetchInto(hub, url, partial, meta, file);
        break;
      } catch (err) {
        if (!(err instanceof ConnectionCut)) throw err;
        if (attempt >= RESUMES) throw new UserError(`encoder '${hub.id}': the connection to ${new URL(hub.endpoint).host} broke while fetching ${file} (${err.message}); what arrived is kept and resumed next time`, NETWORK_REMEDY);
      }
    }
    await verify(hub, partial, meta, file);
    await fs.rename(partial, blob);
    return blob;
  } finally {
    await lock.release();
  }
}

/** snapshots/<commit>/<file> -> ../../blobs/<etag> (a copy where links cannot be made), placed by
 *  a rename so it is whole or absent. */
async function linkIntoSnapshot(snapshot: string, file: string, blob: string): Promise<void> {
  const entry = path.join(snapshot, file);
  await fs.mkdir(path.dirname(entry), { recursive: true });
  const tmp = path.join(path.dirname(entry), `.${path.basename(entry)}.${process.pid}.tmp`);
  await fs.rm(tmp, { force: true });
  await fs.symlink(path.relative(path.dirname(entry), blob), tmp).catch(() => fs.copyFile(blob, tmp));
  await fs.rename(tmp, entry);
}

/**
 * Fetches into the cache the files `choose` picks from the repo's file list at `ref` (those the
 * snapshot lacks), and returns the snapshot. `choose` throws a UserError when the repo lacks what
 * is needed. The token is never printed.
 */
export async function downloadSnapshot(ref: HubRef, choose: (files: Set<string>) => Promise<string[]>, control: DownloadControl = {},
                                       env: NodeJS.ProcessEnv = process.env): Promise<ModelSource> {
  const id = ref.revision === 'main' ? ref.repo : `${ref.repo}@${ref.revision}`;
  const hub: Hub = { endpoint: hubEndpoint(env), token: hubToken(env), id, control };
  const { commit, files } = await revisionInfo(hub, ref);
  const folder = repoFolder(hubCacheRoot(env), ref.repo);
  const snapshot = path.join(folder, 'snapshots', commit);
  for (const file of await choose(files)) {
    if (await fs.stat(path.join(snapshot, file)).then(() => true, () => false)) continue;
    const url = `${hub.endpoint}/${ref.repo}/resolve/${commit}/${file.split('/').map(encodeURIComponent).join('/')}`;
    const blob = await placeBlob(hub, folder, url, await fileMeta(hub, url, file), file);
    await linkIntoSnapshot(snapshot, file, blob);
  }
  if (ref.revision !== commit) await writeFileAtomic(path.join(folder, 'refs', ref.revision), commit);
  return { dir: snapshot, hub: { repo: ref.repo, commit } };
}

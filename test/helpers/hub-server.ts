// A stand-in for the Hugging Face hub on the loopback, serving model repos the way the hub does:
// /api/models/<id>/revision/<rev> (the commit and file list), /<id>/resolve/<rev>/<file> answered
// for LFS files (.onnx, .onnx_data) by a 302 carrying X-Linked-Etag (sha256) and X-Linked-Size to a
// second server on another port (another origin, as the hub's CDN is another host), and for other
// files by a 200 with the git blob sha1 as ETag. The CDN answers Range requests with 206. Faults
// on demand: a file whose bytes differ from its ETag, a connection cut mid-file, a pause mid-file.
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HubRepo {
  commit: string;
  files: Record<string, Uint8Array>;
}

export interface Seen {
  server: 'hub' | 'cdn';
  method: string;
  url: string;
  authorization: string | undefined;
  range: string | undefined;
}

export interface HubServer {
  endpoint: string;
  /** every request either server got, in order */
  seen: Seen[];
  /** files (by name) served with other bytes than their ETag names */
  tamper: Set<string>;
  /** files whose next transfer stops halfway with the connection destroyed */
  cutOnce: Set<string>;
  /** files whose transfer pauses halfway until `resume()` */
  pauseOnce: Set<string>;
  resume(): void;
  close(): Promise<void>;
}

const isLfs = (file: string) => /\.onnx(_data.*)?$/.test(file);
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const gitSha1 = (b: Uint8Array) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

async function listen(handler: http.RequestListener): Promise<{ server: http.Server; origin: string }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

// long: the two servers' routes read best together
export async function startHubServer(repos: Record<string, HubRepo>): Promise<HubServer> {
  const state = { seen: [] as Seen[], tamper: new Set<string>(), cutOnce: new Set<string>(), pauseOnce: new Set<string>(), resumers: [] as (() => void)[] };
  const record = (server: Seen['server'], req: http.IncomingMessage) =>
    state.seen.push({ server, method: req.method!, url: req.url!, authorization: req.headers.authorization, range: req.headers.range });
  const blobs = new Map<string, { file: string; bytes: Uint8Array }>();
  for (const repo of Object.values(repos)) for (const [file, bytes] of Object.entries(repo.files)) blobs.set(sha256(bytes), { file, bytes });

  const send = (req: http.IncomingMessage, res: http.ServerResponse, file: string, bytes: Uint8Array, headers: Record<string, string>) => {
    const body = state.tamper.has(file) ? Buffer.concat([Buffer.from(bytes.subarray(0, bytes.length - 1)), Buffer.from([bytes[bytes.length - 1]! ^ 1])]) : Buffer.from(bytes);
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    if (start >= body.length && m) {
      res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
      return;
    }
    const part = body.subarray(start);
    res.writeHead(m ? 206 : 200, { ...headers, 'content-length': String(part.length), 'accept-ranges': 'bytes', ...(m && { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` }) });
    if (req.method === 'HEAD') return void res.end();
    const half = Math.floor(part.length / 2);
    if (state.cutOnce.delete(file)) {
      res.write(part.subarray(0, half), () => res.destroy());
    } else if (state.pauseOnce.delete(file)) {
      res.write(part.subarray(0, half));
      state.resumers.push(() => res.end(part.subarray(half)));
    } else {
      res.end(part);
    }
  };

  const cdn = await listen((req, res) => {
    record('cdn', req);
    const blob = blobs.get(/^\/blobs\/([0-9a-f]{64})$/.exec(req.url!)?.[1] ?? '');
    if (!blob) return void res.writeHead(404).end();
    send(req, res, blob.file, blob.bytes, { etag: `"${sha256(blob.bytes)}"` });
  });

  const hub = await listen((req, res) => {
    record('hub', req);
    const url = decodeURI(req.url!);
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(url);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url);
    const id = api?.[1] ?? resolve?.[1];
    const repo = id === undefined ? undefined : repos[id];
    if (!repo) return void res.writeHead(404, { 'x-error-code': 'RepoNotFound' }).end('{"error":"Repository not found"}');
    const rev = decodeURIComponent((api ?? resolve)![2]!);
    if (rev !== 'main' && rev !== repo.commit) return void res.writeHead(404, { 'x-error-code': 'RevisionNotFound' }).end();
    if (api) {
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ id, sha: repo.commit, siblings: Object.keys(repo.files).map((rfilename) => ({ rfilename })) }));
    }
    const file = resolve![3]!;
    const bytes = repo.files[file];
    if (!bytes) return void res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end();
    if (!isLfs(file)) return send(req, res, file, bytes, { etag: `W/"${gitSha1(bytes)}"`, 'x-repo-commit': repo.commit });
    res.writeHead(302, { location: `${cdn.origin}/blobs/${sha256(bytes)}`, 'x-linked-etag': `"${sha256(bytes)}"`, 'x-linked-size': String(bytes.length), 'x-repo-commit': repo.commit }).end();
  });

  return {
    endpoint: hub.origin,
    seen: state.seen,
    tamper: state.tamper,
    cutOnce: state.cutOnce,
    pauseOnce: state.pauseOnce,
    resume: () => state.resumers.splice(0).forEach((r) => r()),
    close: async () => {
      for (const { server } of [hub, cdn]) {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    },
  };
}

// A job over data-set shards into one output folder: each shard gives its own outputs, written
// atomically, and then its completion record `<out>/<name>.done.json` (the shard's size and
// mtime, the job's identity — codebook fingerprint and encoder — and each output's size). A run
// covers the shards of its part (`--shard I/N`: shards I, I+N, ... counted from 1), skips those
// whose record says their complete output is already there, and isolates failures: a shard that
// cannot be read fails alone, with no output, and the others go on.
//
// `<out>/manifest.json` lists every shard of the job (all parts) with its outputs and counts, or
// as missing. Any number of processes may run parts at once: each rebuilds the manifest from the
// completion records under the manifest's lock, after its own records are written, so the last
// one to finish writes the whole of it.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CancelledError, UserError } from '../../../common/errors.js';
import { writeFileAtomic } from './atomic-write.js';
import { readJsonFile } from './files.js';
import { waitForOutputLock } from './output-lock.js';
import type { ShardFile } from './shard-list.js';
import { MAX_CONFIG_BYTES, MAX_JSON_BYTES } from '../core/limits.js';

export const SHARD_MANIFEST = 'manifest.json';
export const SHARD_MANIFEST_FORMAT = 'unicode2.shards';

/** Part `index` (1-based) of `count`. */
export interface ShardPart {
  index: number;
  count: number;
}

/** The shards of `part`: I, I+N, ... (1-based) of the whole list. */
export function shardsOfPart<T>(shards: readonly T[], part: ShardPart | undefined): T[] {
  return part ? shards.filter((_, i) => i % part.count === part.index - 1) : [...shards];
}

/** What a job's outputs depend on besides the shard: a different one makes them stale. */
export type JobIdentity = Record<string, string>;

/** What one shard's work reports: the images in its outputs and the samples it skipped. */
export interface ShardCounts {
  images: number;
  skipped: number;
}

/** A shard file's identity on disk: a change of either makes its outputs stale. */
export interface ShardStat {
  size: number;
  mtimeMs: number;
}

export interface ShardRecord extends ShardCounts {
  shard: string;
  name: string;
  size: number;
  mtimeMs: number;
  identity: JobIdentity;
  /** output file names in the job's folder, each with its size */
  outputs: { file: string; bytes: number }[];
}

export interface ShardJob {
  /** what the job is, for the manifest and lock messages: 'tokenize' */
  job: string;
  out: string;
  /** every shard of the job (all parts), in order */
  shards: ShardFile[];
  part?: ShardPart;
  identity: JobIdentity;
  /** does one shard (of `stat` as the run found it): writes its outputs (atomically) in `out`,
   *  returns their names and counts */
  run(shard: ShardFile, stat: ShardStat): Promise<ShardCounts & { outputs: string[] }>;
  /** a shard begins (`done` shards of `total` so far) / ends, failed with an error or not */
  onShard?(event: { shard: ShardFile; done: number; total: number; status: 'start' | 'done' | 'skipped' | 'failed'; error?: string }): void;
  signal?: AbortSignal;
}

/** What a run did, as `--json` prints it (`slurm`: filled by a run on a cluster). */
export interface ShardSummary {
  shards: number;
  images: number;
  done: number;
  skipped: number;
  failed: { shard: string; error: string }[];
  seconds: number;
  /** the Slurm jobs that ran it (array, merge) and the array tasks submitted; null for a local run */
  slurm: { jobs: number[]; tasks: number } | null;
}

export const recordPathOf = (out: string, shard: ShardFile): string => path.join(out, `${shard.name}.done.json`);

/** The shard's completion record when it says the shard's complete output is there for this
 *  input (size and mtime) and identity; null otherwise. */
export async function completeRecord(out: string, shard: ShardFile, identity: JobIdentity): Promise<ShardRecord | null> {
  const stat = await fs.stat(shard.path).catch(() => null);
  const record = (await readJsonFile(recordPathOf(out, shard), 'completion record', MAX_CONFIG_BYTES).catch(() => null)) as ShardRecord | null;
  if (!stat || !record || typeof record !== 'object' || !Array.isArray(record.outputs)) return null;
  if (record.size !== stat.size || record.mtimeMs !== stat.mtimeMs) return null;
  if (JSON.stringify(record.identity) !== JSON.stringify(identity)) return null;
  for (const o of record.outputs) {
    if (typeof o?.file !== 'string' || path.basename(o.file) !== o.file) return null;
    if ((await fs.stat(path.join(out, o.file)).catch(() => null))?.size !== o.bytes) return null;
  }
  return record;
}

async function runOne(spec: ShardJob, shard: ShardFile): Promise<ShardRecord> {
  const stat = await fs.stat(shard.path).catch((err: NodeJS.ErrnoException) => {
    throw new UserError(`${shard.path}: cannot read the shard (${err.code === 'ENOENT' ? 'no such file' : (err.code ?? err.message)})`);
  });
  if (!stat.isFile()) throw new UserError(`${shard.path}: not a regular file`);
  const result = await spec.run(shard, { size: stat.size, mtimeMs: stat.mtimeMs });
  const outputs = await Promise.all(result.outputs.map(async (file) => ({ file, bytes: (await fs.stat(path.join(spec.out, file))).size })));
  const record: ShardRecord = { shard: path.resolve(shard.path), name: shard.name, size: stat.size, mtimeMs: stat.mtimeMs, identity: spec.identity, outputs, images: result.images, skipped: result.skipped };
  await writeFileAtomic(recordPathOf(spec.out, shard), JSON.stringify(record, null, 2) + '\n');
  return record;
}

/** Runs the job's part: each shard done, skipped (complete already) or failed; then the
 *  manifest. Cancellation stops between shards and inside one (its outputs not written). */
export async function runShardJob(spec: ShardJob): Promise<ShardSummary> {
  const started = performance.now();
  const mine = shardsOfPart(spec.shards, spec.part);
  const summary: ShardSummary = { shards: mine.length, images: 0, done: 0, skipped: 0, failed: [], seconds: 0, slurm: null };
  await fs.mkdir(spec.out, { recursive: true }).catch((err) => {
    throw new UserError(`${spec.out}: cannot create the output folder (${(err as NodeJS.ErrnoException).code})`);
  });
  for (const [i, shard] of mine.entries()) {
    const event = { shard, done: i, total: mine.length };
    const complete = await completeRecord(spec.out, shard, spec.identity);
    if (complete) {
      summary.skipped++;
      summary.images += complete.images;
      spec.onShard?.({ ...event, status: 'skipped' });
      continue;
    }
    spec.onShard?.({ ...event, status: 'start' });
    try {
      const record = await runOne(spec, shard);
      summary.done++;
      summary.images += record.images;
      spec.onShard?.({ ...event, done: i + 1, status: 'done' });
    } catch (err) {
      if (err instanceof CancelledError || spec.signal?.aborted) throw err;
      // the shard is named beside the error: its message need not name it again
      const message = (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
      const error = message.startsWith(`${shard.path}: `) ? message.slice(shard.path.length + 2) : message;
      summary.failed.push({ shard: shard.path, error });
      spec.onShard?.({ ...event, done: i + 1, status: 'failed', error });
    }
  }
  await writeShardManifest(spec);
  summary.seconds = (performance.now() - started) / 1000;
  return summary;
}

export interface ManifestShard {
  shard: string;
  name: string;
  /** absent for a shard not done yet (another part's, or failed) */
  outputs?: string[];
  images?: number;
  skipped?: number;
  missing?: true;
}

export interface ShardManifest {
  format: typeof SHARD_MANIFEST_FORMAT;
  job: string;
  identity: JobIdentity;
  /** every shard is done */
  complete: boolean;
  images: number;
  shards: ManifestShard[];
}

/** Rebuilds `<out>/manifest.json` from the completion records of every shard of the job. */
async function writeShardManifest(spec: ShardJob): Promise<void> {
  const file = path.join(spec.out, SHARD_MANIFEST);
  const lock = await waitForOutputLock(file, spec.job, 60_000);
  try {
    const shards: ManifestShard[] = [];
    for (const shard of spec.shards) {
      const r = await completeRecord(spec.out, shard, spec.identity);
      shards.push(r ? { shard: r.shard, name: r.name, outputs: r.outputs.map((o) => o.file), images: r.images, skipped: r.skipped } : { shard: path.resolve(shard.path), name: shard.name, missing: true });
    }
    const manifest: ShardManifest = {
      format: SHARD_MANIFEST_FORMAT,
      job: spec.job,
      identity: spec.identity,
      complete: shards.every((s) => !s.missing),
      images: shards.reduce((n, s) => n + (s.images ?? 0), 0),
      shards,
    };
    await writeFileAtomic(file, JSON.stringify(manifest, null, 2) + '\n');
  } finally {
    await lock.release();
  }
}

/** Whether `dir` holds a sharded job's manifest. A build's on-disk corpus folder also has a
 *  manifest.json (its own format, read in name order), so the name alone does not tell. */
export async function holdsShardManifest(dir: string): Promise<boolean> {
  const file = path.join(dir, SHARD_MANIFEST);
  const stat = await fs.stat(file).catch(() => null);
  if (!stat?.isFile() || stat.size > MAX_JSON_BYTES) return false;
  const text = await fs.readFile(file, 'utf8').catch(() => null);
  if (text === null) return false;
  try {
    return (JSON.parse(text) as { format?: unknown } | null)?.format === SHARD_MANIFEST_FORMAT;
  } catch {
    return false;
  }
}

/** Reads a job folder's manifest (the folder or its manifest.json): every shard must be done
 *  (`partial`: a shard not done has no outputs); the output files it names are returned as paths,
 *  in shard order. */
export async function readShardManifest(fileOrDir: string, options: { partial?: boolean } = {}): Promise<{ manifest: ShardManifest; outputs: string[][] }> {
  const file = path.basename(fileOrDir) === SHARD_MANIFEST ? fileOrDir : path.join(fileOrDir, SHARD_MANIFEST);
  const doc = (await readJsonFile(file, 'shard manifest', MAX_JSON_BYTES)) as Partial<ShardManifest> | null;
  if (!doc || doc.format !== SHARD_MANIFEST_FORMAT || !Array.isArray(doc.shards)) throw new UserError(`${file} is not a shard manifest (format "${SHARD_MANIFEST_FORMAT}")`);
  const missing = doc.shards.filter((s) => s?.missing);
  if (missing.length > 0 && !options.partial) throw new UserError(`${file}: ${missing.length} of ${doc.shards.length} shards are not done yet (first: ${missing[0]!.shard}); run the missing parts first`);
  const outputs = doc.shards.map((s) => {
    if (options.partial && s?.missing) return [];
    if (!Array.isArray(s?.outputs) || !s.outputs.every((o) => typeof o === 'string' && o !== '..' && path.basename(o) === o)) {
      throw new UserError(`${file}: shard ${JSON.stringify(s?.name)} lists outputs that are not file names in the folder`);
    }
    return s.outputs.map((o) => path.join(path.dirname(file), o));
  });
  return { manifest: doc as ShardManifest, outputs };
}

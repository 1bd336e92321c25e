// Every output file is written to a temp name beside the target, flushed to disk and renamed into
// place, so a crash, kill or cancel never leaves a half-written file under the final name.
//
// Temp files are named `.<target name>.<pid>.<random>.tmp`: a write killed outright (SIGKILL,
// power loss) leaves its temp file behind, and the next write to the same target removes those
// whose process is gone. File-system errors come out as UserErrors naming the target (files.ts).
//
// Crash points for the tests that kill a write at each stage (test/fuzz/kill.test.ts): with
// UNICODE2_TEST_KILL_AT=<stage>[:<file name>] the process SIGKILLs itself on reaching that stage
// (of a write to that file name). Unset, each point costs one environment lookup.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { fileError, onFile } from './files.js';

/** Largest single write call (fs.write takes a 32-bit length). */
const WRITE_CHUNK = 64 * 2 ** 20;

type CrashStage = 'temp-created' | 'temp-partial' | 'temp-written' | 'renamed';

function crashPoint(stage: CrashStage, target: string): void {
  const at = process.env.UNICODE2_TEST_KILL_AT;
  if (at && (at === stage || at === `${stage}:${path.basename(target)}`)) process.kill(process.pid, 'SIGKILL');
}

/** Whether a process with this pid exists (a pid of another user's live process counts). */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function tempPath(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Removes temp files of earlier writes to `target` whose process no longer runs. */
async function sweepStaleTemps(target: string): Promise<void> {
  const pattern = new RegExp(`^\\.${escapeRegExp(path.basename(target))}\\.(\\d+)\\.[0-9a-f]+\\.tmp$`);
  let names: string[];
  try {
    names = await fs.readdir(path.dirname(target));
  } catch {
    return; // the write itself reports a folder it cannot use
  }
  for (const name of names) {
    const pid = Number(pattern.exec(name)?.[1]);
    if (pid && pid !== process.pid && !isProcessAlive(pid)) await fs.rm(path.join(path.dirname(target), name), { force: true });
  }
}

/** A file's bytes: one array, a string (UTF-8), or parts written one after another (a header and
 *  views of large tables, so that a 1.5 GB table is written without a second copy of it). */
export type FileData = Uint8Array | string | readonly Uint8Array[];

/** Writes `parts` to a fresh temp file beside `target` and flushes it; returns the temp path. */
async function writeTemp(target: string, parts: readonly Uint8Array[]): Promise<string> {
  const tmp = tempPath(target);
  const handle = await fs.open(tmp, 'wx');
  try {
    crashPoint('temp-created', target);
    // At least two writes (a crash point sits between them), none above WRITE_CHUNK.
    const total = parts.reduce((n, p) => n + p.length, 0);
    const chunk = Math.min(WRITE_CHUNK, Math.max(1, Math.ceil(total / 2)));
    let position = 0;
    for (const part of parts) {
      for (let offset = 0; offset < part.length; ) {
        if (position > 0) crashPoint('temp-partial', target);
        // A short write is not an error (e.g. at the file-size limit): write the rest, and the
        // next call reports why it cannot.
        const { bytesWritten } = await handle.write(part, offset, Math.min(chunk, part.length - offset), position);
        if (bytesWritten === 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
        offset += bytesWritten;
        position += bytesWritten;
      }
    }
    // On disk before the rename makes it visible: after a power loss the target is either the old
    // file or the whole new one.
    await handle.datasync();
  } catch (err) {
    await handle.close();
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  crashPoint('temp-written', target);
  return tmp;
}

export interface FileToWrite {
  path: string;
  data: FileData;
}

/**
 * Writes several files that belong together: every temp file first, and only when all are
 * complete the renames, in the order given. A failure while writing (disk full, permissions)
 * leaves every previous file intact. Only a crash between two renames can leave the files
 * mismatched, so the first file named should be one whose partner records how to recognise it
 * (a token data set's index records the size and sha256 of its data file).
 */
export async function writeFilesAtomic(files: FileToWrite[]): Promise<void> {
  const temps: { tmp: string; target: string }[] = [];
  let current = '';
  try {
    for (const file of files) {
      const target = (current = path.resolve(file.path));
      await onFile(target, 'create its folder', () => fs.mkdir(path.dirname(target), { recursive: true }));
      await sweepStaleTemps(target);
      const parts = typeof file.data === 'string' ? [Buffer.from(file.data)] : file.data instanceof Uint8Array ? [file.data] : file.data;
      temps.push({ tmp: await writeTemp(target, parts), target });
    }
    // A folder in the way fails its rename: found before the first rename, so none happens.
    for (const { target } of temps) {
      current = target;
      if ((await fs.stat(target).catch(() => null))?.isDirectory()) throw Object.assign(new Error('EISDIR'), { code: 'EISDIR' });
    }
    for (const { tmp, target } of temps) {
      current = target;
      await fs.rename(tmp, target);
      crashPoint('renamed', target);
    }
  } catch (err) {
    await Promise.all(temps.map(({ tmp }) => fs.rm(tmp, { force: true })));
    throw fileError(err, current, 'write');
  }
}

export async function writeFileAtomic(target: string, data: FileData): Promise<void> {
  await writeFilesAtomic([{ path: target, data }]);
}

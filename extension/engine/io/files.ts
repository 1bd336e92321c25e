// How the engine reads the user's files, in one place: the one mapping of file-system errors
// (errno) to a UserError that names the path and what to do, the one check that a path is a
// regular file before anything reads it (a FIFO would block the read forever, a folder fails
// with EISDIR deep inside a reader), and reads that never ask Node for more than a bounded
// amount at once (fs.read takes a 32-bit length: a larger one aborts the process).
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs, constants } from 'node:fs';
import { UserError } from '../../../common/errors.js';

/** What the errno of a failed file operation means to the user, and what they can do about it. */
const ERRNO_ADVICE: Record<string, string> = {
  ENOENT: 'no such file or folder',
  EACCES: 'permission denied; check its permissions or choose another location',
  EPERM: 'operation not permitted; check its permissions or choose another location',
  ENOSPC: 'no space left on the device; free some space or write elsewhere',
  EDQUOT: 'the disk quota is exhausted; free some space or write elsewhere',
  EFBIG: 'the file is larger than this file system or the file-size limit allows; write elsewhere',
  EROFS: 'the file system is read-only; choose another location',
  EISDIR: 'is a folder, expected a file',
  ENOTDIR: 'a part of the path is a file where a folder is expected',
  EEXIST: 'a file is in the way where a folder is expected',
  ENOTEMPTY: 'a non-empty folder is in the way',
  ENAMETOOLONG: 'the path is too long',
  ELOOP: 'too many levels of symbolic links',
  EMFILE: 'too many open files; close some programs and retry',
  ENFILE: 'too many open files on the system; retry later',
  EIO: 'input/output error from the device; check the disk',
  EBUSY: 'the file is busy (in use by another program)',
  ETXTBSY: 'the file is busy (in use by another program)',
  EXDEV: 'cannot move a file across devices',
};

function errnoCode(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
}

/**
 * The one mapping of a file-system error on the user's file `file` to a UserError:
 * "<file>: cannot <action>: <what the errno means and what to do>". Errors that are not errno
 * errors (bugs) and UserErrors pass through unchanged.
 */
export function fileError(err: unknown, file: string, action: string): unknown {
  if (err instanceof UserError) return err;
  const code = errnoCode(err);
  if (!code) return err;
  return new UserError(`${file}: cannot ${action}: ${ERRNO_ADVICE[code] ?? `system error ${code}`}`);
}

/** Runs one file-system call on the user's file, with its errors mapped by fileError. */
export async function onFile<T>(file: string, action: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw fileError(err, file, action);
  }
}

function kindOf(stat: { isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }): string {
  if (stat.isDirectory()) return 'a folder';
  if (stat.isFIFO()) return 'a named pipe (FIFO)';
  if (stat.isSocket()) return 'a socket';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

function notRegular(file: string, what: string, kind: string): UserError {
  return new UserError(`${file}: expected ${what} (a regular file), found ${kind}`);
}

/**
 * Checks that `file` is a regular file (symbolic links followed) before it is handed to a native
 * library that opens it itself (sharp, onnxruntime); returns its size. `what` names the file in
 * the message, e.g. "an ONNX model".
 */
export async function requireRegularFile(file: string, what: string): Promise<number> {
  const stat = await onFile(file, `read ${what}`, () => fs.stat(file));
  if (!stat.isFile()) throw notRegular(file, what, kindOf(stat));
  return stat.size;
}

export interface OpenedFile {
  handle: fs.FileHandle;
  size: number;
  mtimeMs: number;
}

/**
 * Opens `file` for reading, refusing anything but a regular file. Opened non-blocking and checked
 * on the open descriptor, so a FIFO is refused instead of blocking until a writer appears, and the
 * file checked is the file read.
 */
export async function openRegularFile(file: string, what: string): Promise<OpenedFile> {
  const handle = await onFile(file, `read ${what}`, () => fs.open(file, constants.O_RDONLY | constants.O_NONBLOCK));
  try {
    const stat = await onFile(file, `read ${what}`, () => handle.stat());
    if (!stat.isFile()) throw notRegular(file, what, kindOf(stat));
    return { handle, size: stat.size, mtimeMs: stat.mtimeMs };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** Largest single fs.read: Node takes a 32-bit length and aborts the process on a larger one. */
const READ_CHUNK = 1 << 30;

/** Fills `into` from `position` of an open file, in bounded chunks; a short file is a UserError. */
export async function readExactly(handle: fs.FileHandle, into: Uint8Array, position: number, file: string, what: string): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const length = Math.min(READ_CHUNK, into.length - done);
    const { bytesRead } = await onFile(file, `read ${what}`, () => handle.read(into, done, length, position + done));
    if (bytesRead === 0) throw new UserError(`${file}: truncated ${what} (ends after ${position + done} bytes, expected at least ${position + into.length})`);
    done += bytesRead;
  }
}

/** The whole of a regular file of at most `maxBytes` bytes (the bound is said in the message). */
export async function readRegularFile(file: string, what: string, maxBytes: number): Promise<Uint8Array> {
  const { handle, size } = await openRegularFile(file, what);
  try {
    if (size > maxBytes) {
      throw new UserError(`${file}: ${what} is ${size} bytes; the limit is ${maxBytes} bytes (${formatBytes(maxBytes)})`);
    }
    const bytes = new Uint8Array(size);
    await readExactly(handle, bytes, 0, file, what);
    return bytes;
  } finally {
    await handle.close();
  }
}

/** A JSON file of at most `maxBytes` bytes, parsed; unreadable or invalid JSON is a UserError. */
export async function readJsonFile(file: string, what: string, maxBytes: number): Promise<unknown> {
  const bytes = await readRegularFile(file, what, maxBytes);
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new UserError(`${file}: ${what} is not valid JSON (${(err as Error).message.split('\n')[0]})`);
  }
}

export function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]}`;
}

/** The hex digest of a file's bytes, streamed (model weights run to gigabytes), after `prefix`
 *  (git's blob sha1 hashes a `blob <size>\0` header first). */
export async function fileDigest(file: string, algorithm: 'sha256' | 'sha1', prefix = ''): Promise<string> {
  const hash = createHash(algorithm).update(prefix);
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

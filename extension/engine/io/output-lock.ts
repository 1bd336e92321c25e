// One job owns an output at a time. A job that writes an output (a build writing a codebook and
// its corpus folder beside it) first creates `<output>.lock` exclusively, holding its pid, the
// process start time and a random token; a second job for the same output is refused with a
// message naming the holder. A lock left by a process that is gone (killed, crashed) is taken
// over: a pid that runs again, but as a process started at another time, is gone too.
//
// The lock file appears complete or not at all (written to a temp name, then hard-linked to the
// lock name, which fails if the name exists), so a reader never sees a half-written lock.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../../common/errors.js';
import { isProcessAlive } from './atomic-write.js';
import { fileError, onFile } from './files.js';

export interface OutputLock {
  /** the lock file */
  file: string;
  /** removes the lock if it is still this job's */
  release(): Promise<void>;
}

interface Holder {
  pid: number;
  /** the process's start time in clock ticks since boot (/proc/<pid>/stat), when known */
  started: number | null;
  /** what the holder is doing, for the message: 'build', 'refine' */
  job: string;
  token: string;
}

export function lockPath(output: string): string {
  return `${path.resolve(output)}.lock`;
}

/** A process's start time (field 22 of /proc/<pid>/stat), or null where /proc does not tell. */
async function startTimeOf(pid: number): Promise<number | null> {
  try {
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from its closing one.
    const started = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    return Number.isSafeInteger(started) ? started : null;
  } catch {
    return null;
  }
}

async function isHolderAlive(holder: Holder): Promise<boolean> {
  if (!isProcessAlive(holder.pid)) return false;
  if (holder.started === null) return true;
  const started = await startTimeOf(holder.pid);
  return started === null || started === holder.started;
}

function parseHolder(text: string): Holder | null {
  try {
    const h = JSON.parse(text) as Partial<Holder>;
    const ok = Number.isSafeInteger(h.pid) && (h.started === null || Number.isSafeInteger(h.started)) && typeof h.job === 'string' && typeof h.token === 'string';
    return ok ? (h as Holder) : null;
  } catch {
    return null;
  }
}

/** Creates the lock file with `content` unless it exists; false when it does. */
async function createExclusive(file: string, content: string): Promise<boolean> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  await onFile(file, 'create the lock file', () => fs.writeFile(tmp, content, { flag: 'wx' }));
  try {
    await fs.link(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

/**
 * Removes a lock whose holder is gone, unless another job replaced it in the meantime: the lock
 * is moved aside first and put back if what was moved is not the lock that was judged stale.
 */
async function removeStale(file: string, staleText: string): Promise<void> {
  const aside = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.stale`);
  try {
    await fs.rename(file, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // someone else removed it
    throw err;
  }
  const moved = await fs.readFile(aside, 'utf8').catch(() => '');
  if (moved !== staleText) await fs.link(aside, file).catch(() => undefined); // a live lock: back it goes
  await fs.rm(aside, { force: true });
}

/** The refusal of a lock a live job holds (waitForOutputLock waits these out). */
class LockHeld extends UserError {}

/** The refusal: a job of this process (another job of the same VS Code window) or of another. */
function refusal(holder: Holder, output: string): UserError {
  const mine = holder.pid === process.pid;
  return new LockHeld(mine ? `a ${holder.job} into ${output} is already running` : `another ${holder.job} is writing ${output} (pid ${holder.pid})`, {
    cli: 'wait for it or choose another output',
    vscode: mine ? 'wait for it to finish or cancel it' : 'wait for it to finish',
  });
}

/**
 * Takes the lock of `output` for a job of kind `job` ('build', ...), or throws a UserError naming
 * the live job that holds it. Release it when the job ends, also when it fails or is cancelled.
 */
export async function lockOutput(output: string, job: string): Promise<OutputLock> {
  const file = lockPath(output);
  await onFile(file, 'create the lock file', () => fs.mkdir(path.dirname(file), { recursive: true }));
  const me: Holder = { pid: process.pid, started: await startTimeOf(process.pid), job, token: randomBytes(8).toString('hex') };
  const content = JSON.stringify(me) + '\n';
  // A few rounds: each lost race against another job taking over the same stale lock is retried.
  for (let round = 0; round < 5; round++) {
    try {
      if (await createExclusive(file, content)) {
        return {
          file,
          release: async () => {
            const holder = parseHolder(await fs.readFile(file, 'utf8').catch(() => ''));
            if (holder?.token === me.token) await fs.rm(file, { force: true });
          },
        };
      }
      const text = await fs.readFile(file, 'utf8').catch(() => null);
      if (text === null) continue; // released meanwhile
      const holder = parseHolder(text);
      if (holder && (await isHolderAlive(holder))) throw refusal(holder, output);
      await removeStale(file, text);
    } catch (err) {
      throw fileError(err, file, `take the lock of ${output}`);
    }
  }
  throw new UserError(`${file}: cannot take the lock of ${output}: other jobs keep taking it; try again`);
}

/** Runs `work` while holding the lock of `output` (see lockOutput). */
export async function withOutputLock<T>(output: string, job: string, work: () => Promise<T>): Promise<T> {
  const lock = await lockOutput(output, job);
  try {
    return await work();
  } finally {
    await lock.release();
  }
}

/** lockOutput for a short shared step (several processes merging into one manifest): a lock held
 *  by a live job is waited for, up to `waitMs`, instead of refused. */
export async function waitForOutputLock(output: string, job: string, waitMs: number): Promise<OutputLock> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      return await lockOutput(output, job);
    } catch (err) {
      if (!(err instanceof LockHeld) || Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 40));
    }
  }
}

// A long job's checkpoint folder: state.json (what is done) plus the files it names. A job run
// again with the same key picks up where the last run stopped; a different key (other arguments,
// other input files) means the folder describes another job, so it is emptied and the job starts
// over. Every file goes through writeFileAtomic and the state is written after the files it
// names, so a kill at any instant leaves either the previous checkpoint or the next one.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Matrix } from '../../../native-gpu/backend.js';
import { writeFileAtomic } from './atomic-write.js';
import { UserError } from '../../../common/errors.js';
import { readNpy, writeNpy } from './formats/npy.js';

const STATE = 'state.json';

export class Checkpoint<State extends object> {
  private constructor(readonly dir: string, private readonly key: string, public state: State, readonly resumed: boolean) {}

  /** Opens (or starts) the checkpoint in `dir` for the job described by `key`. */
  static async open<State extends object>(dir: string, key: unknown, initial: State): Promise<Checkpoint<State>> {
    const keyText = JSON.stringify(key);
    const saved = await readState(dir);
    if (saved && saved.key === keyText) {
      await removeTempFiles(dir);
      return new Checkpoint(dir, keyText, saved.state as State, true);
    }
    await fs.rm(dir, { recursive: true, force: true });
    await fs.mkdir(dir, { recursive: true });
    const checkpoint = new Checkpoint(dir, keyText, initial, false);
    await checkpoint.save();
    return checkpoint;
  }

  /** The checkpoint in `dir` for `key`, as it is: a task of a plan running beside others neither
   *  empties it nor sweeps its temp files (another task may be writing one); another key is refused. */
  static async attach<State extends object>(dir: string, key: unknown): Promise<Checkpoint<State>> {
    const keyText = JSON.stringify(key);
    const saved = await readState(dir);
    if (!saved || saved.key !== keyText) {
      throw new UserError(`${dir} holds no work of this build (it was started with other arguments, input or device, or not at all)`, {
        cli: 'run the same command again without --stage, or with --slurm, to start it over',
        vscode: 'run the build again',
      });
    }
    return new Checkpoint(dir, keyText, saved.state as State, true);
  }

  /** The key a checkpoint folder was opened with (as JSON text), or null when there is none. */
  static async savedKey(dir: string): Promise<string | null> {
    return (await readState(dir))?.key ?? null;
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }

  /** Records `state` as done; call after writing every file it names. */
  async save(state: State = this.state): Promise<void> {
    this.state = state;
    await writeFileAtomic(this.file(STATE), JSON.stringify({ key: this.key, state }));
  }

  async writeMatrix(name: string, m: Matrix): Promise<void> {
    await writeNpy(this.file(name), { shape: [m.rows, m.cols], dtype: 'float32', data: m.data });
  }

  async readMatrix(name: string): Promise<Matrix> {
    const a = await readNpy(this.file(name));
    if (a.dtype !== 'float32' || a.shape.length !== 2) throw this.damaged(name);
    return { rows: a.shape[0], cols: a.shape[1], data: a.data as Float32Array };
  }

  async writeInts(name: string, values: Int32Array): Promise<void> {
    await writeNpy(this.file(name), { shape: [values.length], dtype: 'int32', data: values });
  }

  async readInts(name: string): Promise<Int32Array> {
    const a = await readNpy(this.file(name));
    if (a.dtype !== 'int32' || a.shape.length !== 1) throw this.damaged(name);
    return a.data as Int32Array;
  }

  async exists(name: string): Promise<boolean> {
    return fs.access(this.file(name)).then(() => true, () => false);
  }

  async remove(name: string): Promise<void> {
    await fs.rm(this.file(name), { recursive: true, force: true });
  }

  private damaged(name: string): UserError {
    return new UserError(`${this.file(name)}: checkpoint file is not what ${STATE} expects; delete ${this.dir} to start the build over`);
  }
}

async function readState(dir: string): Promise<{ key: string; state: unknown } | null> {
  let text: string;
  try {
    text = await fs.readFile(path.join(dir, STATE), 'utf8');
  } catch {
    return null;
  }
  try {
    const parsed = JSON.parse(text) as { key?: unknown; state?: unknown };
    return typeof parsed.key === 'string' && typeof parsed.state === 'object' && parsed.state !== null ? { key: parsed.key, state: parsed.state } : null;
  } catch {
    return null; // not ours, or from a version that wrote something else: start over
  }
}

/** Temp files of atomic writes a killed run left behind (the rename never happened). */
async function removeTempFiles(dir: string): Promise<void> {
  for (const entry of await fs.readdir(dir, { recursive: true })) {
    if (path.basename(entry).startsWith('.') && entry.endsWith('.tmp')) await fs.rm(path.join(dir, entry), { force: true });
  }
}

// Parquet files read with hyparquet (a maintained pure-JS reader), one row group at a time and only
// the columns asked for: a Hugging Face data-set shard of a few GB never sits in memory whole.
// hyparquet runs in a child process of its own (parquet-worker.ts: bounded reads, page headers
// checked) held to a heap limit and a watchdog: a damaged data page on which it would loop or grow
// without end ends that process, and is one UserError naming the file and the row group, whatever
// the library did. Started per file opened: nothing starts it when no parquet file is read.
import { fork, type ChildProcess } from 'node:child_process';
import { UserError } from '../../../../common/errors.js';
import { workerScript } from '../../core/worker-script.js';
import { MAX_PARQUET_DECODE_HEAP_MB, MAX_PARQUET_READ_BYTES, PARQUET_DECODE_BASE_MS, PARQUET_DECODE_MS_PER_MIB } from '../../core/limits.js';
import type { ParquetOpened, ParquetReply, ParquetRequest } from './parquet-worker.js';

export interface ParquetColumn {
  name: string;
  /** 'binary': BYTE_ARRAY without a text annotation; 'struct': a group, with its children's names */
  kind: 'binary' | 'string' | 'struct' | 'other';
  children: string[];
}

export interface ParquetRows {
  /** the row number of the first of `rows` in the file */
  first: number;
  rows: Record<string, unknown>[];
}

export interface ParquetFile {
  columns: ParquetColumn[];
  rows: number;
  /** the rows of the named top-level columns, one row group at a time */
  rowGroups(columns: string[]): AsyncGenerator<ParquetRows>;
  close(): Promise<void>;
}

/** The decoding process of one file: one request at a time, each under the watchdog. */
class Decoder {
  private readonly child: ChildProcess;
  private pending: { reject(err: Error): void; what: string } | undefined;
  private failed: Error | undefined;
  private readonly exited: Promise<void>;

  constructor(private readonly file: string) {
    const { file: script, execArgv = [] } = workerScript(__dirname, 'parquet-worker');
    this.child = fork(script, [], {
      execArgv: [...execArgv, `--max-old-space-size=${MAX_PARQUET_DECODE_HEAP_MB}`],
      // the extension host's node is Electron's; V8's own report of a fatal error is not ours to print
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
      serialization: 'advanced', // Uint8Array cells arrive as Uint8Array
    });
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    // V8 aborts a process whose heap passes its limit: the usual end of an array grown without end
    this.child.once('exit', (code, signal) => this.fail(`could not be decoded in ${MAX_PARQUET_DECODE_HEAP_MB} MB of memory (the decoder ended: ${signal ?? `exit ${code}`}): a damaged data page, or a row group too large`));
    this.child.on('error', (err) => this.fail(`could not be decoded (${err.message})`));
  }

  request<T>(message: ParquetRequest, what: string, bytes = 0): Promise<T> {
    if (this.failed) return Promise.reject(this.failed);
    const mib = Math.max(0, Math.min(bytes, MAX_PARQUET_READ_BYTES) / 2 ** 20 || 0); // a footer's sizes may be anything
    const allowed = Math.round((PARQUET_DECODE_BASE_MS + PARQUET_DECODE_MS_PER_MIB * mib) / 1000);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(`did not decode in ${allowed} s (a damaged data page)`), allowed * 1000);
      this.pending = { reject: (err) => (clearTimeout(timer), reject(err)), what };
      this.child.once('message', (reply: ParquetReply) => {
        clearTimeout(timer);
        this.pending = undefined;
        if (reply.ok) resolve(reply.value as T);
        else reject(new UserError(reply.error));
      });
      this.child.send(message);
    });
  }

  /** Ends the process for good: the request waiting gets one UserError naming what it was. */
  private fail(why: string): void {
    if (this.failed) return;
    this.failed = new UserError(`${this.file}: ${this.pending?.what ?? 'the parquet file'} ${why}`);
    this.pending?.reject(this.failed);
    this.pending = undefined;
    this.child.kill('SIGKILL');
  }

  async close(): Promise<void> {
    this.failed ??= new UserError(`${this.file}: the parquet file was closed`);
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** Opens a parquet file: its footer read and parsed, its top-level columns listed. */
export async function openParquet(file: string): Promise<ParquetFile> {
  const decoder = new Decoder(file);
  try {
    const opened = await decoder.request<ParquetOpened>({ op: 'open', file }, 'its footer');
    return { columns: opened.columns, rows: opened.rows, rowGroups: (names) => rowGroups(decoder, opened, names), close: () => decoder.close() };
  } catch (err) {
    await decoder.close();
    throw err;
  }
}

async function* rowGroups(decoder: Decoder, opened: ParquetOpened, columns: string[]): AsyncGenerator<ParquetRows> {
  for (const [index, bytes] of opened.groupBytes.entries()) {
    yield await decoder.request<ParquetRows>({ op: 'group', index, columns }, `row group ${index}`, bytes);
  }
}

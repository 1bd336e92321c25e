// Progress on stderr, never stdout (stdout carries the one result document). On a terminal it
// is a single line rewritten in place; piped to a file or CI log it is plain lines, one when a
// phase starts or ends and at most one a second in between, so logs stay readable.
import { describeProgress, type ProgressEvent } from '../engine/index.js';

const PIPED_INTERVAL_MS = 1000;
const TTY_INTERVAL_MS = 100;

export class ProgressReporter {
  private phase = '';
  private lastAt = 0;
  private lineOpen = false;

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly quiet: boolean,
  ) {}

  report(e: ProgressEvent): void {
    if (this.quiet) return;
    const now = Date.now();
    const boundary = e.phase !== this.phase || e.done >= e.total;
    const interval = this.stream.isTTY ? TTY_INTERVAL_MS : PIPED_INTERVAL_MS;
    if (!boundary && now - this.lastAt < interval) return;
    this.phase = e.phase;
    this.lastAt = now;
    const text = describeProgress(e, { percent: true });
    if (this.stream.isTTY) {
      this.stream.write(`\r\x1b[2K${text.slice(0, Math.max(20, (this.stream.columns || 80) - 1))}`);
      this.lineOpen = true;
    } else {
      this.stream.write(`${text}\n`);
    }
  }

  /** A message that must not be overwritten (warnings, skipped files). */
  note(text: string): void {
    if (this.quiet) return;
    this.end();
    this.stream.write(`${text}\n`);
  }

  /** Closes the in-place line so what follows starts on a fresh one. */
  end(): void {
    if (this.lineOpen) this.stream.write('\n');
    this.lineOpen = false;
  }
}

// Time-left estimates for long jobs: each phase's rate so far (work done / seconds since the phase
// began) applied to the work left in it. Work is counted in whatever unit tracks the cost of the
// phase (rows streamed, distance multiply-adds), which need not be what the progress line shows.

/** Follows a job through its phases: the time left in the current one, the time spent in each. */
export class PhaseClock {
  private phase = '';
  private startedAt = 0;
  private startWork = 0;
  private readonly spent: Record<string, number> = {};

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Notes that `phase` is running with this much of its work done; returns the seconds left in
   *  it from its rate so far, or undefined until there is a rate. */
  eta(phase: string, workDone: number, workTotal: number): number | undefined {
    if (phase !== this.phase) {
      this.close();
      // A resumed phase starts part-way: only work done since it (re)started counts for the rate.
      this.phase = phase;
      this.startedAt = this.now();
      this.startWork = workDone;
      return undefined;
    }
    const done = workDone - this.startWork;
    const seconds = (this.now() - this.startedAt) / 1000;
    if (done <= 0 || seconds <= 0) return undefined;
    return Math.max(0, ((workTotal - workDone) * seconds) / done);
  }

  /** Seconds spent in each phase so far, the current one up to now. */
  durations(): Record<string, number> {
    this.close();
    this.startedAt = this.now();
    return { ...this.spent };
  }

  private close(): void {
    if (this.phase) this.spent[this.phase] = (this.spent[this.phase] ?? 0) + (this.now() - this.startedAt) / 1000;
  }
}

/** 75 -> "1m 15s", 4000 -> "1h 6m", 9 -> "9s". */
export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

/** One line for a progress event: "cells 120/707 17%, ETA 6m 40s, 707 codes from 2,829 vectors". */
export function describeProgress(e: { phase: string; done: number; total: number; etaSeconds?: number; message?: string }, opts: { percent?: boolean } = {}): string {
  const percent = opts.percent && e.total > 0 ? ` ${Math.floor((100 * e.done) / e.total)}%` : '';
  const eta = e.etaSeconds !== undefined && e.done < e.total ? `ETA ${formatDuration(e.etaSeconds)}` : '';
  return [`${e.phase} ${e.done}/${e.total}${percent}`, eta, e.message].filter(Boolean).join(', ');
}

// Progress of long work: the one event the engine reports and both surfaces render, each through
// eta.ts's describeProgress — the CLI as a stderr line (cli/progress.ts), the extension as its
// progress notification and the job's Lab cell (state/jobs.ts). Work that counts steps (images embedded, tokenized, refined) reports
// (done, total); stepsOf turns that into events of one phase.

export interface ProgressEvent {
  /** what runs now: 'embed', 'kmeans', 'tokenize', ... */
  phase: string;
  done: number;
  total: number;
  /** estimated seconds left in the phase (eta.ts), when the work has a rate yet */
  etaSeconds?: number;
  /** a line about the state of the phase (e.g. the k-means inertia), when there is one */
  message?: string;
}

export type ProgressListener = (e: ProgressEvent) => void;

/** A (done, total) step counter reporting as events of `phase`. */
export function stepsOf<P extends string>(
  phase: P,
  listener: ((e: { phase: P; done: number; total: number }) => void) | undefined,
): (done: number, total: number) => void {
  return (done, total) => listener?.({ phase, done, total });
}

// Runs one piece of long work the same way for every command: a Lab cell that shows its inputs,
// parameters, progress and outputs; a cancellable progress notification whose Cancel (or the
// cell's stop button) aborts the engine through an AbortSignal; and errors mapped to what the
// user can act on: UserError -> its one line, CancelledError -> an info message. A job that
// names its output owns it while it runs (the engine's output lock): a second job for the same
// output is refused and its cell says which job holds it.
import * as vscode from 'vscode';
import { CancelledError } from '../../common/errors.js';
import { describeProgress, withOutputLock, type ProgressEvent } from '../engine/index.js';
import { errorText, showError } from './errors.js';
import type { LabCell, LabKind } from '../../common/protocol/lab.js';
import type { LabStore } from './lab-store.js';
import type { BackendManager } from './backend.js';

export interface JobSpec {
  kind: LabKind;
  title: string;
  inputs: Record<string, string>;
  params: Record<string, string | number>;
  /** kept for a re-run, not shown (LabCell.replay) */
  replay?: Record<string, string | number>;
  /** shown instead of the generic "… cancelled" message */
  cancelledMessage?: string;
  /** the file or folder the job writes, locked while it runs; left out where the engine call
   *  takes that lock itself (buildCodebook) */
  output?: string;
  /** the Lab cell of a run that outlived its window (a job on Slurm, re-attached after a reload):
   *  the run goes on in that cell instead of a new one */
  resume?: string;
}

export interface JobContext {
  signal: AbortSignal;
  /** the run's Lab cell */
  cell: string;
  progress(e: ProgressEvent): void;
}

export type JobOutputs = Pick<LabCell, 'metrics' | 'thumbnails' | 'tokenPreview' | 'files' | 'warning'>;

export class Jobs {
  private readonly running = new Map<string, AbortController>();
  private nextId = Date.now();

  constructor(
    private readonly lab: LabStore,
    private readonly log: vscode.OutputChannel,
    private readonly backend: BackendManager,
  ) {}

  cancel(cellId: string): void {
    this.running.get(cellId)?.abort();
  }

  /** Runs `work`; resolves to its result, or undefined when it failed or was cancelled (already reported). */
  async run<T extends JobOutputs>(spec: JobSpec, work: (ctx: JobContext) => Promise<T>): Promise<T | undefined> {
    const id = spec.resume ?? `cell-${(this.nextId++).toString(36)}`;
    const abort = new AbortController();
    this.running.set(id, abort);
    if (!spec.resume) this.lab.add({ id, kind: spec.kind, status: 'running', title: spec.title, startedAt: new Date().toISOString(), inputs: spec.inputs, params: spec.params, ...(spec.replay ? { replay: spec.replay } : {}), progress: { done: 0, total: 0 } });
    this.log.appendLine(`[${spec.kind}] ${spec.title} ${JSON.stringify({ ...spec.inputs, ...spec.params })}`);
    const started = Date.now();
    try {
      const result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `UniCode²: ${spec.title}`, cancellable: true },
        async (progress, token) => {
          token.onCancellationRequested(() => abort.abort());
          let reported = 0;
          let lastCell = 0;
          const ctx: JobContext = {
            signal: abort.signal,
            cell: id,
            progress: (e) => {
              const { done, total } = e;
              const message = describeProgress(e);
              const fraction = total > 0 ? Math.min(1, done / total) : 0;
              progress.report({ increment: Math.max(0, (fraction - reported) * 100), message });
              reported = Math.max(reported, fraction);
              // the view redraws the cell on each update: at most ~5 times a second
              const now = Date.now();
              if (now - lastCell > 200 || done === total) {
                lastCell = now;
                this.lab.progress(id, { done, total, message });
              }
            },
          };
          const { output } = spec;
          return this.backend.hold(() => (output ? withOutputLock(output, spec.kind, () => work(ctx)) : work(ctx)));
        },
      );
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      this.lab.update(id, { status: 'done', finishedAt: new Date().toISOString(), progress: undefined, ...result });
      this.log.appendLine(`[${spec.kind}] done in ${seconds} s`);
      return result;
    } catch (err) {
      const finishedAt = new Date().toISOString();
      if (err instanceof CancelledError || abort.signal.aborted) {
        const message = spec.cancelledMessage ?? `UniCode²: ${spec.title} cancelled`;
        this.lab.update(id, { status: 'cancelled', finishedAt, progress: undefined, error: message });
        this.log.appendLine(`[${spec.kind}] cancelled`);
        void vscode.window.showInformationMessage(message);
      } else {
        const message = errorText(err);
        this.lab.update(id, { status: 'failed', finishedAt, progress: undefined, error: message });
        this.log.appendLine(`[${spec.kind}] failed: ${message}`);
        showError(err, this.log);
      }
      return undefined;
    } finally {
      this.running.delete(id);
    }
  }
}

// A model downloaded from the Hugging Face hub while an encoder opens outside a job (a codebook's
// own model, reopened for a panel or a command): its bytes in a notification with Cancel, shown
// only once bytes arrive, so a model already in the cache opens without one. A cancelled download
// keeps what arrived and resumes the next time.
import * as vscode from 'vscode';
import type { DownloadControl, ProgressEvent } from '../engine/index.js';

export async function withDownloadNotification<T>(title: string, open: (download: DownloadControl) => Promise<T>): Promise<T> {
  const stop = new AbortController();
  let report: ((e: ProgressEvent) => void) | undefined;
  let finish = () => {};
  let ended = false;
  const onProgress = (e: ProgressEvent) => {
    if (!report) {
      report = () => {};
      void vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, (progress, token) => {
        token.onCancellationRequested(() => stop.abort());
        report = (ev) => progress.report({ message: `${ev.message ?? ''} (${Math.floor((100 * ev.done) / Math.max(1, ev.total))}%)` });
        return ended ? Promise.resolve() : new Promise<void>((resolve) => (finish = resolve));
      });
    }
    report(e);
  };
  try {
    return await open({ signal: stop.signal, onProgress });
  } finally {
    ended = true;
    finish();
  }
}

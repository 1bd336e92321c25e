// The Lab side view (WebviewView in its own activity-bar container): renders the LabStore's
// cells and turns the cell buttons into commands (new run, re-run, open, remove, cancel).
import * as vscode from 'vscode';
import type { LabCell, LabChannel, LabReply } from '../../common/protocol.js';
import type { Studio } from '../state/studio.js';
import { connectWebview, webviewOptions } from './webviewHost.js';

export const LAB_VIEW_ID = 'unicode2.lab';

export interface LabActions {
  /** starts a new run of that kind (prompting for inputs like the palette command does) */
  run(kind: LabCell['kind']): Promise<void>;
  /** runs a cell's kind again with the cell's inputs and parameters */
  rerun(cell: LabCell): Promise<void>;
  /** opens the cell's output in a panel */
  open(cell: LabCell): Promise<void>;
}

export class LabViewProvider implements vscode.WebviewViewProvider {
  constructor(
    private readonly studio: Studio,
    private readonly actions: LabActions,
  ) {}

  resolveWebviewView(view: vscode.WebviewView): void {
    view.webview.options = webviewOptions(this.studio.extensionUri);
    const { endpoint, disposable } = connectWebview<LabChannel['request'], LabChannel['notification']>(
      view.webview, this.studio.extensionUri, 'lab', 'lab', 'UniCode² Lab', this.studio.log, (r) => this.handle(r),
    );
    const onCells = this.studio.lab.onDidChange((cells) => endpoint.notify({ type: 'cells', cells }));
    view.onDidDispose(() => {
      disposable.dispose();
      onCells.dispose();
    });
  }

  private async handle(r: LabChannel['request']): Promise<LabReply> {
    if (r.type === 'init') return { type: 'cells', cells: this.studio.lab.all() };
    if (r.type === 'run') {
      // not awaited: the run reports through its cell; the button's request is answered at once
      void this.actions.run(r.kind);
      return { type: 'ok' };
    }
    const cell = this.studio.lab.get(r.cell);
    if (!cell) throw new Error(`no Lab cell ${r.cell}`);
    switch (r.type) {
      case 'rerun':
        void this.actions.rerun(cell);
        break;
      case 'open':
        await this.actions.open(cell);
        break;
      case 'remove':
        this.studio.jobs.cancel(cell.id);
        this.studio.lab.remove(cell.id);
        break;
      case 'cancel':
        this.studio.jobs.cancel(cell.id);
        break;
    }
    return { type: 'ok' };
  }
}

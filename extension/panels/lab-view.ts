// The Lab side view (WebviewView in its own activity-bar container): renders the LabStore's
// cells and turns the cell buttons into commands (new run, re-run, open, remove, cancel).
import * as vscode from 'vscode';
import { labProtocol, type LabCell } from '../../common/protocol/lab.js';
import type { Studio } from '../state/studio.js';
import { connectWebview, webviewOptions } from './webview-host.js';

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
    const { endpoint, disposable } = connectWebview(view.webview, this.studio.extensionUri, 'lab', labProtocol, 'UniCode² Lab', this.studio.log, {
      init: () => this.studio.lab.all(),
      run: ({ kind }) => {
        // not awaited: the run reports through its cell; the button's request is answered at once
        void this.actions.run(kind);
        return null;
      },
      rerun: ({ cell }) => {
        void this.actions.rerun(this.cell(cell));
        return null;
      },
      open: async ({ cell }) => {
        await this.actions.open(this.cell(cell));
        return null;
      },
      remove: ({ cell }) => {
        this.studio.jobs.cancel(this.cell(cell).id);
        this.studio.lab.remove(cell);
        return null;
      },
      cancel: ({ cell }) => {
        this.studio.jobs.cancel(this.cell(cell).id);
        return null;
      },
    });
    const onCells = this.studio.lab.onDidChange((cells) => endpoint.notify('cells', { cells }));
    view.onDidDispose(() => {
      disposable.dispose();
      onCells.dispose();
    });
  }

  private cell(id: string): LabCell {
    const cell = this.studio.lab.get(id);
    if (!cell) throw new Error(`no Lab cell ${id}`);
    return cell;
  }
}

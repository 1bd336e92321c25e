// The Lab side view (WebviewView in its own activity-bar container): renders the LabStore's
// cells and turns the cell buttons into commands (new run, re-run, open, remove, cancel).
import * as vscode from 'vscode';
import * as path from 'node:path';
import { existsSync } from 'node:fs';
import { labProtocol, type LabCell } from '../../common/protocol/lab.js';
import type { Studio } from '../state/studio.js';
import { connectWebview, webviewOptions } from './webview-host.js';
import { logName } from '../engine/index.js';

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
        // a run on Slurm: its follower cancels the jobs (scancel) as it stops
        this.studio.jobs.cancel(this.cell(cell).id);
        return null;
      },
      log: async ({ cell, task }) => {
        await openTaskLog(this.cell(cell), task);
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

/** A Slurm task's log, from the cell's job folder (the task is one the cell shows). */
async function openTaskLog(cell: LabCell, task: number | string): Promise<void> {
  if (!cell.slurm?.tasks.some((t) => t.task === task)) throw new Error(`no Slurm task ${task} in Lab cell ${cell.id}`);
  const file = path.join(cell.slurm.folder, logName(task));
  if (!existsSync(file)) return void vscode.window.showInformationMessage(`UniCode²: task ${task} has no log yet (Slurm writes ${file} when the task starts)`);
  await vscode.window.showTextDocument(vscode.Uri.file(file), { preview: true });
}

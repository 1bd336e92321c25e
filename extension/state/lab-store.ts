// The Lab's cells, kept with the workspace (workspaceState) so the notebook of runs comes back
// after a reload. Runs here cannot survive a reload: a cell still 'running' when loaded was
// interrupted and is shown as cancelled. A run on Slurm goes on without the window: its cell stays
// running, and the command that made it re-attaches to its job folder (commands/index.ts).
import * as vscode from 'vscode';
import type { LabCell } from '../../common/protocol/lab.js';

const KEY = 'unicode2.lab.cells';
/** oldest cells beyond this are dropped: workspaceState is not meant for unbounded data */
const MAX_CELLS = 60;

export class LabStore {
  private cells: LabCell[];
  private readonly changed = new vscode.EventEmitter<LabCell[]>();
  readonly onDidChange = this.changed.event;

  constructor(private readonly memento: vscode.Memento) {
    this.cells = (memento.get<LabCell[]>(KEY) ?? []).map((c) =>
      c.status === 'running' && !c.slurm ? { ...c, status: 'cancelled', error: 'interrupted: the window was reloaded', progress: undefined } : c,
    );
  }

  all(): LabCell[] {
    return this.cells;
  }

  get(id: string): LabCell | undefined {
    return this.cells.find((c) => c.id === id);
  }

  add(cell: LabCell): void {
    this.cells = [cell, ...this.cells].slice(0, MAX_CELLS);
    this.save();
  }

  update(id: string, patch: Partial<LabCell>): void {
    this.patch(id, patch);
    this.save();
  }

  /** Live progress of a running cell: shown in the view, not written to workspaceState (a
   *  reload ends the run anyway, and a memento write per tick is wasted work). */
  progress(id: string, progress: LabCell['progress']): void {
    this.patch(id, { progress });
    this.changed.fire(this.cells);
  }

  private patch(id: string, patch: Partial<LabCell>): void {
    this.cells = this.cells.map((c) => (c.id === id ? { ...c, ...patch } : c));
  }

  remove(id: string): void {
    this.cells = this.cells.filter((c) => c.id !== id);
    this.save();
  }

  private save(): void {
    void this.memento.update(KEY, this.cells);
    this.changed.fire(this.cells);
  }

  dispose(): void {
    this.changed.dispose();
  }
}

// The Codebooks view (in the Lab's activity-bar container): the workspace's codebooks side by
// side, the active one marked, each with what it is (K, d, encoder, date) and its lineage from the
// Lab: the folder it was built from, and the token sets, decodes, generations and refines made
// with it. A click on a codebook makes it active and opens it; a click on a file opens that file.
import * as vscode from 'vscode';
import * as path from 'node:path';
import type { LabCell } from '../../common/protocol/lab.js';
import type { Studio } from '../state/studio.js';
import { workspaceDataDir } from '../state/config.js';
import { errorText } from '../state/errors.js';
import { CODEBOOKS_FOLDER, listCodebookFiles } from '../state/codebook-names.js';

export const CODEBOOKS_VIEW_ID = 'unicode2.codebooks';

type Node = { kind: 'codebook'; file: string } | { kind: 'made'; cell: LabCell; codebook: string };

/** What a cell made with a codebook reads as, under it. */
const MADE: Partial<Record<LabCell['kind'], { icon: string; verb: string }>> = {
  tokenize: { icon: 'symbol-array', verb: 'tokens' },
  decode: { icon: 'file-media', verb: 'decoded' },
  generate: { icon: 'sparkle', verb: 'generated' },
  refine: { icon: 'wand', verb: 'refined' },
  fit: { icon: 'graph-line', verb: 'prior' },
};

export class CodebooksView implements vscode.TreeDataProvider<Node>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly subscriptions: vscode.Disposable[];

  constructor(private readonly studio: Studio) {
    const refresh = () => this.changed.fire();
    const dataDir = workspaceDataDir();
    const watcher = dataDir ? vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(dataDir, `${CODEBOOKS_FOLDER}/*.safetensors`)) : null;
    this.subscriptions = [
      studio.onDidChangeActiveCodebook(refresh), studio.lab.onDidChange(refresh), this.changed,
      ...(watcher ? [watcher, watcher.onDidCreate(refresh), watcher.onDidDelete(refresh)] : []),
    ];
  }

  async getChildren(node?: Node): Promise<Node[]> {
    if (!node) {
      const dataDir = workspaceDataDir();
      const files = dataDir ? await listCodebookFiles(dataDir) : [];
      const active = this.studio.codebookPath();
      if (active && !files.includes(active)) files.push(active);
      return files.map((file) => ({ kind: 'codebook', file }));
    }
    if (node.kind !== 'codebook') return [];
    // newest first, as the Lab lists them; a cell that is still running shows once it is done
    return this.studio.lab.all()
      .filter((c) => c.status === 'done' && MADE[c.kind] && c.inputs.codebook === node.file)
      .map((cell) => ({ kind: 'made', cell, codebook: node.file }));
  }

  async getTreeItem(node: Node): Promise<vscode.TreeItem> {
    return node.kind === 'codebook' ? this.codebookItem(node.file) : madeItem(node.cell);
  }

  private async codebookItem(file: string): Promise<vscode.TreeItem> {
    const active = file === this.studio.codebookPath();
    const made = this.studio.lab.all().filter((c) => c.status === 'done' && MADE[c.kind] && c.inputs.codebook === file).length;
    const label = (await this.studio.codebookLabels([file])).get(file)!;
    const item = new vscode.TreeItem(label, made ? vscode.TreeItemCollapsibleState.Collapsed : vscode.TreeItemCollapsibleState.None);
    item.id = `codebook:${file}`;
    item.iconPath = new vscode.ThemeIcon(active ? 'pass-filled' : 'database');
    item.contextValue = 'codebook';
    item.command = { command: 'unicode2.openCodebook', title: 'Open Codebook', arguments: [vscode.Uri.file(file)] };
    const built = this.studio.lab.all().find((c) => c.kind === 'build' && c.inputs.output === file);
    try {
      const cb = await this.studio.codebook(file);
      const from = built?.inputs.folder ? ` · from ${path.basename(built.inputs.folder)}/` : '';
      item.description = `${active ? 'active · ' : ''}K = ${cb.frozen.rows} · ${cb.meta.encoder.id}${from}`;
      item.tooltip = new vscode.MarkdownString([
        `**${label}**${active ? ' (active)' : ''}`, '',
        `K = ${cb.frozen.rows}, d = ${cb.frozen.cols}, encoder \`${cb.meta.encoder.id}\`, λ = ${cb.meta.lambda}, ${cb.meta.iterations} iterations, atlas ${cb.meta.atlas}`, '',
        `built ${cb.meta.createdAt.slice(0, 16).replace('T', ' ')}${built?.inputs.folder ? ` from \`${built.inputs.folder}\`` : ''}`, '',
        `\`${file}\``,
      ].join('\n'));
    } catch (err) {
      item.description = `cannot be read: ${errorText(err)}`;
      item.tooltip = file;
    }
    return item;
  }

  dispose(): void {
    for (const s of this.subscriptions) s.dispose();
  }
}

/** A run made with a codebook: what it made, from what, when; a click opens its first file. */
function madeItem(cell: LabCell): vscode.TreeItem {
  const { icon, verb } = MADE[cell.kind]!;
  const file = cell.files?.[0];
  const from = cell.inputs.folder ?? cell.inputs.image ?? cell.inputs.tokens ?? cell.inputs.prior;
  // a run without a file (a generation) by its title, less its kind ("Generate: chelsea.png" -> "chelsea.png")
  const item = new vscode.TreeItem(`${verb}: ${file ? path.basename(file) : cell.title.replace(/^[^:]+:\s*/, '')}`, vscode.TreeItemCollapsibleState.None);
  item.id = `made:${cell.id}`;
  item.iconPath = new vscode.ThemeIcon(icon);
  item.description = `${from ? `from ${path.basename(from)} · ` : ''}${cell.startedAt.slice(0, 16).replace('T', ' ')}`;
  item.tooltip = [cell.title, ...(cell.files ?? [])].join('\n');
  // a prior file has no viewer of its own: it is opened from the Generation panel
  if (file && cell.kind !== 'fit') item.command = { command: 'vscode.open', title: 'Open', arguments: [vscode.Uri.file(file)] };
  return item;
}

// "UniCode²: Choose Active Codebook…" (also a click on the codebook's status bar item): the
// workspace's codebooks by name (with the folder where two share one), with K, d, encoder and the build's corpus, the active one marked;
// the one picked becomes active (remembered with the workspace) and opens in its editor.
import * as vscode from 'vscode';
import * as path from 'node:path';
import type { Studio } from '../state/studio.js';
import { workspaceDataDir } from '../state/config.js';
import { errorText } from '../state/errors.js';
import { listCodebookFiles } from '../state/codebook-names.js';
import * as openCodebook from './open-codebook.js';

export const id = 'unicode2.chooseCodebook';

type Item = vscode.QuickPickItem & { file?: string };

export async function prompt(studio: Studio): Promise<void> {
  const active = studio.codebookPath();
  const dataDir = workspaceDataDir();
  const files = dataDir ? await listCodebookFiles(dataDir) : [];
  if (active && !files.includes(active)) files.push(active);
  const labels = await studio.codebookLabels(files);
  const items: Item[] = await Promise.all(files.map((file) => codebookItem(studio, file, labels.get(file)!, file === active)));
  items.push({ label: '$(folder-opened) Open a codebook file…' });
  const picked = await vscode.window.showQuickPick(items, {
    title: 'UniCode²: active codebook',
    placeHolder: files.length ? 'The codebook that tokenize, decode and generate use' : 'No codebook in this workspace yet: build one or open a file',
    matchOnDescription: true,
  });
  if (!picked) return;
  if (!picked.file) return openCodebook.prompt(studio);
  return openCodebook.prompt(studio, picked.file);
}

/** A codebook as the list shows it: its name, what it is, and where it is. */
async function codebookItem(studio: Studio, file: string, name: string, active: boolean): Promise<Item> {
  const label = `${active ? '$(check) ' : ''}${name}`;
  try {
    const cb = await studio.codebook(file);
    // the corpus is known from the Lab cell of its build (the file records only the corpus' fingerprint)
    const corpus = studio.lab.all().find((c) => c.kind === 'build' && c.inputs.output === file)?.inputs.folder;
    return {
      label, file,
      description: `K = ${cb.frozen.rows}, d = ${cb.frozen.cols} · ${cb.meta.encoder.id}${corpus ? ` · from ${path.basename(corpus)}/` : ''} · ${cb.meta.createdAt.slice(0, 10)}`,
      detail: file,
    };
  } catch (err) {
    return { label, file, description: `cannot be read: ${errorText(err)}`, detail: file };
  }
}

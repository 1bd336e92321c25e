// The token set editor: a token data set (`<name>.tokens.npy` with its index, or a tokens
// `.json`) opens here, as a list of its images, the grid of the selected one over its photo, and
// the set's code usage. K is known when the active codebook is the one the set was made with.
import * as vscode from 'vscode';
import { readTokenGrids, type TokenGrid } from '../engine/index.js';
import { tokenSetProtocol } from '../../common/protocol/tokens.js';
import type { Studio } from '../state/studio.js';
import { connectWebview, readonlyEditor, watchFile } from './webview-host.js';
import { tokenSetGrid, tokenSetView, type KnownCodebook } from './token-set.js';

export const TOKEN_SET_VIEW_TYPE = 'unicode2.tokenSet';

export function tokenSetEditor(studio: Studio): vscode.CustomReadonlyEditorProvider {
  return readonlyEditor(studio.extensionUri, (panel, uri) => {
    const file = uri.fsPath;
    let grids: Promise<TokenGrid[]> | null = null;
    const read = (): Promise<TokenGrid[]> => (grids ??= readTokenGrids(file));
    const { endpoint, disposable } = connectWebview(panel.webview, studio.extensionUri, 'tokens', tokenSetProtocol, panel.title, studio.log, {
      init: async () => {
        const all = await read();
        return tokenSetView(file, all, await matchingCodebook(studio, all[0]?.codebook));
      },
      grid: async ({ index }) => tokenSetGrid(file, await read(), index, (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath)),
    });
    const watcher = watchFile(uri, () => {
      grids = null;
      endpoint.notify('fileChanged', {});
    });
    panel.onDidDispose(() => {
      disposable.dispose();
      watcher.dispose();
    });
  });
}

/** The active codebook, when the set was tokenized with it (same fingerprint). */
async function matchingCodebook(studio: Studio, fingerprint: string | undefined): Promise<KnownCodebook | null> {
  const file = studio.codebookPath();
  if (!file || !fingerprint) return null;
  const cb = await studio.codebook(file).catch(() => null);
  return cb?.fingerprint === fingerprint ? { file, k: cb.frozen.rows } : null;
}

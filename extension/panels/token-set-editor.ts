// The token set editor: a token data set (`<name>.tokens.npy` with its index, or a tokens
// `.json`) opens here, as a list of its images, the grid of the selected one over its photo, and
// the set's code usage. K is known when the codebook the set was made with is at hand (active, or
// among the workspace's codebooks).
import * as vscode from 'vscode';
import { readTokenGrids, type TokenGrid } from '../engine/index.js';
import { tokenSetProtocol } from '../../common/protocol/tokens.js';
import type { Studio } from '../state/studio.js';
import { workspaceDataDir } from '../state/config.js';
import { listCodebookFiles } from '../state/codebook-names.js';
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

/** The codebook the set was tokenized with (same fingerprint), when it is at hand: the active
 *  one, one read in this window, or one of the workspace's codebooks. */
async function matchingCodebook(studio: Studio, fingerprint: string | undefined): Promise<KnownCodebook | null> {
  if (!fingerprint) return null;
  const dataDir = workspaceDataDir();
  const candidates = [studio.codebookPath(), studio.codebookFileOf(fingerprint), ...(dataDir ? await listCodebookFiles(dataDir) : [])];
  for (const file of new Set(candidates)) {
    if (!file) continue;
    const cb = await studio.codebook(file).catch(() => null);
    if (cb?.fingerprint === fingerprint) return { file, k: cb.frozen.rows };
  }
  return null;
}

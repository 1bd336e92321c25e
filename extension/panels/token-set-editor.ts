// The token set editor: a token data set (`<name>.tokens.npy` with its index, or a tokens
// `.json`) opens here, as a list of its images, the grid of the selected one over its photo, and
// the set's code usage; so does a sharded tokenize output's manifest.json ("Open With…": the name
// is too common to claim by default), as one set. K is known when the codebook the set was made
// with is at hand (active, or among the workspace's codebooks).
import * as vscode from 'vscode';
import { tokenSetProtocol } from '../../common/protocol/tokens.js';
import type { Studio } from '../state/studio.js';
import { workspaceDataDir } from '../state/config.js';
import { listCodebookFiles } from '../state/codebook-names.js';
import { connectWebview, readonlyEditor, watchFile } from './webview-host.js';
import { openTextEncoder, type Precision, type TextEncoder } from '../engine/index.js';
import { withDownloadNotification } from '../state/downloads.js';
import { TokenSetSearcher } from './token-set-search.js';
import { readTokenSet, tokenSetGrid, tokenSetView, type KnownCodebook, type TokenSet } from './token-set.js';

export const TOKEN_SET_VIEW_TYPE = 'unicode2.tokenSet';
/** The same editor for `manifest.json` files, offered rather than taken by default. */
export const TOKEN_SET_MANIFEST_VIEW_TYPE = 'unicode2.tokenSetManifest';

export function tokenSetEditor(studio: Studio): vscode.CustomReadonlyEditorProvider {
  return readonlyEditor(studio.extensionUri, (panel, uri) => {
    const file = uri.fsPath;
    let set: Promise<TokenSet> | null = null;
    const read = (): Promise<TokenSet> => (set ??= readTokenSet(file));
    const roots = () => (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath);
    const searcher = new TokenSetSearcher(file, (encoder, precision) => openTextTower(studio, encoder, precision, file));
    const { endpoint, disposable } = connectWebview(panel.webview, studio.extensionUri, 'tokens', tokenSetProtocol, panel.title, studio.log, {
      init: async () => {
        const { grids, shards } = await read();
        return { ...tokenSetView(file, grids, await matchingCodebook(studio, grids[0]?.codebook), shards), ...(await searcher.view()) };
      },
      searchText: async ({ query }) => {
        const { grids, shards } = await read();
        return searcher.search(query, grids, (index) => tokenSetGrid(file, grids, index, roots(), shards));
      },
      grid: async ({ index }) => {
        const { grids, shards } = await read();
        return tokenSetGrid(file, grids, index, (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath), shards);
      },
    });
    const watcher = watchFile(uri, () => {
      set = null;
      searcher.reset();
      endpoint.notify('fileChanged', {});
    });
    panel.onDidDispose(() => {
      disposable.dispose();
      watcher.dispose();
      void searcher.dispose();
    });
  });
}

/** The text tower of the encoder a set's pooled embeddings came from, on this window's device: an
 *  ONNX model the set names, so in Restricted Mode it loads (or downloads) only with consent. */
async function openTextTower(studio: Studio, encoder: string, precision: Precision, file: string): Promise<TextEncoder> {
  await studio.trust.allowCodebookModel(encoder, file);
  const backend = await studio.backend.get();
  return withDownloadNotification(`UniCode²: downloading the text tower of ${encoder}`, (download) => openTextEncoder(encoder, backend, { precision, download }));
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

// Host side of the token-grid panel: the image as the encoder saw it, its token grid, and the
// atlas reconstruction, re-decoded when the user edits the grid.
import * as vscode from 'vscode';
import * as path from 'node:path';
import { decodeTokens, tokenizeImages, UserError, type Codebook, type TokenGrid } from '../engine/index.js';
import { tokenGridProtocol, type TokenGridRestore, type TokenGridView } from '../../common/protocol/tokengrid.js';
import type { Studio } from '../state/studio.js';
import { connectWebview, webviewOptions } from './webviewHost.js';
import { pngDataUri } from './images.js';
import { GenerationPanel } from './generationPanel.js';

export const TOKEN_GRID_VIEW_TYPE = 'unicode2.tokenGrid';

export class TokenGridPanel {
  static show(studio: Studio, codebook: string, grid: TokenGrid): void {
    const panel = vscode.window.createWebviewPanel(TOKEN_GRID_VIEW_TYPE, `Tokens: ${path.basename(grid.image)}`, vscode.ViewColumn.Active, {
      ...webviewOptions(studio.extensionUri),
      retainContextWhenHidden: true,
    });
    new TokenGridPanel(studio, panel, codebook, Promise.resolve(grid));
  }

  /** After a reload the panel comes back by tokenizing its image again (fast, and it picks up a rebuilt codebook). */
  static serializer(studio: Studio): vscode.WebviewPanelSerializer<{ restore?: TokenGridRestore }> {
    return {
      async deserializeWebviewPanel(panel, state) {
        const restore = state?.restore;
        if (!restore) return panel.dispose();
        panel.webview.options = webviewOptions(studio.extensionUri);
        const grid = studio.codebook(restore.codebook).then(async (cb) => {
          const encoder = await studio.encoderFor(cb);
          const { results } = await tokenizeImages(cb, encoder, [restore.image], await studio.backend.get(), { withDistances: true });
          if (!results[0]) throw new UserError(`${restore.image} can no longer be read`);
          return results[0];
        });
        new TokenGridPanel(studio, panel, restore.codebook, grid);
      },
    };
  }

  private constructor(
    private readonly studio: Studio,
    panel: vscode.WebviewPanel,
    private readonly codebookFile: string,
    private readonly grid: Promise<TokenGrid>,
  ) {
    const { disposable } = connectWebview(panel.webview, studio.extensionUri, 'tokengrid', tokenGridProtocol, panel.title, studio.log, {
      init: () => this.view(),
      decode: async ({ ids }) => {
        const [cb, grid] = await Promise.all([this.studio.codebook(this.codebookFile), this.grid]);
        this.checkIds(ids, grid, cb);
        return { reconstruction: await this.reconstruct(cb, ids, grid.grid) };
      },
      openInGeneration: async ({ ids }) => {
        const [cb, grid] = await Promise.all([this.studio.codebook(this.codebookFile), this.grid]);
        this.checkIds(ids, grid, cb);
        this.studio.editedGrid = { ...grid, ids, distances: undefined };
        GenerationPanel.show(this.studio);
        return null;
      },
    });
    panel.onDidDispose(() => disposable.dispose());
  }

  private async view(): Promise<TokenGridView> {
    const [cb, grid] = await Promise.all([this.studio.codebook(this.codebookFile), this.grid]);
    const encoder = await this.studio.encoderFor(cb);
    return {
      imageLabel: path.basename(grid.image), image: await pngDataUri(await encoder.load(grid.image)), grid: grid.grid, ids: grid.ids,
      distances: grid.distances, reconstruction: await this.reconstruct(cb, grid.ids, grid.grid), k: cb.frozen.rows,
      codebook: cb.fingerprint, restore: { codebook: this.codebookFile, image: grid.image },
    };
  }

  private checkIds(ids: number[], grid: TokenGrid, cb: Codebook): void {
    if (ids.length !== grid.ids.length || ids.some((id) => id >= cb.frozen.rows)) {
      throw new UserError(`the edited grid must hold ${grid.ids.length} ids below K = ${cb.frozen.rows}`);
    }
  }

  /** '' when the codebook has no pixel atlas yet (the webview then shows no reconstruction). */
  private async reconstruct(cb: Codebook, ids: number[], grid: [number, number]): Promise<string> {
    if (cb.meta.atlas === 'none') return '';
    const img = await decodeTokens(cb, Int32Array.from(ids), grid, await this.studio.backend.get());
    return pngDataUri(img);
  }
}

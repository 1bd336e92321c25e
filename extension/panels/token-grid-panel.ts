// Host side of the token-grid panel: the photo at its own aspect ratio, its token grid, and the
// atlas reconstruction with its PSNR against the encoder's input, re-decoded when the user edits
// the grid.
import * as vscode from 'vscode';
import * as path from 'node:path';
import { tokenizeImages, UserError, type Codebook, type TokenGrid } from '../engine/index.js';
import { tokenGridProtocol, tokenGridState, type Reconstruction, type TokenGridView } from '../../common/protocol/tokengrid.js';
import type { Studio } from '../state/studio.js';
import { connectWebview, webviewOptions } from './webview-host.js';
import { photoDataUri, reconstruct, reconstructionBounds } from './images.js';
import { GenerationPanel } from './generation-panel.js';
import { readRestoreState, requireFileOfKind } from './restore-state.js';

export const TOKEN_GRID_VIEW_TYPE = 'unicode2.tokenGrid';

export class TokenGridPanel {
  static show(studio: Studio, codebook: string, grid: TokenGrid): void {
    // no retainContextWhenHidden: the webview keeps its edits in its state and asks again when shown
    const panel = vscode.window.createWebviewPanel(TOKEN_GRID_VIEW_TYPE, `Tokens: ${path.basename(grid.image)}`, vscode.ViewColumn.Active, webviewOptions(studio.extensionUri));
    new TokenGridPanel(studio, panel, codebook, Promise.resolve(grid));
  }

  /** After a reload the panel comes back by tokenizing its image again (fast, and it picks up a
   *  rebuilt codebook), once the saved state and the files it names have been checked. */
  static serializer(studio: Studio): vscode.WebviewPanelSerializer {
    return {
      async deserializeWebviewPanel(panel, state: unknown) {
        let restore;
        try {
          ({ restore } = readRestoreState(tokenGridState, state));
          await requireFileOfKind(restore.codebook, 'codebook');
          await requireFileOfKind(restore.image, 'image');
        } catch (err) {
          panel.dispose();
          const reason = err instanceof UserError ? err.message : String(err);
          studio.log.appendLine(`[tokenGrid] not restored: ${reason}`);
          void vscode.window.showWarningMessage(`UniCode²: the Token Grid panel "${panel.title}" was not reopened: ${reason}`);
          return;
        }
        const { codebook, image } = restore;
        panel.webview.options = webviewOptions(studio.extensionUri);
        const grid = studio.codebook(codebook).then(async (cb) => {
          const encoder = await studio.encoderFor(cb);
          const { results } = await tokenizeImages(cb, encoder, [image], await studio.backend.get(), { withDistances: true });
          if (!results[0]) throw new UserError(`${image} can no longer be read`);
          return results[0];
        });
        new TokenGridPanel(studio, panel, codebook, grid);
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
        const reconstruction = await this.reconstruct(cb, ids, grid);
        if (!reconstruction) throw new UserError('this codebook has no pixel atlas to decode with: refine it first');
        return reconstruction;
      },
      openInGeneration: async ({ ids }) => {
        const [cb, grid] = await Promise.all([this.studio.codebook(this.codebookFile), this.grid]);
        this.checkIds(ids, grid, cb);
        GenerationPanel.show(this.studio, { ...grid, ids, distances: undefined });
        return null;
      },
    });
    panel.onDidDispose(() => disposable.dispose());
  }

  private async view(): Promise<TokenGridView> {
    const [cb, grid] = await Promise.all([this.studio.codebook(this.codebookFile), this.grid]);
    const encoder = await this.studio.encoderFor(cb);
    return {
      imageLabel: path.basename(grid.image),
      image: await photoDataUri(grid.image, grid.grid),
      grid: grid.grid,
      ids: grid.ids,
      distances: grid.distances,
      reconstruction: await this.reconstruct(cb, grid.ids, grid),
      bounds: reconstructionBounds(cb, encoder, grid.grid),
      codebook: cb.fingerprint,
      restore: { codebook: this.codebookFile, image: grid.image },
    };
  }

  private checkIds(ids: number[], grid: TokenGrid, cb: Codebook): void {
    if (ids.length !== grid.ids.length || ids.some((id) => id >= cb.frozen.rows)) {
      throw new UserError(`the edited grid must hold ${grid.ids.length} ids below K = ${cb.frozen.rows}`);
    }
  }

  private async reconstruct(cb: Codebook, ids: number[], grid: TokenGrid): Promise<Reconstruction | null> {
    return reconstruct(cb, await this.studio.encoderFor(cb), await this.studio.backend.get(), grid.image, ids, grid.grid);
  }
}

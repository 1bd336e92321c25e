// Host side of the generation panel: token sources (tokenized images of this session, the grid
// edited in a token-grid panel, tokens files), the atlas decoder with an output size, and
// "Save as PNG" through a save dialog and an atomic write.
import * as vscode from 'vscode';
import * as path from 'node:path';
import { checkTokensMatchCodebook, decodeTokens, writePng, UserError, type RgbImage, type TokenGrid } from '../engine/index.js';
import { generationProtocol, type GenerationResult, type GenerationSource } from '../../common/protocol/generation.js';
import type { HostEndpoint } from '../../common/protocol/shared.js';
import type { Studio } from '../state/studio.js';
import { connectWebview, webviewOptions } from './webviewHost.js';
import { pngDataUri, upscale } from './images.js';

export const GENERATION_VIEW_TYPE = 'unicode2.generation';
const EDITED = 'edited';

export class GenerationPanel {
  private static current: GenerationPanel | null = null;
  private readonly results: { result: GenerationResult; image: RgbImage }[] = [];
  private readonly endpoint: HostEndpoint<typeof generationProtocol>;

  static show(studio: Studio): void {
    if (GenerationPanel.current) {
      GenerationPanel.current.panel.reveal();
      GenerationPanel.current.pushSources();
      return;
    }
    const panel = vscode.window.createWebviewPanel(GENERATION_VIEW_TYPE, 'Generation', vscode.ViewColumn.Active, {
      ...webviewOptions(studio.extensionUri),
      retainContextWhenHidden: true,
    });
    new GenerationPanel(studio, panel);
  }

  static serializer(studio: Studio): vscode.WebviewPanelSerializer {
    return {
      async deserializeWebviewPanel(panel) {
        panel.webview.options = webviewOptions(studio.extensionUri);
        new GenerationPanel(studio, panel);
      },
    };
  }

  private constructor(
    private readonly studio: Studio,
    readonly panel: vscode.WebviewPanel,
  ) {
    GenerationPanel.current = this;
    const { endpoint, disposable } = connectWebview(panel.webview, studio.extensionUri, 'generation', generationProtocol, panel.title, studio.log, {
      init: () => ({
        sources: this.sources().map((s) => s.source),
        codebook: this.studio.codebookPath() ? path.basename(this.studio.codebookPath()!) : '',
        results: this.results.map((x) => x.result),
      }),
      addTokensFile: async () => {
        await this.studio.pickTokensFile();
        return this.sources().map((s) => s.source);
      },
      generate: ({ source, upscale }) => this.generate(source, upscale),
      savePng: ({ result }) => this.save(result),
    });
    this.endpoint = endpoint;
    const onSets = studio.onDidChangeTokenSets(() => this.pushSources());
    panel.onDidDispose(() => {
      GenerationPanel.current = null;
      disposable.dispose();
      onSets.dispose();
    });
  }

  private pushSources(): void {
    this.endpoint.notify('sources', { sources: this.sources().map((s) => s.source) });
  }

  private sources(): { source: GenerationSource; grid: TokenGrid }[] {
    const out: { source: GenerationSource; grid: TokenGrid }[] = [];
    const edited = this.studio.editedGrid;
    if (edited) out.push({ source: { id: EDITED, label: `Edited grid · ${path.basename(edited.image)}`, grid: edited.grid }, grid: edited });
    for (const set of this.studio.allTokenSets()) {
      set.grids.forEach((g, i) => {
        const label = set.grids.length === 1 ? path.basename(g.image) : `${set.label} · ${path.basename(g.image)}`;
        out.push({ source: { id: `${set.id}#${i}`, label, grid: g.grid }, grid: g });
      });
    }
    return out;
  }

  private async generate(sourceId: string, factor: number): Promise<GenerationResult> {
    const source = this.sources().find((s) => s.source.id === sourceId);
    if (!source) throw new UserError('that token source is no longer available');
    if (![1, 2, 4].includes(factor)) throw new UserError(`output size ${factor}x is not offered (1x, 2x or 4x)`);
    const file = this.studio.requireCodebookPath();
    const cb = await this.studio.codebook(file);
    checkTokensMatchCodebook(cb, [source.grid], source.source.label);
    this.endpoint.notify('progress', { done: 0, total: 1, message: 'Decoding through the atlas…' });
    const image = upscale(await decodeTokens(cb, Int32Array.from(source.grid.ids), source.grid.grid, await this.studio.backend.get()), factor);
    this.endpoint.notify('progress', { done: 1, total: 1 });
    const result: GenerationResult = {
      id: `result-${this.results.length + 1}`, label: source.source.label, image: await pngDataUri(image), width: image.width, height: image.height,
    };
    this.results.push({ result, image });
    return result;
  }

  private async save(id: string): Promise<string | null> {
    const found = this.results.find((x) => x.result.id === id);
    if (!found) throw new UserError('that result is gone (the panel was reloaded): generate it again');
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
    const suggested = `${path.parse(found.result.label.split(' · ').pop() ?? 'generated').name}-generated.png`;
    const target = await vscode.window.showSaveDialog({
      defaultUri: folder ? vscode.Uri.joinPath(folder, suggested) : undefined,
      filters: { 'PNG image': ['png'] },
      saveLabel: 'Save PNG',
    });
    if (!target) return null;
    await writePng(target.fsPath, found.image);
    this.studio.log.appendLine(`[generation] saved ${target.fsPath}`);
    return target.fsPath;
  }
}

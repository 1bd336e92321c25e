// UniCode² Studio: activation wires commands, panels (with their serializers, so they come back
// after a reload) and the Lab view. All work lives in commands/, panels/ and engine/.
import * as vscode from 'vscode';
import { Studio } from './state/studio.js';
import { registerCommands } from './commands/index.js';
import { CodebookPanel, CODEBOOK_VIEW_TYPE } from './panels/codebookPanel.js';
import { TokenGridPanel, TOKEN_GRID_VIEW_TYPE } from './panels/tokenGridPanel.js';
import { GenerationPanel, GENERATION_VIEW_TYPE } from './panels/generationPanel.js';
import { LabViewProvider, LAB_VIEW_ID } from './panels/labView.js';

let studio: Studio | null = null;

export function activate(context: vscode.ExtensionContext): void {
  studio = new Studio(context);
  const { disposables, lab } = registerCommands(studio);
  context.subscriptions.push(
    ...disposables,
    vscode.window.registerWebviewPanelSerializer(CODEBOOK_VIEW_TYPE, CodebookPanel.serializer(studio)),
    vscode.window.registerWebviewPanelSerializer(TOKEN_GRID_VIEW_TYPE, TokenGridPanel.serializer(studio)),
    vscode.window.registerWebviewPanelSerializer(GENERATION_VIEW_TYPE, GenerationPanel.serializer(studio)),
    vscode.window.registerWebviewViewProvider(LAB_VIEW_ID, new LabViewProvider(studio, lab), { webviewOptions: { retainContextWhenHidden: true } }),
  );
}

export async function deactivate(): Promise<void> {
  await studio?.dispose();
  studio = null;
}

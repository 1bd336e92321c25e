// UniCode² Studio: activation wires commands, panels (with their serializers, so they come back
// after a reload), the Lab view and the Codebooks view. All work lives in commands/, panels/ and engine/.
import * as vscode from 'vscode';
import { Studio } from './state/studio.js';
import { registerCommands } from './commands/index.js';
import { codebookEditor, CODEBOOK_VIEW_TYPE } from './panels/codebook-panel.js';
import { tokenSetEditor, TOKEN_SET_MANIFEST_VIEW_TYPE, TOKEN_SET_VIEW_TYPE } from './panels/token-set-editor.js';
import { TokenGridPanel, TOKEN_GRID_VIEW_TYPE } from './panels/token-grid-panel.js';
import { GenerationPanel, GENERATION_VIEW_TYPE } from './panels/generation-panel.js';
import { LabViewProvider, LAB_VIEW_ID } from './panels/lab-view.js';
import { CodebooksView, CODEBOOKS_VIEW_ID } from './panels/codebooks-view.js';

let studio: Studio | null = null;

export function activate(context: vscode.ExtensionContext): void {
  studio = new Studio(context);
  const { disposables, lab, tokenizeFolderWith } = registerCommands(studio);
  context.subscriptions.push(
    ...disposables,
    vscode.window.registerCustomEditorProvider(CODEBOOK_VIEW_TYPE, codebookEditor(studio, tokenizeFolderWith)),
    vscode.window.registerCustomEditorProvider(TOKEN_SET_VIEW_TYPE, tokenSetEditor(studio)),
    vscode.window.registerCustomEditorProvider(TOKEN_SET_MANIFEST_VIEW_TYPE, tokenSetEditor(studio)),
    vscode.window.registerWebviewPanelSerializer(TOKEN_GRID_VIEW_TYPE, TokenGridPanel.serializer(studio)),
    vscode.window.registerWebviewPanelSerializer(GENERATION_VIEW_TYPE, GenerationPanel.serializer(studio)),
    // no retainContextWhenHidden: the view asks for the cells again when it is shown
    vscode.window.registerWebviewViewProvider(LAB_VIEW_ID, new LabViewProvider(studio, lab)),
  );
  const codebooks = new CodebooksView(studio);
  context.subscriptions.push(codebooks, vscode.window.registerTreeDataProvider(CODEBOOKS_VIEW_ID, codebooks));
}

export async function deactivate(): Promise<void> {
  await studio?.dispose();
  studio = null;
}

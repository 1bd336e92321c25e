// Workspace trust. The extension supports untrusted workspaces in a limited way
// (package.json capabilities.untrustedWorkspaces): a folder someone else made must not get to run
// a model of its choosing just by being opened and used.
//
// - The settings that name files to load (unicode2.codebook, unicode2.encoder) are
//   restrictedConfigurations: in Restricted Mode VS Code itself applies only the user's values of
//   them (its Workspace Trust editor lists the workspace's as not applied). It drops the workspace's
//   values before extensions can see them, so there is nothing for the extension to check there.
// - A codebook records the ONNX model it was built with, and a codebook file can come with the
//   workspace: in Restricted Mode that model is loaded (and, named by a Hugging Face id the cache
//   lacks, downloaded) only after the user agrees (a modal), once per model and window. Models the
//   user picks in a dialog are their own choice and are not asked about.
import * as vscode from 'vscode';
import * as path from 'node:path';
import { UserError } from '../../common/errors.js';

const MANAGE_TRUST = 'Manage Workspace Trust';

export class TrustGate {
  private readonly modelsAllowed = new Set<string>();

  constructor(private readonly log: vscode.OutputChannel) {}

  /**
   * Resolves when the ONNX model named inside `codebook` may be loaded: the workspace is trusted,
   * or the user agreed. Otherwise throws a UserError that says how to go on.
   */
  async allowCodebookModel(model: string, codebook: string): Promise<void> {
    if (vscode.workspace.isTrusted || this.modelsAllowed.has(model)) return;
    const load = 'Load the Model';
    const choice = await vscode.window.showWarningMessage(
      `UniCode²: load the ONNX model named by ${path.basename(codebook)}?`,
      {
        modal: true,
        detail: `The codebook ${codebook} was built with the model ${model}, and this workspace is in Restricted Mode. An ONNX model is a program that onnxruntime runs on this machine (one named by its Hugging Face id and not in the local cache is downloaded first): load it only if you trust where the codebook and the model come from.`,
      },
      load,
      MANAGE_TRUST,
    );
    if (choice === load) {
      this.modelsAllowed.add(model);
      this.log.appendLine(`[trust] loading ${model} (named by ${codebook}) in Restricted Mode: allowed by the user`);
      return;
    }
    if (choice === MANAGE_TRUST) void vscode.commands.executeCommand('workbench.trust.manage');
    throw new UserError(
      `the ONNX model ${model} was not loaded: this workspace is in Restricted Mode; trust the workspace ("Workspaces: Manage Workspace Trust") or allow the model when asked`,
    );
  }
}

// How an error reads in VS Code: a UserError as its fact with the remedy in VS Code's terms
// (commands, settings: common/errors.ts), anything else as an unexpected error whose stack goes to
// the output channel.
import * as vscode from 'vscode';
import { UserError } from '../../common/errors.js';

/** The one line shown for an error (notification, Lab cell, status bar tooltip). */
export function errorText(err: unknown): string {
  if (err instanceof UserError) return err.text('vscode');
  return `unexpected error: ${err instanceof Error ? err.message : String(err)}`;
}

/** Shows `err` as an error notification; a bug's stack goes to the log. */
export function showError(err: unknown, log: vscode.OutputChannel): void {
  if (!(err instanceof UserError)) log.appendLine(`[error] ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  void vscode.window.showErrorMessage(`UniCode²: ${errorText(err)}`);
}

// Wiring shared by every webview: options (scripts on, resources limited to the extension and
// the user's workspace/files), the CSP page, and the protocol endpoint that validates requests
// from the webview and sends replies back.
import * as vscode from 'vscode';
import { Endpoint, type PanelName } from '../../common/protocol.js';
import { renderWebviewHtml } from './html.js';

export function webviewOptions(extensionUri: vscode.Uri, userRoots: vscode.Uri[] = []): vscode.WebviewOptions {
  const workspace = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri);
  return {
    enableScripts: true,
    localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist', 'webview'), vscode.Uri.joinPath(extensionUri, 'media'), ...workspace, ...userRoots],
  };
}

/** Fills a webview with the panel's page and connects it; `handle` answers its requests. */
export function connectWebview<TRequest, TOut>(
  webview: vscode.Webview,
  extensionUri: vscode.Uri,
  bundle: string,
  panel: PanelName,
  title: string,
  log: vscode.OutputChannel,
  handle: (request: TRequest) => Promise<unknown>,
): { endpoint: Endpoint<TOut, TRequest>; disposable: vscode.Disposable } {
  const asUri = (...parts: string[]): string => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, ...parts)).toString();
  webview.html = renderWebviewHtml({
    cspSource: webview.cspSource,
    title,
    script: asUri('dist', 'webview', `${bundle}.js`),
    stylesheet: asUri('media', 'styles', 'webview.css'),
    codicons: asUri('media', 'styles', 'codicons', 'codicon.css'),
  });
  const endpoint = new Endpoint<TOut, TRequest>({
    panel,
    side: 'host',
    post: (m) => void webview.postMessage(m),
    onMessage: (body) => handle(body).catch((err: Error) => {
      log.appendLine(`[${panel}] ${err.message}`);
      throw err;
    }),
    onReject: (reason) => log.appendLine(`[${panel}] rejected a malformed message from the webview: ${reason}`),
  });
  const disposable = webview.onDidReceiveMessage((m) => endpoint.receive(m));
  return { endpoint, disposable };
}

// Wiring shared by every webview: options (scripts on, resources limited to what the pages load:
// the bundles and the styles; images travel as data: URIs), the CSP page, and the protocol
// endpoint that checks every request from the webview against its descriptor and answers it.
import * as vscode from 'vscode';
import { HostEndpoint, type AnyProtocol, type Handlers } from '../../common/protocol/shared.js';
import { renderWebviewHtml } from './html.js';

export function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions {
  return {
    enableScripts: true,
    localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist', 'webview'), vscode.Uri.joinPath(extensionUri, 'media', 'styles')],
  };
}

/** Fills a webview with the panel's page and connects it; `handlers` answer its requests. */
export function connectWebview<P extends AnyProtocol>(
  webview: vscode.Webview,
  extensionUri: vscode.Uri,
  bundle: string,
  protocol: P,
  title: string,
  log: vscode.OutputChannel,
  handlers: Handlers<P>,
): { endpoint: HostEndpoint<P>; disposable: vscode.Disposable } {
  const asUri = (...parts: string[]): string => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, ...parts)).toString();
  webview.html = renderWebviewHtml({
    cspSource: webview.cspSource,
    title,
    script: asUri('dist', 'webview', `${bundle}.js`),
    stylesheet: asUri('media', 'styles', 'webview.css'),
    codicons: asUri('media', 'styles', 'codicons', 'codicon.css'),
  });
  const endpoint = new HostEndpoint(protocol, handlers, {
    post: (m) => void webview.postMessage(m),
    onReject: (reason) => log.appendLine(`[${protocol.name}] rejected a malformed message from the webview: ${reason}`),
    onError: (type, err) => log.appendLine(`[${protocol.name}] ${type}: ${err instanceof Error ? err.message : String(err)}`),
  });
  const disposable = webview.onDidReceiveMessage((m) => endpoint.receive(m));
  return { endpoint, disposable };
}

/** A read-only custom editor whose document is nothing but its file: `open` fills the editor's
 *  webview. VS Code reopens such editors after a reload from the file alone. */
export function readonlyEditor(extensionUri: vscode.Uri, open: (panel: vscode.WebviewPanel, uri: vscode.Uri) => void): vscode.CustomReadonlyEditorProvider {
  return {
    openCustomDocument: (uri) => ({ uri, dispose: () => undefined }),
    resolveCustomEditor: (document, panel) => {
      panel.webview.options = webviewOptions(extensionUri);
      open(panel, document.uri);
    },
  };
}

/** Calls `changed` whenever the file is rewritten (an atomic write shows up as a create). */
export function watchFile(uri: vscode.Uri, changed: () => void): vscode.Disposable {
  const watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.joinPath(uri, '..'), uri.path.split('/').pop()!));
  watcher.onDidChange(changed);
  watcher.onDidCreate(changed);
  return watcher;
}

// The HTML page every webview gets: strict Content-Security-Policy with a fresh nonce, the shared
// stylesheet and codicons from the extension, and the panel's bundle. Pure string building (no
// 'vscode' import), so the webview tests load exactly the page the extension serves.
import { randomBytes } from 'node:crypto';

export interface WebviewPage {
  /** webview.cspSource */
  cspSource: string;
  title: string;
  /** webview URIs (asWebviewUri) of the bundle and styles */
  script: string;
  stylesheet: string;
  codicons: string;
  nonce?: string;
}

export function newNonce(): string {
  return randomBytes(18).toString('base64url');
}

const escapeAttr = (s: string): string => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

export function renderWebviewHtml(page: WebviewPage): string {
  const nonce = page.nonce ?? newNonce();
  const csp = [
    "default-src 'none'",
    `img-src ${page.cspSource} data: blob:`,
    `style-src ${page.cspSource} 'nonce-${nonce}'`,
    `font-src ${page.cspSource}`,
    `script-src 'nonce-${nonce}'`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>${escapeAttr(page.title)}</title>
<link rel="stylesheet" id="vscode-codicon-stylesheet" href="${escapeAttr(page.codicons)}" nonce="${nonce}">
<link rel="stylesheet" href="${escapeAttr(page.stylesheet)}" nonce="${nonce}">
</head>
<body>
<script nonce="${nonce}" src="${escapeAttr(page.script)}"></script>
</body>
</html>`;
}

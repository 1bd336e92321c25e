// The webview side of a panel's connection: acquires the VS Code API once, checks what the host
// posts against the panel's protocol (malformed messages are dropped and reported to the console)
// and keeps the panel's view state with getState/setState so it survives reloads.
import { WebviewEndpoint, type AnyProtocol, type NotificationHandlers } from '../../common/protocol/shared.js';

interface VsCodeApi {
  postMessage(message: unknown): void;
  getState(): unknown;
  setState(state: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const api = acquireVsCodeApi();

export function connect<P extends AnyProtocol>(protocol: P, onNotification: NotificationHandlers<P>): WebviewEndpoint<P> {
  const endpoint = new WebviewEndpoint(protocol, onNotification, {
    post: (m) => api.postMessage(m),
    onReject: (reason) => console.warn(`UniCode²: dropped a malformed message: ${reason}`),
  });
  window.addEventListener('message', (e: MessageEvent) => endpoint.receive(e.data));
  return endpoint;
}

export function loadState<T extends object>(defaults: T): T {
  const saved = api.getState();
  return typeof saved === 'object' && saved !== null ? { ...defaults, ...(saved as Partial<T>) } : defaults;
}

export function saveState(state: object): void {
  api.setState(state);
}

// The webview side of a panel's connection: acquires the VS Code API once, validates what the
// host posts (malformed messages are dropped and reported back to the console) and keeps the
// panel's view state with getState/setState so it survives reloads.
import { Endpoint, type PanelName } from '../../common/protocol.js';

interface VsCodeApi {
  postMessage(message: unknown): void;
  getState(): unknown;
  setState(state: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const api = acquireVsCodeApi();

export function connect<TRequest, TNotification>(
  panel: PanelName,
  onNotification: (body: TNotification) => void,
): Endpoint<TRequest, TNotification> {
  const endpoint = new Endpoint<TRequest, TNotification>({
    panel,
    side: 'webview',
    post: (m) => api.postMessage(m),
    onMessage: onNotification,
    onReject: (reason) => console.warn(`UniCode²: dropped a malformed message: ${reason}`),
  });
  window.addEventListener('message', (e: MessageEvent) => void endpoint.receive(e.data));
  return endpoint;
}

export function loadState<T extends object>(defaults: T): T {
  const saved = api.getState();
  return typeof saved === 'object' && saved !== null ? { ...defaults, ...(saved as Partial<T>) } : defaults;
}

export function saveState(state: object): void {
  api.setState(state);
}

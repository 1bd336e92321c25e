// "UniCode²: Select Compute Device…": the unicode2.device setting, from a quick pick.
import * as vscode from 'vscode';
import { readSettings } from '../state/config.js';

export const id = 'unicode2.selectDevice';

export async function prompt(): Promise<void> {
  const current = readSettings().device;
  const items: (vscode.QuickPickItem & { value: string })[] = [
    { value: 'auto', label: 'auto', description: 'a hardware GPU when there is one, else the CPU' },
    { value: 'cpu', label: 'cpu', description: 'onnxruntime on the CPU' },
    { value: 'webgpu', label: 'webgpu', description: 'Dawn WebGPU compute (needs a GPU adapter)' },
  ].map((i) => ({ ...i, picked: i.value === current, label: i.value === current ? `$(check) ${i.label}` : i.label }));
  const choice = await vscode.window.showQuickPick(items, { title: 'UniCode²: compute device', placeHolder: `now: ${current}` });
  if (!choice || choice.value === current) return;
  // the device belongs to the machine, not the project: a user setting
  await vscode.workspace.getConfiguration('unicode2').update('device', choice.value, vscode.ConfigurationTarget.Global);
}

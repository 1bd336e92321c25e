// The compute backend of this window: opened lazily on first use with the device setting,
// re-opened when unicode2.device / unicode2.allowSoftwareGpu change, disposed on deactivate.
// A job holds the backend while it runs (hold()): a device change mid-job opens the new backend
// for later work, and the old one (and what was opened on it) is released only when no job runs.
// The status-bar item shows which device computes — also after a lost GPU hands the work to the
// CPU — and clicking it picks another.
import * as vscode from 'vscode';
import { openBackend, type ComputeBackend } from '../engine/index.js';
import { readSettings } from './config.js';
import { errorText } from './errors.js';

export class BackendManager implements vscode.Disposable {
  private current: Promise<ComputeBackend> | null = null;
  private jobsRunning = 0;
  /** releases of replaced backends, waiting for the running jobs to end */
  private readonly retired: (() => Promise<void>)[] = [];
  private readonly status = vscode.window.createStatusBarItem('unicode2.device', vscode.StatusBarAlignment.Right, 100);
  private readonly subscription: vscode.Disposable;
  private readonly resetEmitter = new vscode.EventEmitter<void>();
  /** fires when the device changed: whatever was opened on the old backend must be reopened */
  readonly onDidReset = this.resetEmitter.event;

  constructor(private readonly log: vscode.OutputChannel) {
    this.status.name = 'UniCode² compute device';
    this.status.command = 'unicode2.selectDevice';
    this.showStatus(readSettings().device, 'not opened yet: opens on first use');
    this.status.show();
    this.subscription = vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('unicode2.device') || e.affectsConfiguration('unicode2.allowSoftwareGpu')) void this.reset();
    });
  }

  get(): Promise<ComputeBackend> {
    if (!this.current) {
      const { device, allowSoftwareGpu } = readSettings();
      this.showStatus(device, 'opening…');
      const opening = openBackend(device, {
        allowSoftware: allowSoftwareGpu,
        onWarning: (m) => this.log.appendLine(`[device] ${m}`),
        onDeviceChange: (now) => {
          this.log.appendLine(`[device] now computing on ${now}`);
          if (this.current === opening) this.showStatus('cpu (GPU lost)', now, true);
        },
      });
      this.current = opening;
      opening.then(
        (b) => {
          this.log.appendLine(`[device] ${device} -> ${b.device}`);
          this.showStatus(b.name, b.device);
        },
        (err: Error) => {
          // a failed open is not cached: the next use tries again (e.g. after changing the setting)
          if (this.current === opening) this.current = null;
          this.showStatus(device, `failed: ${errorText(err)}`);
        },
      );
    }
    return this.current;
  }

  private showStatus(name: string, detail: string, warning = false): void {
    this.status.text = `$(${warning ? 'warning' : 'chip'}) UniCode²: ${name}`;
    this.status.tooltip = `UniCode² compute device: ${detail}\nClick to choose another.`;
  }

  /** Runs `work` with the backends it may use kept alive until it ends. */
  async hold<T>(work: () => Promise<T>): Promise<T> {
    this.jobsRunning++;
    try {
      return await work();
    } finally {
      if (--this.jobsRunning === 0) await this.releaseRetired();
    }
  }

  private async reset(): Promise<void> {
    const old = this.current;
    this.current = null;
    this.showStatus(readSettings().device, 'not opened yet: opens on first use');
    this.retired.push(async () => {
      this.resetEmitter.fire();
      await old?.then((b) => b.dispose()).catch(() => undefined);
    });
    if (this.jobsRunning === 0) await this.releaseRetired();
  }

  private async releaseRetired(): Promise<void> {
    for (const release of this.retired.splice(0)) await release();
  }

  async dispose(): Promise<void> {
    this.subscription.dispose();
    this.status.dispose();
    await this.reset();
    this.resetEmitter.dispose();
  }
}

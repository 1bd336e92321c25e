// The extension activates only when it is used, and activating it loads no native module: the
// built dist/extension.js is loaded and activated in a fresh node process with a stand-in for the
// `vscode` module (test/helpers/activation-probe.ts) that records every package required.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { ActivationReport } from '../helpers/activation-probe.js';

const root = path.resolve(__dirname, '../..');
const manifest = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));

async function probe(): Promise<ActivationReport> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', path.join(root, 'test/helpers/activation-probe.ts'), path.join(root, 'dist/extension.js')], { cwd: root });
  return JSON.parse(stdout) as ActivationReport;
}

test('activating the extension requires no package but vscode: onnxruntime, sharp and Dawn wait for a job', async () => {
  const report = await probe();
  // Everything else is bundled; a package required here is one loaded at activation.
  assert.deepEqual(report.packages, ['vscode']);
  console.log(`# load ${report.loadMs.toFixed(1)} ms, activate() ${report.activateMs.toFixed(1)} ms (plain node, stand-in host)`);
});

test('activation registers every contributed command', async () => {
  const report = await probe();
  const contributed = (manifest.contributes.commands as { command: string }[]).map((c) => c.command);
  assert.deepEqual([...report.commands].sort(), [...contributed].sort());
});

test('activation events: none at startup, one per restorable panel, and a workspace with codebooks (the rest VS Code derives from contributions)', async () => {
  const events: string[] = manifest.activationEvents;
  assert.ok(!events.includes('*') && !events.includes('onStartupFinished'), `activationEvents ${JSON.stringify(events)}`);
  // Webview panels have no contribution point, so VS Code cannot derive the event that brings a
  // panel back after a reload: each registered serializer needs its own. Commands, the Lab view
  // and editors derive theirs from their contributions.
  const { serializers } = await probe();
  assert.ok(serializers.length > 0, 'activation registers the panel serializers');
  // A workspace that holds codebooks activates on opening, so the status bar names its active
  // codebook (remembered with the workspace) from the start.
  assert.deepEqual([...events].sort(), [...serializers.map((t) => `onWebviewPanel:${t}`), 'workspaceContains:.unicode2/codebooks/*.safetensors'].sort());
});

// `npm run package` must give a linux-x64 .vsix that works on its own: the bundles, the media, and
// the native code of onnxruntime-node, sharp and webgpu for linux-x64, and nothing for other
// platforms, no sources and no tests. Then that .vsix, installed into code-server the way a user
// installs it, must tokenize an image.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot, startCodeServer } from './code-server.js';
import { answerFileDialog, findWebviewFrame, openWorkbench, runCommand } from './workbench.js';
import { makeWorkspace, writeWorkspaceSettings } from './workspace.js';

const run = promisify(execFile);
const bigOutput = { maxBuffer: 64 * 1024 * 1024 };

let outDir: string;
let vsix: string;

before(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'unicode2-vsix-'));
  vsix = join(outDir, 'unicode2-studio-linux-x64.vsix');
  await run('npm', ['run', '--silent', 'package', '--', '--out', vsix], { cwd: repoRoot, ...bigOutput });
}, { timeout: 10 * 60_000 });

after(async () => {
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

test('the .vsix holds the bundle and linux-x64 native code, and nothing for other platforms', async (t) => {
  t.diagnostic(`vsix size ${((await stat(vsix)).size / 2 ** 20).toFixed(1)} MiB`);
  const entries = (await run('unzip', ['-Z1', vsix], bigOutput)).stdout.split('\n').filter(Boolean);

  const has = (name: string) => entries.includes(`extension/${name}`);
  for (const required of [
    'package.json',
    'dist/extension.js',
    'dist/encode-worker.js',
    'dist/parquet-worker.js',
    'node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node',
    'node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1',
    'node_modules/webgpu/dist/linux-x64/dawn.node',
  ]) {
    assert.ok(has(required), `the vsix holds ${required}`);
  }
  assert.ok(
    entries.some((e) => /^extension\/node_modules\/@img\/sharp-linux-x64\/lib\/sharp-linux-x64-[\d.]+\.node$/.test(e)),
    'the vsix holds sharp’s linux-x64 binding',
  );
  assert.ok(entries.some((e) => e.startsWith('extension/media/samples/')), 'the vsix holds the demo sample images');

  const foreignNative = entries.filter((e) => /darwin|win32|linux-arm64|linux\/arm64/.test(e));
  assert.deepEqual(foreignNative, [], 'no other platform’s native binaries');
  const sources = entries.filter((e) => /^extension\/(extension|native-gpu|webview|test|scripts|bench)\//.test(e) || /(?<!\.d)\.ts$/.test(e));
  assert.deepEqual(sources, [], 'no sources or tests');
  const devDependencies = entries.filter((e) => /^extension\/node_modules\/(typescript|esbuild|@esbuild|playwright-core|tsx|@vscode\/vsce)\//.test(e));
  assert.deepEqual(devDependencies, [], 'no dev dependencies');

  const manifest = (await run('unzip', ['-p', vsix, 'extension.vsixmanifest'])).stdout;
  assert.match(manifest, /TargetPlatform="linux-x64"/);
});

test('the installed .vsix tokenizes an image in code-server', { timeout: 10 * 60_000 }, async () => {
  const workspace = await makeWorkspace();
  await writeWorkspaceSettings(workspace, { 'unicode2.device': 'cpu' });
  // The codebook comes from the CLI so this test looks only at what the package itself runs.
  await run('node', [join(repoRoot, 'dist', 'cli.js'), 'build', '--images', join(workspace, 'images'), '--k', '16', '--iters', '3',
    '--device', 'cpu', '--quiet', '--out', join(workspace, '.unicode2', 'codebook.safetensors')]);
  const server = await startCodeServer({ workspace, extension: { vsix } });
  const workbench = await openWorkbench(server.url, 'vsix').catch(async (err) => {
    await server.stop();
    throw err;
  });
  try {
    await runCommand(workbench.page, 'UniCode²: Tokenize Image…');
    await answerFileDialog(workbench.page, join(workspace, 'images', 'coffee.jpg'));
    const view = await findWebviewFrame(workbench.page, 'canvas#token-grid[data-drawn="true"]', 3 * 60_000);
    assert.equal(await view.locator('canvas#token-grid').getAttribute('data-grid-h'), '14');
    assert.equal(await view.locator('canvas#token-grid').getAttribute('data-grid-w'), '21'); // 256 x 171: the photo's shape
    await workbench.screenshot('token-grid');
  } catch (err) {
    await workbench.screenshot('failed').catch(() => undefined);
    await server.saveLogs(join(workbench.artifacts, 'logs')).catch(() => undefined);
    throw err;
  } finally {
    await workbench.close();
    await server.stop();
    await rm(workspace, { recursive: true, force: true });
  }
});

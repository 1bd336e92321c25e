// Starts a real VS Code (code-server, the browser build) with the extension installed unpacked,
// on loopback only, with every piece of state in a scratch folder. code-server and not
// @vscode/test-electron: it installs from the npm registry and runs headless (docs/testing.md).
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { cp, mkdtemp, mkdir, rm, symlink, writeFile, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

export const repoRoot = resolve(__dirname, '..', '..');

/** The folder name code-server expects for an installed extension: `<publisher>.<name>-<version>`. */
async function extensionFolderName(extensionPath: string): Promise<string> {
  const manifest = JSON.parse(await readFile(join(extensionPath, 'package.json'), 'utf8'));
  return `${manifest.publisher}.${manifest.name}-${manifest.version}`;
}

/** Installs code-server when the cache lacks it (minutes the first time, ~1 s after) and returns its launcher. */
export async function ensureCodeServer(): Promise<string> {
  const { stdout } = await promisify(execFile)('bash', [join(repoRoot, 'scripts', 'setup-code-server.sh')], {
    maxBuffer: 16 * 1024 * 1024,
  });
  const launcher = stdout.trim().split('\n').pop();
  if (!launcher) throw new Error('setup-code-server.sh printed no launcher path');
  return launcher;
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}

// User settings that keep the workbench quiet and offline: no AI sidebar, no telemetry, no update
// or experiment fetches, no welcome page stealing focus from the editor area.
const quietUserSettings = {
  'chat.disableAIFeatures': true,
  'telemetry.telemetryLevel': 'off',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'workbench.enableExperiments': false,
  'update.mode': 'none',
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
};

// Workspace trust off (the default here), or on with the folder opening in Restricted Mode: no
// startup prompt, so the workspace stays untrusted until the test trusts it from the workbench.
const trustSettings = {
  off: { 'security.workspace.trust.enabled': false },
  on: { 'security.workspace.trust.enabled': true, 'security.workspace.trust.startupPrompt': 'never', 'security.workspace.trust.emptyWindow': false },
};

export interface CodeServer {
  url: string;
  /** the code-server process; the extension host is one of its descendants */
  pid: number;
  /** Scratch folder holding HOME, user data and extensions; removed by stop(). */
  scratch: string;
  /** code-server's own stdout+stderr so far. */
  log(): string;
  /** Copies the workbench's log folder (extension host log, output channels) to `dest`. */
  saveLogs(dest: string): Promise<void>;
  stop(): Promise<void>;
}

export interface StartOptions {
  workspace: string;
  /**
   * What to install: an extension folder, linked unpacked (default: the repository, which holds
   * package.json + dist + node_modules), or a packaged .vsix, installed by code-server itself.
   */
  extension?: { folder: string } | { vsix: string };
  /** VS Code's workspace trust on, the workspace untrusted at start (default: trust off) */
  workspaceTrust?: boolean;
  startTimeoutMs?: number;
}

export async function startCodeServer(opts: StartOptions): Promise<CodeServer> {
  const launcher = await ensureCodeServer();
  const scratch = await mkdtemp(join(tmpdir(), 'unicode2-e2e-cs-'));
  const dirs = {
    home: join(scratch, 'home'),
    userData: join(scratch, 'user-data'),
    extensions: join(scratch, 'extensions'),
  };
  await Promise.all(Object.values(dirs).map((d) => mkdir(d, { recursive: true })));
  await mkdir(join(dirs.userData, 'User'), { recursive: true });
  const trust = opts.workspaceTrust ? trustSettings.on : trustSettings.off;
  await writeFile(join(dirs.userData, 'User', 'settings.json'), JSON.stringify({ ...quietUserSettings, ...trust }, null, 2));
  const emptyConfig = join(scratch, 'config.yaml');
  await writeFile(emptyConfig, '');

  // Every code-server call writes config into HOME, so all of HOME/XDG points into the scratch folder.
  const env = {
    ...process.env,
    HOME: dirs.home,
    XDG_CONFIG_HOME: join(dirs.home, '.config'),
    XDG_DATA_HOME: join(dirs.home, '.local', 'share'),
    XDG_CACHE_HOME: join(dirs.home, '.cache'),
    EXTENSIONS_GALLERY: '{"serviceUrl":""}',
  };
  const common = ['--config', emptyConfig, '--user-data-dir', dirs.userData, '--extensions-dir', dirs.extensions];

  const extension = opts.extension ?? { folder: repoRoot };
  try {
    if ('vsix' in extension) {
      await promisify(execFile)(launcher, [...common, '--install-extension', extension.vsix], { env });
    } else {
      await symlink(extension.folder, join(dirs.extensions, await extensionFolderName(extension.folder)), 'dir');
    }
  } catch (err) {
    await rm(scratch, { recursive: true, force: true });
    throw err;
  }

  const port = await freePort();
  const args = [
    ...common,
    '--bind-addr', `127.0.0.1:${port}`,
    '--auth', 'none',
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-getting-started-override',
    ...(opts.workspaceTrust ? [] : ['--disable-workspace-trust']),
    opts.workspace,
  ];
  const child = spawn(launcher, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);

  const url = `http://127.0.0.1:${port}`;
  const server: CodeServer = {
    url,
    pid: child.pid!,
    scratch,
    log: () => output,
    saveLogs: async (dest) => {
      await cp(join(dirs.userData, 'logs'), dest, { recursive: true, force: true });
    },
    stop: async () => {
      await terminate(child);
      await rm(scratch, { recursive: true, force: true });
    },
  };
  try {
    await waitForHealthz(url, child, opts.startTimeoutMs ?? 60_000, () => output);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

async function waitForHealthz(url: string, child: ChildProcess, timeoutMs: number, log: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`code-server exited with ${child.exitCode} before answering:\n${log()}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`code-server did not answer ${url}/healthz within ${timeoutMs} ms:\n${log()}`);
}

/** SIGTERM stops code-server and its children in a few seconds; SIGKILL only if it does not. */
async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

// A scratch VS Code workspace holding copies of the fixture images and workspace settings.
import { createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './code-server.js';

export const fixtureImages = join(repoRoot, 'test', 'fixtures', 'images');

export async function makeWorkspace(): Promise<string> {
  const workspace = await mkdtemp(join(tmpdir(), 'unicode2-e2e-ws-'));
  await cp(fixtureImages, join(workspace, 'images'), { recursive: true });
  return workspace;
}

/**
 * A folder with `copies` copies of every fixture image: the same photos, more patches, so that a
 * build over it runs long enough to be cancelled by hand.
 */
export async function makeRepeatedImages(workspace: string, name: string, copies: number): Promise<string> {
  const dir = join(workspace, name);
  for (let i = 0; i < copies; i++) await cp(fixtureImages, join(dir, `copy${i}`), { recursive: true });
  return dir;
}

/** Writes .vscode/settings.json; VS Code picks the change up from disk as a person's edit would be. */
export async function writeWorkspaceSettings(workspace: string, settings: Record<string, unknown>): Promise<void> {
  await mkdir(join(workspace, '.vscode'), { recursive: true });
  await writeFile(join(workspace, '.vscode', 'settings.json'), JSON.stringify(settings, null, 2));
}

export async function sha256(file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex');
}

/** Names in a folder, sorted: compared before and after to see that nothing (a temp file) was left. */
export async function listFolder(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

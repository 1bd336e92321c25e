// Panel serializers reopen files named in webview state. That state was written by the webview
// and comes back from VS Code's storage, so it is checked like any message: against its schema,
// then each path must be absolute, name a file of the expected kind, exist and be a regular file,
// before anything opens it. (No 'vscode' here: the serializers hold the VS Code side.)
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { IMAGE_EXTENSIONS, UserError } from '../engine/index.js';
import { checked, type Infer, type Schema } from '../../common/protocol/shared.js';

export type FileKind = 'codebook' | 'image' | 'tokens';

const KINDS: Record<FileKind, { name: string; extensions: string[] }> = {
  codebook: { name: 'a codebook', extensions: ['.safetensors'] },
  image: { name: 'an image', extensions: IMAGE_EXTENSIONS.map((e) => `.${e}`) },
  tokens: { name: 'a tokens', extensions: ['.json', '.npy'] },
};

/** `file` when it is an existing regular file of that kind; otherwise a UserError saying what it is. */
export async function requireFileOfKind(file: string, kind: FileKind): Promise<string> {
  if (!path.isAbsolute(file)) throw new UserError(`${file} is not an absolute path`);
  const { name, extensions } = KINDS[kind];
  if (!extensions.includes(path.extname(file).toLowerCase())) throw new UserError(`${file} is not ${name} file (expected ${extensions.join(', ')})`);
  const stat = await fs.stat(file).catch(() => null);
  if (!stat) throw new UserError(`${file} no longer exists`);
  if (!stat.isFile()) throw new UserError(`${file} is not a regular file`);
  return file;
}

/** The restore data in a panel's saved state, checked against `schema`; a UserError when it does not fit. */
export function readRestoreState<S extends Schema>(schema: S, state: unknown): Infer<S> {
  const result = checked(schema, state, 'state');
  if (!result.ok) throw new UserError(`its saved state does not hold what it needs (${result.problem})`);
  return result.value;
}

// writeFileAtomic / writeFilesAtomic on a real file system: file-system errors of the user's
// files come out as one-line UserErrors naming the path, temp files of dead writers are swept,
// and a set of files is replaced only when every one of them could be written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UserError } from '../../common/errors.js';
import { writeFileAtomic, writeFilesAtomic } from '../../extension/engine/io/atomic-write.js';
import { fileError } from '../../extension/engine/io/files.js';

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'atomic-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

function isUserError(message: string) {
  return (e: Error) => e instanceof UserError && e.message === message;
}

test('an output that is a folder, or whose parent is a file, is a UserError naming the path', async (t) => {
  const dir = await tempDir(t);
  const folder = path.join(dir, 'out.npy');
  await fs.mkdir(folder);
  await assert.rejects(writeFileAtomic(folder, 'x'), isUserError(`${folder}: cannot write: is a folder, expected a file`));
  const file = path.join(dir, 'plain');
  await fs.writeFile(file, 'x');
  const under = path.join(file, 'sub', 'out.npy');
  await assert.rejects(writeFileAtomic(under, 'x'), (e: Error) => e instanceof UserError && e.message.startsWith(`${under}: cannot create its folder: `));
  assert.deepEqual((await fs.readdir(dir)).sort(), ['out.npy', 'plain']);
});

test('the errno mapping: every errno error becomes one sentence naming the file; bugs pass through', () => {
  const err = (code: string) => Object.assign(new Error(`${code}: raw`), { code });
  assert.equal((fileError(err('ENOSPC'), '/data/cb.safetensors', 'write') as Error).message, '/data/cb.safetensors: cannot write: no space left on the device; free some space or write elsewhere');
  assert.equal((fileError(err('EACCES'), '/x', 'read a .npy file') as Error).message, '/x: cannot read a .npy file: permission denied; check its permissions or choose another location');
  assert.equal((fileError(err('EWEIRD'), '/x', 'write') as Error).message, '/x: cannot write: system error EWEIRD');
  const bug = new TypeError('x is undefined');
  assert.equal(fileError(bug, '/x', 'write'), bug);
});

test('temp files of writers that are gone are swept by the next write to the same target; others are left', async (t) => {
  const dir = await tempDir(t);
  const target = path.join(dir, 'ids.npy');
  const dead = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' }).stdout.trim();
  const stale = `.ids.npy.${dead}.0badc0de.tmp`;
  const live = `.ids.npy.1.0badc0de.tmp`; // pid 1 is alive
  const other = `.other.npy.${dead}.0badc0de.tmp`; // another target's: not this write's to judge
  for (const name of [stale, live, other]) await fs.writeFile(path.join(dir, name), 'partial');
  await writeFileAtomic(target, 'new');
  assert.deepEqual((await fs.readdir(dir)).sort(), [live, other, 'ids.npy'].sort());
  assert.equal(await fs.readFile(target, 'utf8'), 'new');
});

test('writeFilesAtomic replaces a set of files only when all of them can be written', async (t) => {
  const dir = await tempDir(t);
  const data = path.join(dir, 'data.npy');
  const index = path.join(dir, 'data.npy.index.json');
  await writeFilesAtomic([{ path: data, data: 'old data' }, { path: index, data: 'old index' }]);
  // The second file cannot be written (a folder is in the way): the first keeps its old content.
  await fs.rm(index);
  await fs.mkdir(index);
  await assert.rejects(writeFilesAtomic([{ path: data, data: 'new data' }, { path: index, data: 'new index' }]), isUserError(`${index}: cannot write: is a folder, expected a file`));
  assert.equal(await fs.readFile(data, 'utf8'), 'old data');
  assert.deepEqual((await fs.readdir(dir)).sort(), ['data.npy', 'data.npy.index.json']);
});

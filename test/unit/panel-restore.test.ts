// What a panel serializer accepts from saved webview state before it opens anything: the state
// must fit its schema, and every path must be absolute, of the expected kind, exist and be a file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { readRestoreState, requireFileOfKind } from '../../extension/panels/restore-state.js';
import { tokenGridState } from '../../common/protocol/tokengrid.js';
import { UserError } from '../../common/errors.js';

const isUserError = (pattern: RegExp) => (e: unknown) => e instanceof UserError && pattern.test(e.message);

test('saved state must fit its schema; other view state beside it is ignored', () => {
  const restore = { codebook: '/w/codebook.safetensors', image: '/w/cat.png' };
  assert.deepEqual(readRestoreState(tokenGridState, { restore, opacity: 0.4, ids: [1, 2] }), { restore });
  assert.throws(() => readRestoreState(tokenGridState, undefined), isUserError(/^its saved state does not hold what it needs \(state: Invalid type: Expected Object but received undefined\)$/));
  assert.throws(() => readRestoreState(tokenGridState, { restore: { codebook: 7, image: '/w/cat.png' } }), isUserError(/state\.restore\.codebook: Invalid type: Expected string but received 7/));
  assert.throws(() => readRestoreState(tokenGridState, { restore: { ...restore, command: 'rm' } }), isUserError(/state\.restore\.command: Invalid key/));
  assert.throws(() => readRestoreState(tokenGridState, { restore: Object.create(restore) }), isUserError(/state\.restore: Invalid type: Expected a plain object/));
});

test('paths from saved state: absolute, the expected kind, existing, a regular file', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'unicode2-restore-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const codebook = path.join(dir, 'codebook.safetensors');
  writeFileSync(codebook, 'x');
  mkdirSync(path.join(dir, 'folder.png'));
  assert.equal(await requireFileOfKind(codebook, 'codebook'), codebook);
  await assert.rejects(requireFileOfKind('codebook.safetensors', 'codebook'), isUserError(/^codebook\.safetensors is not an absolute path$/));
  await assert.rejects(requireFileOfKind(codebook, 'image'), isUserError(/is not an image file \(expected \.jpg, \.jpeg, \.png/));
  await assert.rejects(requireFileOfKind('/etc/passwd', 'tokens'), isUserError(/^\/etc\/passwd is not a tokens file \(expected \.json, \.npy\)$/));
  await assert.rejects(requireFileOfKind(path.join(dir, 'gone.png'), 'image'), isUserError(/gone\.png no longer exists$/));
  await assert.rejects(requireFileOfKind(path.join(dir, 'folder.png'), 'image'), isUserError(/folder\.png is not a regular file$/));
});

// Pixels the panels show: the Lab's thumbnails keep the photo's aspect ratio.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { thumbnailUri } from '../../extension/panels/images.js';
import * as path from 'node:path';

const fixture = (name: string): string => path.resolve(__dirname, '../fixtures/images', name);

test('thumbnails keep the photo\'s aspect ratio', async () => {
  const t = await thumbnailUri(fixture('chelsea.png')); // 256 x 170
  assert.equal(t.width, 64);
  assert.ok(Math.abs(t.height - (170 * 64) / 256) <= 0.5, `64 x ${t.height}`);
  assert.match(t.uri, /^data:image\/png;base64,/);
});

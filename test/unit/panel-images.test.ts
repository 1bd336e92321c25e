// Pixels the panels show: bilinear resampling keeps what an image holds at another size, and the
// Lab's thumbnails keep the photo's aspect ratio.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resample, thumbnailUri } from '../../extension/panels/images.js';
import * as path from 'node:path';

const fixture = (name: string): string => path.resolve(__dirname, '../fixtures/images', name);

test('resample: a square decoding stretched to a 3:2 photo\'s size keeps its gradients and corners', () => {
  // 4 x 4, red rises left to right, green top to bottom, blue constant
  const n = 4;
  const data = new Float32Array(3 * n * n);
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) {
    data[y * n + x] = x / (n - 1);
    data[n * n + y * n + x] = y / (n - 1);
    data[2 * n * n + y * n + x] = 0.25;
  }
  const out = resample({ data, width: n, height: n }, 9, 6);
  assert.deepEqual([out.width, out.height, out.data.length], [9, 6, 3 * 9 * 6]);
  const at = (c: number, x: number, y: number): number => out.data[(c * 6 + y) * 9 + x]!;
  assert.equal(at(0, 0, 0), 0);
  assert.equal(at(0, 8, 5), 1);
  assert.equal(at(1, 8, 5), 1);
  for (let x = 1; x < 9; x++) assert.ok(at(0, x, 3) >= at(0, x - 1, 3), 'red never falls left to right');
  for (let y = 1; y < 6; y++) assert.ok(at(1, 4, y) >= at(1, 4, y - 1), 'green never falls top to bottom');
  assert.ok(out.data.subarray(2 * 54).every((v) => Math.abs(v - 0.25) < 1e-6), 'a constant stays constant');
});

test('thumbnails keep the photo\'s aspect ratio', async () => {
  const t = await thumbnailUri(fixture('chelsea.png')); // 256 x 170
  assert.equal(t.width, 64);
  assert.ok(Math.abs(t.height - (170 * 64) / 256) <= 0.5, `64 x ${t.height}`);
  assert.match(t.uri, /^data:image\/png;base64,/);
});

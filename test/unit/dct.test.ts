import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { dctPatches, idctPatches } from '../../native-gpu/cpu/dct.js';
import { mosaic } from '../../native-gpu/cpu/mosaic.js';
import { loadImage } from '../../extension/engine/embed/image.js';

const image = (name: string) => path.join(__dirname, '../fixtures/images', name);

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('idct(dct(x)) == x within 1e-5 on a real photo (224x224, 16x16 patches)', async () => {
  const img = await loadImage(image('astronaut.jpg'), { width: 224, height: 224 });
  const coeffs = dctPatches(img.data, 224, 224, 16);
  assert.deepEqual([coeffs.rows, coeffs.cols], [196, 768]);
  const back = idctPatches(coeffs, 14, 14, 16);
  assert.ok(maxAbsDiff(back, img.data) < 1e-5);
});

test('the transform is orthonormal: it preserves energy (Parseval), and DC = sum / p', async () => {
  const img = await loadImage(image('coffee.jpg'), { width: 64, height: 32 });
  const coeffs = dctPatches(img.data, 32, 64, 8);
  const energy = (a: Float32Array) => a.reduce((s, v) => s + v * v, 0);
  assert.ok(Math.abs(energy(coeffs.data) - energy(img.data)) / energy(img.data) < 1e-5);
  // Patch (gy=1, gx=3), channel 1 (green): its DC coefficient is the patch sum divided by p.
  const p = 8;
  let sum = 0;
  for (let y = 0; y < p; y++) for (let x = 0; x < p; x++) sum += img.data[32 * 64 + (p + y) * 64 + 3 * p + x];
  const row = 1 * 8 + 3;
  assert.ok(Math.abs(coeffs.data[row * 3 * p * p + p * p] - sum / p) < 1e-4);
});

test('a horizontal cosine lands in the (u=0, v=1) coefficient only, in the right channel', () => {
  const p = 4;
  const img = new Float32Array(3 * p * p);
  // Blue channel: the second DCT basis function along x, constant along y.
  for (let y = 0; y < p; y++) for (let x = 0; x < p; x++) img[2 * p * p + y * p + x] = Math.cos((Math.PI * (2 * x + 1)) / (2 * p));
  const { data } = dctPatches(img, p, p, p);
  const index = 2 * p * p + 0 * p + 1;
  data.forEach((v, i) => assert.ok(i === index ? Math.abs(v) > 1 : Math.abs(v) < 1e-6, `coefficient ${i} = ${v}`));
});

test('sizes that are not whole patches are refused', () => {
  assert.throws(() => dctPatches(new Float32Array(3 * 20 * 16), 20, 16, 16), /not a whole number of 16x16 patches/);
  assert.throws(() => idctPatches({ rows: 3, cols: 768, data: new Float32Array(3 * 768) }, 2, 2, 16), /expected \[4 x 768\]/);
});

test('mosaic tiles atlas rows into the grid and rejects ids outside the atlas', () => {
  const p = 2;
  // Code k's patch: channel c, pixel (y, x) holds 100k + 10c + 2y + x, so every value says where it came from.
  const atlas = { rows: 3, cols: 3 * p * p, data: new Float32Array(3 * 3 * p * p) };
  for (let k = 0; k < 3; k++) for (let c = 0; c < 3; c++) for (let i = 0; i < p * p; i++) atlas.data[k * 12 + c * 4 + i] = 100 * k + 10 * c + i;
  const ids = Int32Array.of(2, 0, 1, 1, 0, 2); // 2 x 3 grid
  const out = mosaic(atlas, ids, 2, 3, p);
  const width = 3 * p;
  const height = 2 * p;
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const code = ids[Math.floor(y / p) * 3 + Math.floor(x / p)];
        assert.equal(out[c * width * height + y * width + x], 100 * code + 10 * c + (y % p) * p + (x % p));
      }
    }
  }
  assert.throws(() => mosaic(atlas, Int32Array.of(0, 3, 0, 0, 0, 0), 2, 3, p), /token id 3 is outside \[0, 3\)/);
});

// The log-count colour ramp of the heatmaps (report and codebook panel) against numbers worked out
// by hand from its definition: viridis at five stops, position log(1 + count) / log(1 + max).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { contrastRatio, countColor, DEAD_CODE_MAGENTA, deadCodeColor, heatmapColumns, logCountLevel, rampColor } from '../../common/colormap.js';

test('logCountLevel: log(1 + count) / log(1 + max), clamped to [0, 1]', () => {
  assert.equal(logCountLevel(0, 100), 0);
  assert.equal(logCountLevel(100, 100), 1);
  assert.equal(logCountLevel(9, 99), 0.5); // log 10 / log 100
  assert.ok(Math.abs(logCountLevel(3, 63) - 1 / 3) < 1e-12); // log 4 / log 64
  assert.equal(logCountLevel(500, 100), 1);
  assert.equal(logCountLevel(5, 0), 0);
});

test('rampColor: the five viridis stops, and linear between them rounded to whole channels', () => {
  assert.deepEqual(rampColor(0), [68, 1, 84]);
  assert.deepEqual(rampColor(0.25), [59, 82, 139]);
  assert.deepEqual(rampColor(0.5), [33, 145, 140]);
  assert.deepEqual(rampColor(0.75), [94, 201, 98]);
  assert.deepEqual(rampColor(1), [253, 231, 37]);
  // halfway between the first two stops: (68 - 4.5, 1 + 40.5, 84 + 27.5), halves rounded up
  assert.deepEqual(rampColor(0.125), [64, 42, 112]);
  // a tenth of the way from the fourth stop to the last: 94 + 15.9, 201 + 3, 98 - 6.1
  assert.deepEqual(rampColor(0.775), [110, 204, 92]);
  assert.deepEqual(rampColor(-3), [68, 1, 84]);
  assert.deepEqual(rampColor(7), [253, 231, 37]);
});

test('deadCodeColor: magenta where it has 3:1 contrast with the background, else black or white', () => {
  assert.deepEqual(DEAD_CODE_MAGENTA, [230, 0, 160]);
  // WCAG contrast of magenta (luminance 0.19361) worked out by hand from the definition:
  assert.ok(Math.abs(contrastRatio(DEAD_CODE_MAGENTA, [31, 31, 31]) - 3.8242) < 1e-4); // Dark Modern's editor
  assert.ok(Math.abs(contrastRatio(DEAD_CODE_MAGENTA, [255, 255, 255]) - 4.3102) < 1e-4);
  assert.equal(contrastRatio([255, 255, 255], [0, 0, 0]), 21);
  assert.deepEqual(deadCodeColor([31, 31, 31]), [230, 0, 160]);
  assert.deepEqual(deadCodeColor([255, 255, 255]), [230, 0, 160]);
  assert.deepEqual(deadCodeColor([0, 0, 0]), [230, 0, 160]);
  assert.deepEqual(deadCodeColor([128, 128, 128]), [0, 0, 0]); // magenta 1.09:1; black 5.32:1 beats white 3.95:1
  assert.deepEqual(deadCodeColor([120, 0, 90]), [255, 255, 255]); // magenta 2.50:1; white 10.79:1 beats black 1.95:1
});

test('countColor: dead codes in the colour given for them, used ones on the ramp by log count', () => {
  const dead = [1, 2, 3] as const;
  assert.deepEqual(countColor(0, 1000, dead), [1, 2, 3]);
  assert.deepEqual(countColor(9, 99, dead), [33, 145, 140]); // level 0.5
  assert.deepEqual(countColor(99, 99, dead), [253, 231, 37]);
  assert.deepEqual(countColor(1, 1, dead), [253, 231, 37]);
});

test('heatmapColumns: ceil(sqrt(K)), at least one', () => {
  assert.equal(heatmapColumns(1), 1);
  assert.equal(heatmapColumns(0), 1);
  assert.equal(heatmapColumns(1024), 32);
  assert.equal(heatmapColumns(1025), 33);
  assert.equal(heatmapColumns(500_000), 708);
});

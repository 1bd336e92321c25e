// The log-count colour ramp of the heatmaps (report and codebook panel) against numbers worked out
// by hand from its definition: viridis at five stops, position log(1 + count) / log(1 + max).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countColor, DEAD_CODE_RGB, heatmapColumns, logCountLevel, rampColor } from '../../common/colormap';

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

test('countColor: dead codes apart from the ramp, used ones on it by log count', () => {
  assert.deepEqual(DEAD_CODE_RGB, [40, 40, 48]);
  assert.deepEqual(countColor(0, 1000), [40, 40, 48]);
  assert.deepEqual(countColor(9, 99), [33, 145, 140]); // level 0.5
  assert.deepEqual(countColor(99, 99), [253, 231, 37]);
  assert.deepEqual(countColor(1, 1), [253, 231, 37]);
});

test('heatmapColumns: ceil(sqrt(K)), at least one', () => {
  assert.equal(heatmapColumns(1), 1);
  assert.equal(heatmapColumns(0), 1);
  assert.equal(heatmapColumns(1024), 32);
  assert.equal(heatmapColumns(1025), 33);
  assert.equal(heatmapColumns(500_000), 708);
});

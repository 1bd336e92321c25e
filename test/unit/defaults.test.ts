// One set of defaults: the extension's settings in package.json and the README's settings table
// say what extension/engine/core/defaults.ts says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { DEFAULTS, SCHEDULER_KINDS, SEARCH_CHOICES } from '../../extension/engine/core/defaults.js';
import { PRECISIONS } from '../../extension/engine/embed/encoders/model-files.js';

const root = path.resolve(__dirname, '../..');

/** DEFAULTS as setting keys: a nested group (e.g. generation.steps) is `unicode2.generation.steps`. */
function settingKeys(values: Record<string, unknown>, prefix = ''): [string, unknown][] {
  return Object.entries(values).flatMap(([key, value]) =>
    typeof value === 'object' && value !== null ? settingKeys(value as Record<string, unknown>, `${prefix}${key}.`) : [[`${prefix}${key}`, value] as [string, unknown]]);
}
const defaults = settingKeys(DEFAULTS);
const manifest = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
const settings: Record<string, { default: unknown }> = manifest.contributes.configuration.properties;

test("package.json's settings default to the engine's defaults", () => {
  for (const [key, value] of defaults) {
    const setting = settings[`unicode2.${key}`];
    assert.ok(setting, `package.json has no setting unicode2.${key}`);
    assert.deepEqual(setting.default, value, `unicode2.${key}`);
  }
});

test("the README's settings table shows the same defaults", () => {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  for (const [key, value] of defaults) {
    const row = new RegExp('^\\| `unicode2\\.' + key.replace(/\./g, '\\.') + '` \\| ([^|]+) \\|', 'm').exec(readme);
    assert.ok(row, `README.md has no row for unicode2.${key}`);
    const shown = row[1]!.trim().replace(/^`|`$/g, '').replace(/^"|"$/g, '');
    assert.equal(shown, String(value), `README default of unicode2.${key}`);
  }
});

test("package.json's choice settings offer exactly the engine's lists of choices", () => {
  const choices: [string, readonly string[]][] = [
    ['unicode2.search', SEARCH_CHOICES],
    ['unicode2.generation.scheduler', SCHEDULER_KINDS],
    ['unicode2.encoderPrecision', Object.keys(PRECISIONS)],
  ];
  for (const [key, list] of choices) {
    assert.deepEqual((settings[key] as { enum?: string[] }).enum, [...list], key);
  }
});

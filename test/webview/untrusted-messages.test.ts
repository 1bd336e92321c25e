// Every panel's real bundle in Chromium, fed what a compromised or confused host side could post:
// message types that are names every object has (`__proto__`, `toString`), extra keys beside the
// expected ones, and a prototype-polluting JSON payload. Each is dropped with its reason before any
// handler runs, and nothing leaks onto Object.prototype. (test/webview/protocol.test.ts checks the
// endpoints themselves, outside a browser.)
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { openPanel, openRenderer, closeBrowser, until } from './harness.js';
import type { AnyProtocol } from '../../common/protocol/shared.js';
import { codebookProtocol } from '../../common/protocol/codebook.js';
import { tokenGridProtocol } from '../../common/protocol/tokengrid.js';
import { generationProtocol } from '../../common/protocol/generation.js';
import { labProtocol } from '../../common/protocol/lab.js';
import { tokenSetProtocol } from '../../common/protocol/tokens.js';

after(closeBrowser);

const bundles: [string, AnyProtocol][] = [
  ['codebook', codebookProtocol],
  ['tokengrid', tokenGridProtocol],
  ['generation', generationProtocol],
  ['lab', labProtocol],
  ['tokens', tokenSetProtocol],
];

for (const [bundle, protocol] of bundles) {
  test(`${bundle}: inherited names, extra keys and __proto__ payloads are dropped with their reason`, async () => {
    // no handlers: every request gets an error reply; what matters is what the page accepts
    const p = await openPanel(bundle, protocol, 'dark', {});
    try {
      const notification = Object.keys(protocol.notifications)[0] ?? 'fileChanged';
      // built in the page from JSON text, as postMessage would deliver it (an own "__proto__" key
      // survives JSON.parse, where an object literal would set the prototype instead)
      const messages = [
        { kind: 'notify', type: '__proto__', params: {} },
        { kind: 'notify', type: 'toString', params: {} },
        { kind: 'notify', type: 'constructor', params: {} },
        { kind: 'notify', type: notification, params: {}, junk: 'extra' },
      ].map((m) => JSON.stringify(m));
      messages.push(`{"kind": "notify", "type": "${notification}", "params": {}, "__proto__": {"polluted": true}}`);
      messages.push(JSON.stringify({ kind: 'reply', id: 1, result: {}, error: 'both' }));
      for (const text of messages) await p.page.evaluate((t) => window.postMessage(JSON.parse(t), '*'), text);
      const dropped = (): string[] => p.warnings.filter((w) => w.includes('dropped a malformed message'));
      await until(() => dropped().length === 6, `six rejections (got ${dropped().length})`);
      const reasons = dropped().map((w) => w.replace(/^.*dropped a malformed message: /, ''));
      const names = Object.keys(protocol.notifications).join(', ');
      const unknown = (t: string): string => (names ? `notification type "${t}" is not one of ${names}` : `notification type "${t}": this panel takes no notifications`);
      assert.deepEqual(reasons.slice(0, 3), ['__proto__', 'toString', 'constructor'].map(unknown));
      assert.equal(reasons[3], 'message.junk: Invalid key: Expected never but received "junk"');
      assert.equal(reasons[4], 'message.__proto__: Invalid key: Expected never but received "__proto__"');
      assert.match(reasons[5]!, /^message(\.error)?: /);
      assert.equal(await p.page.evaluate(() => (Object.prototype as Record<string, unknown>).polluted), undefined);
    } finally {
      await p.close();
    }
  });
}

test('notebook renderer: a __proto__ key in the token JSON is ignored, not merged into anything', async () => {
  const r = await openRenderer('dark');
  try {
    await r.render('proto', JSON.parse('{"grid": [1, 2], "ids": [3, 4], "__proto__": {"polluted": true, "grid": [9, 9]}}'));
    await r.page.locator('#output-proto canvas[data-drawn="true"]').waitFor();
    assert.match((await r.page.locator('#output-proto figure > div').textContent())!, /^tokens · 1 × 2 tokens · 2 distinct codes/);
    assert.equal(await r.page.evaluate(() => (Object.prototype as Record<string, unknown>).polluted), undefined);
    await r.render('not-plain', 'just a string');
    assert.match((await r.page.locator('#output-not-plain').textContent())!, /^UniCode² tokens could not be shown: tokens: Invalid type/);
  } finally {
    await r.close();
  }
});

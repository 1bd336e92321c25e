// The message protocol on its own (no browser): envelopes are validated where they enter, replies
// are matched to requests by id, error replies reject, and malformed messages never reach a handler.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Endpoint, validateEnvelope, type Envelope } from '../../common/protocol.js';

test('validation accepts well-formed messages and names what is wrong with the rest', () => {
  assert.equal(validateEnvelope('codebook', 'host', { kind: 'request', id: 1, body: { type: 'codeDetail', code: 7 } }), null);
  assert.equal(validateEnvelope('lab', 'webview', { kind: 'notify', body: { type: 'cells', cells: [] } }), null);
  assert.equal(validateEnvelope('codebook', 'host', { kind: 'request', id: 1, body: { type: 'codeDetail', code: -1 } }), 'body.code must be an integer >= 0');
  assert.equal(validateEnvelope('codebook', 'host', { kind: 'request', id: 1, body: { type: 'dropTables' } }), 'body.type "dropTables" is not a known message');
  assert.equal(validateEnvelope('tokenGrid', 'host', { kind: 'request', id: 2, body: { type: 'decode', ids: [1, 2.5] } }), 'body.ids[1] must be an integer');
  assert.equal(validateEnvelope('generation', 'host', { kind: 'request', id: '3', body: { type: 'init' } }), 'id must be an integer');
  assert.equal(validateEnvelope('lab', 'host', { kind: 'reply', id: 1, body: { type: 'ok' } }), 'the host does not accept replies');
  assert.equal(validateEnvelope('lab', 'webview', { kind: 'request', id: 1, body: { type: 'init' } }), 'the webview does not accept requests');
  assert.equal(validateEnvelope('lab', 'webview', 'cells'), 'message must be an object');
  assert.match(
    validateEnvelope('lab', 'webview', { kind: 'notify', body: { type: 'cells', cells: [{ id: 'a', kind: 'train', status: 'done' }] } })!,
    /body\.cells\[0\]\.kind must be one of build, tokenize, decode, refine, demo/,
  );
  const counts = new Array(500_000).fill(3);
  counts[123_456] = Number.NaN;
  const reply = {
    kind: 'reply', id: 4,
    body: {
      type: 'codebook',
      data: {
        summary: { file: 'c', k: 1, d: 1, encoder: 'dct', lambda: 0, iterations: 1, fingerprint: 'f', atlas: 'dct', tokens: 1, used: 1, utilization: 1, perplexity: 1, dead: 0 },
        counts, order: [0], datasets: [], dataset: 'build', restore: { file: '/c' },
      },
    },
  };
  assert.equal(validateEnvelope('codebook', 'webview', reply), 'body.data.counts[123456] must be a finite number');
});

/** Two endpoints wired back to back, as host and webview are through postMessage. */
function pair() {
  const rejected: string[] = [];
  const handled: unknown[] = [];
  let toHost: (m: Envelope<unknown>) => void = () => undefined;
  let toWebview: (m: Envelope<unknown>) => void = () => undefined;
  const host = new Endpoint<unknown, { type: string; code?: number }>({
    panel: 'codebook', side: 'host', post: (m) => toWebview(m), onReject: (r) => rejected.push(r),
    onMessage: async (body) => {
      handled.push(body);
      if (body.type === 'codeDetail' && body.code === 13) throw new Error('code 13 is unlucky');
      return { type: 'datasets', datasets: [{ id: `for-${body.code ?? body.type}`, label: 'x' }] };
    },
  });
  const webview = new Endpoint<unknown, unknown>({ panel: 'codebook', side: 'webview', post: (m) => toHost(m), onReject: (r) => rejected.push(r), onMessage: (b) => handled.push(b) });
  // asynchronous delivery, like postMessage: replies may overtake each other
  toHost = (m) => setTimeout(() => void host.receive(structuredClone(m)), Math.random() * 5);
  toWebview = (m) => setTimeout(() => void webview.receive(structuredClone(m)), Math.random() * 5);
  return { host, webview, rejected, handled };
}

test('replies find their request by id, error replies reject, malformed ones are dropped', async () => {
  const { host, webview, rejected, handled } = pair();
  const replies = await Promise.all([1, 2, 3, 4, 5].map((code) => webview.request<{ datasets: { id: string }[] }>({ type: 'codeDetail', code })));
  assert.deepEqual(replies.map((r) => r.datasets[0]!.id), ['for-1', 'for-2', 'for-3', 'for-4', 'for-5']);
  await assert.rejects(webview.request({ type: 'codeDetail', code: 13 }), /code 13 is unlucky/);

  const before = handled.length;
  await host.receive({ kind: 'request', id: 99, body: { type: 'codeDetail', code: 'seven' } });
  await webview.receive({ kind: 'reply', id: 12345, body: { type: 'datasets', datasets: [] } });
  assert.equal(handled.length, before, 'no handler saw a malformed message');
  assert.deepEqual(rejected, ['body.code must be an integer >= 0', 'reply 12345 answers no pending request']);
});

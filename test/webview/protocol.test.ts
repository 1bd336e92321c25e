// The message protocol on its own (no browser): requests are checked against their descriptor
// where they enter the host, replies against the descriptor of the request they answer and
// notifications against theirs where they enter the webview; inherited names (`toString`,
// `__proto__`) and extra keys never pass; replies find their request by id.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HostEndpoint, WebviewEndpoint, check, type Envelope, type Handlers } from '../../common/protocol/shared.js';
import { codebookProtocol, type CodebookView } from '../../common/protocol/codebook.js';
import { labCell, labProtocol } from '../../common/protocol/lab.js';
import { tokenGridProtocol } from '../../common/protocol/tokengrid.js';
import { generateRequest } from '../../common/protocol/generation.js';

// Compile-time half of the contract (npm test typechecks this file): a handler's return type is the
// descriptor's reply, a request's parameters are the descriptor's, and the reply a webview gets is
// typed by the descriptor. Each line below must fail to compile; an unused @ts-expect-error fails.
export const typeChecks = (webview: WebviewEndpoint<typeof codebookProtocol>): unknown[] => [
  // @ts-expect-error codeDetail must reply with a code's detail, not a bare number
  ((): Handlers<typeof codebookProtocol>['codeDetail'] => () => 7)(),
  // @ts-expect-error codeDetail takes {code: number}
  webview.request('codeDetail', { code: 'seven' }),
  // @ts-expect-error there is no such request
  webview.request('dropTables'),
  // @ts-expect-error the reply of init is a CodebookView, which has no `cells`
  webview.request('init').then((view) => view.cells),
];

/** A host endpoint of the codebook protocol whose handlers record what reached them. */
function codebookHost() {
  const posted: Envelope[] = [];
  const rejected: string[] = [];
  const handled: string[] = [];
  const view = minimalView();
  const endpoint = new HostEndpoint(
    codebookProtocol,
    {
      init: () => (handled.push('init'), view),
      selectDataset: ({ dataset }) => (handled.push(`select ${dataset}`), view),
      addTokensFile: () => null,
      reopenWith: () => null,
      tokenizeCorpus: () => null,
      codeDetail: ({ code }) => {
        handled.push(`detail ${code}`);
        if (code === 13) throw new Error('code 13 is unlucky');
        return { code, count: 1, share: 0.5, patches: [], neighbours: [] };
      },
    },
    { post: (m) => posted.push(m), onReject: (reason) => rejected.push(reason) },
  );
  return { endpoint, posted, rejected, handled };
}

function minimalView(): CodebookView {
  return {
    summary: { file: 'c', k: 1, d: 1, encoder: 'dct', lambda: 0, iterations: 1, fingerprint: 'f', atlas: 'dct', tokens: 1, used: 1, utilization: 1, perplexity: 1, dead: 0 },
    counts: [1], order: [0], datasets: [], dataset: 'build', coarse: null,
  };
}

test('the host answers well-formed requests and names what is wrong with the rest', async () => {
  const { endpoint, posted, rejected, handled } = codebookHost();
  await endpoint.receive({ kind: 'request', id: 1, type: 'codeDetail', params: { code: 7 } });
  assert.deepEqual(posted.at(-1), { kind: 'reply', id: 1, result: { code: 7, count: 1, share: 0.5, patches: [], neighbours: [] } });
  await endpoint.receive({ kind: 'request', id: 2, type: 'codeDetail', params: { code: 13 } });
  assert.deepEqual(posted.at(-1), { kind: 'reply', id: 2, error: 'code 13 is unlucky' });

  await endpoint.receive({ kind: 'request', id: 3, type: 'codeDetail', params: { code: -1 } });
  assert.equal(rejected.at(-1), 'params.code: Invalid value: Expected >=0 but received -1');
  // a request with bad parameters is still answered (with an error), so the webview never waits forever
  assert.deepEqual(posted.at(-1), { kind: 'reply', id: 3, error: 'malformed codeDetail request: params.code: Invalid value: Expected >=0 but received -1' });
  await endpoint.receive({ kind: 'request', id: 4, type: 'dropTables', params: {} });
  assert.equal(rejected.at(-1), 'request type "dropTables" is not one of init, selectDataset, codeDetail, tokenizeCorpus, addTokensFile, reopenWith');
  await endpoint.receive({ kind: 'request', id: '5', type: 'init', params: {} });
  assert.match(rejected.at(-1)!, /^message\.id: Invalid type: Expected number but received "5"$/);
  await endpoint.receive({ kind: 'reply', id: 6, result: null });
  assert.match(rejected.at(-1)!, /^message\.kind: Invalid type: Expected "request" but received "reply"$/);
  await endpoint.receive('init');
  assert.match(rejected.at(-1)!, /^message: Invalid type: Expected a plain object/);
  assert.deepEqual(handled, ['detail 7', 'detail 13'], 'no handler saw a malformed request');
});

test('inherited names and prototype tricks never reach a handler', async () => {
  const { endpoint, rejected, handled } = codebookHost();
  // every object has these names through Object.prototype; none is a request
  for (const type of ['__proto__', 'toString', 'constructor', 'hasOwnProperty', 'valueOf']) {
    await endpoint.receive({ kind: 'request', id: 1, type, params: {} });
    assert.equal(rejected.at(-1), `request type "${type}" is not one of init, selectDataset, codeDetail, tokenizeCorpus, addTokensFile, reopenWith`);
  }
  // an own "__proto__" key, as JSON.parse makes it: an extra key, in the params and in the envelope
  await endpoint.receive({ kind: 'request', id: 1, type: 'selectDataset', params: JSON.parse('{"dataset": "build", "__proto__": {"isAdmin": true}}') });
  assert.equal(rejected.at(-1), 'params.__proto__: Invalid key: Expected never but received "__proto__"');
  await endpoint.receive(JSON.parse('{"kind": "request", "id": 1, "type": "init", "params": {}, "__proto__": {"type": "codeDetail"}}'));
  assert.equal(rejected.at(-1), 'message.__proto__: Invalid key: Expected never but received "__proto__"');
  // extra junk beside the expected keys
  await endpoint.receive({ kind: 'request', id: 1, type: 'codeDetail', params: { code: 3, also: 'rm -rf' } });
  assert.equal(rejected.at(-1), 'params.also: Invalid key: Expected never but received "also"');
  await endpoint.receive({ kind: 'request', id: 1, type: 'init', params: {}, body: { type: 'codeDetail' } });
  assert.equal(rejected.at(-1), 'message.body: Invalid key: Expected never but received "body"');
  // a field that is only inherited is not a field: strictObject alone would read `code` through the prototype
  await endpoint.receive({ kind: 'request', id: 1, type: 'codeDetail', params: Object.create({ code: 3 }) });
  assert.equal(rejected.at(-1), 'params: Invalid type: Expected a plain object');
  assert.deepEqual(handled, []);
});

test('lab cells: kinds come from the list, tables must be plain objects of strings and numbers, no extra keys', () => {
  const cell = { id: 'a', kind: 'build', status: 'done', title: 't', startedAt: 's', inputs: {}, params: {} };
  assert.equal(check(labCell, cell, 'cell'), null);
  assert.equal(check(labCell, { ...cell, kind: 'toString' }, 'cell'), 'cell.kind: Invalid type: Expected ("build" | "tokenize" | "decode" | "refine" | "demo" | "generate" | "fit") but received "toString"');
  assert.equal(check(labCell, { ...cell, inputs: Object.create({ folder: '/etc' }) }, 'cell'), 'cell.inputs: Invalid type: Expected a plain object');
  assert.equal(check(labCell, { ...cell, params: { k: '256', seed: Number.NaN } }, 'cell'), 'cell.params.seed: Invalid type: Expected (string | number) but received NaN');
  assert.equal(check(labCell, { ...cell, tokenPreview: { grid: [2, 2], ids: [1, 2, 3] }, extra: 1 }, 'cell'), 'cell.extra: Invalid key: Expected never but received "extra"');
});

test('half a million counts are checked by one loop that names the bad item', () => {
  const view = minimalView();
  const counts = new Array(500_000).fill(3);
  counts[123_456] = Number.NaN;
  const problem = check(codebookProtocol.requests.init.reply, { ...view, counts, order: counts.map((_, i) => i) }, 'result');
  assert.equal(problem, 'result.counts: Invalid item 123456: Expected a finite number but received NaN');
  const order = Array.from({ length: 10 }, (_, i) => i);
  order[4] = 2.5;
  assert.equal(check(codebookProtocol.requests.init.reply, { ...view, order }, 'result'), 'result.order: Invalid item 4: Expected an integer >= 0 but received 2.5');
  assert.equal(check(tokenGridProtocol.requests.decode.params, { ids: 'all' }, 'params'), 'params.ids: Invalid type: Expected an array of numbers but received "all"');
});

/** A webview endpoint of the Lab protocol, fed by hand. */
function labWebview() {
  const posted: Envelope[] = [];
  const rejected: string[] = [];
  const notified: unknown[] = [];
  const endpoint = new WebviewEndpoint(labProtocol, { cells: ({ cells }) => notified.push(cells) }, { post: (m) => posted.push(m), onReject: (r) => rejected.push(r) });
  return { endpoint, posted, rejected, notified };
}

test('the webview checks each reply against the descriptor of the request it answers', async () => {
  const { endpoint, posted, rejected } = labWebview();
  const init = endpoint.request('init');
  const run = endpoint.request('run', { kind: 'demo' });
  assert.deepEqual(posted, [
    { kind: 'request', id: 1, type: 'init', params: {} },
    { kind: 'request', id: 2, type: 'run', params: { kind: 'demo' } },
  ]);
  // `null` is run's reply, not init's (a list of cells): the request fails with the reason, loudly
  endpoint.receive({ kind: 'reply', id: 1, result: null });
  await assert.rejects(init, /^Error: malformed reply to init: result: Invalid type: Expected Array but received null$/);
  endpoint.receive({ kind: 'reply', id: 2, result: null });
  assert.equal(await run, null);
  endpoint.receive({ kind: 'reply', id: 2, result: null });
  assert.equal(rejected.at(-1), 'reply 2 answers no pending request');
  const failing = endpoint.request('open', { cell: 'x' });
  endpoint.receive({ kind: 'reply', id: 3, error: 'no Lab cell x' });
  await assert.rejects(failing, /no Lab cell x/);
});

test('the webview drops malformed notifications and inherited notification names', () => {
  const { endpoint, rejected, notified } = labWebview();
  endpoint.receive({ kind: 'notify', type: 'cells', params: { cells: [] } });
  assert.deepEqual(notified, [[]]);
  for (const type of ['__proto__', 'toString']) {
    endpoint.receive({ kind: 'notify', type, params: {} });
    assert.equal(rejected.at(-1), `notification type "${type}" is not one of cells`);
  }
  endpoint.receive({ kind: 'notify', type: 'cells', params: { cells: [{ id: 'a', kind: 'train', status: 'done' }] } });
  assert.match(rejected.at(-1)!, /^params\.cells\.0\.kind: Invalid type: Expected \("build" \| /);
  endpoint.receive({ kind: 'notify', type: 'cells', params: { cells: [] }, id: 4 });
  assert.equal(rejected.at(-1), 'message.id: Invalid key: Expected never but received "id"');
  endpoint.receive({ kind: 'request', id: 1, type: 'init', params: {} });
  assert.equal(rejected.at(-1), 'message.kind must be reply or notify');
  assert.equal(notified.length, 1, 'only the well-formed notification was handled');
});

test('replies find their request by id over an asynchronous channel that reorders them', async () => {
  let toHost: (m: Envelope) => void = () => undefined;
  let toWebview: (m: Envelope) => void = () => undefined;
  const rejected: string[] = [];
  const host = new HostEndpoint(
    codebookProtocol,
    {
      init: () => minimalView(),
      selectDataset: () => minimalView(),
      addTokensFile: () => null,
      reopenWith: () => null,
      tokenizeCorpus: () => null,
      codeDetail: async ({ code }) => {
        await new Promise((r) => setTimeout(r, Math.random() * 10));
        return { code, count: code * 10, share: 0, patches: [], neighbours: [] };
      },
    },
    { post: (m) => toWebview(m), onReject: (r) => rejected.push(r) },
  );
  const webview = new WebviewEndpoint(codebookProtocol, { datasets: () => undefined, fileChanged: () => undefined }, { post: (m) => toHost(m), onReject: (r) => rejected.push(r) });
  // asynchronous delivery, like postMessage: replies may overtake each other
  toHost = (m) => setTimeout(() => void host.receive(structuredClone(m)), Math.random() * 5);
  toWebview = (m) => setTimeout(() => webview.receive(structuredClone(m)), Math.random() * 5);
  const replies = await Promise.all([1, 2, 3, 4, 5].map((code) => webview.request('codeDetail', { code })));
  assert.deepEqual(replies.map((r) => r.count), [10, 20, 30, 40, 50]);
  assert.deepEqual(rejected, []);
});

test('generate requests: one of the four modes, mask cells as indices, settings with exactly their keys', () => {
  const settings = { decoder: 'atlas', scheduler: 'ddim', steps: 25, guidance: 7.5, temperature: 1, topK: 0, topP: 1, seed: 0, variations: 0.25, upscale: 2, classId: null, priorGuidance: 1 };
  const ok = { mode: 'inpaint', source: 'tokens:1#0', prior: 'prior:p', grid: null, mask: [3, 4, 17], settings };
  assert.equal(check(generateRequest, ok, 'params'), null);
  assert.match(check(generateRequest, { ...ok, mode: 'toString' }, 'params')!, /^params\.mode: Invalid type: Expected \("decode" \| "sample" \| "inpaint" \| "variations"\)/);
  assert.equal(check(generateRequest, { ...ok, mask: [3, -1] }, 'params'), 'params.mask: Invalid item 1: Expected an integer >= 0 but received -1');
  assert.match(check(generateRequest, { ...ok, settings: { ...settings, scheduler: 'pndm' } }, 'params')!, /^params\.settings\.scheduler: /);
  assert.match(check(generateRequest, { ...ok, settings: { ...settings, extra: 1 } }, 'params')!, /^params\.settings\.extra: /);
  assert.match(check(generateRequest, { ...ok, grid: [0, 4] }, 'params')!, /^params\.grid\.0: /);
  // an AR prior's class: a class number or null (the null class), never a name or a negative
  assert.equal(check(generateRequest, { ...ok, settings: { ...settings, classId: 3, priorGuidance: 4 } }, 'params'), null);
  assert.match(check(generateRequest, { ...ok, settings: { ...settings, classId: 'cat' } }, 'params')!, /^params\.settings\.classId: /);
  assert.match(check(generateRequest, { ...ok, settings: { ...settings, classId: -1 } }, 'params')!, /^params\.settings\.classId: /);
  assert.match(check(generateRequest, { ...ok, settings: { ...settings, priorGuidance: Infinity } }, 'params')!, /^params\.settings\.priorGuidance: /);
});

// The typed messages between the extension host (extension/panels/) and the webviews.
// Both sides import this module. Every message travels in an envelope: requests carry an id and
// are answered by exactly one reply with the same id; notifications carry none. Bodies are
// discriminated unions on `type`. Whatever arrives through postMessage is untrusted until
// `validate*` accepted it, so the validators live here beside the types they check.
// (Shape modelled on microsoft/vscode-hexeditor shared/protocol.ts.)

// ---------------------------------------------------------------------------------------------
// Shared data shapes

export interface CodebookSummary {
  file: string;
  k: number;
  d: number;
  encoder: string;
  lambda: number;
  iterations: number;
  fingerprint: string;
  atlas: string;
  /** statistics of the selected data set's counts */
  tokens: number;
  used: number;
  utilization: number;
  perplexity: number;
  dead: number;
}

export interface DatasetInfo {
  id: string;
  label: string;
}

export interface CodePatch {
  /** data: URI of the crop, upscaled for visibility */
  src: string;
  image: string;
  row: number;
  col: number;
}

export interface CodeNeighbour {
  code: number;
  distance: number;
  count: number;
}

export interface GenerationSource {
  id: string;
  label: string;
  grid: [number, number];
}

export type LabKind = 'build' | 'tokenize' | 'decode' | 'refine' | 'demo';
export type LabStatus = 'running' | 'done' | 'failed' | 'cancelled';

export interface LabCell {
  id: string;
  kind: LabKind;
  status: LabStatus;
  title: string;
  startedAt: string;
  finishedAt?: string;
  inputs: Record<string, string>;
  params: Record<string, string | number>;
  progress?: { done: number; total: number; message?: string };
  metrics?: Record<string, string | number>;
  /** small PNG data: URIs (kept with the workspace, so thumbnails only) */
  thumbnails?: string[];
  tokenPreview?: { grid: [number, number]; ids: number[] };
  files?: string[];
  error?: string;
}

// ---------------------------------------------------------------------------------------------
// Codebook panel

export interface CodebookData {
  summary: CodebookSummary;
  /** per-code counts of the selected data set, length K */
  counts: number[];
  /** heatmap cell -> code id (similar codes adjacent), a permutation of 0..K-1 */
  order: number[];
  datasets: DatasetInfo[];
  dataset: string;
  /** what the panel serializer needs to reopen this panel after a reload (kept in webview state) */
  restore: { file: string };
}

export type CodebookRequest =
  | { type: 'init' }
  | { type: 'selectDataset'; dataset: string }
  | { type: 'codeDetail'; code: number }
  | { type: 'addTokensFile' };

export type CodebookReply =
  | { type: 'codebook'; data: CodebookData }
  | {
      type: 'codeDetail';
      code: number;
      count: number;
      share: number;
      patches: CodePatch[];
      neighbours: CodeNeighbour[];
      note?: string;
    }
  | { type: 'datasets'; datasets: DatasetInfo[] };

export type CodebookNotification = { type: 'datasets'; datasets: DatasetInfo[] };

// ---------------------------------------------------------------------------------------------
// Token grid panel

export interface TokenGridData {
  imageLabel: string;
  /** data: URI of the image as the encoder saw it (resized to its input size) */
  image: string;
  grid: [number, number];
  ids: number[];
  distances?: number[];
  reconstruction: string;
  k: number;
  codebook: string;
  /** kept in webview state so the panel serializer can reopen it */
  restore: { codebook: string; image: string };
}

export type TokenGridRequest =
  | { type: 'init' }
  | { type: 'decode'; ids: number[] }
  | { type: 'openInGeneration'; ids: number[] };

export type TokenGridReply =
  | { type: 'tokenGrid'; data: TokenGridData }
  | { type: 'decoded'; reconstruction: string }
  | { type: 'ok' };

// ---------------------------------------------------------------------------------------------
// Generation panel

export interface GenerationResult {
  id: string;
  label: string;
  image: string;
  width: number;
  height: number;
}

export type GenerationRequest =
  | { type: 'init' }
  | { type: 'addTokensFile' }
  | { type: 'generate'; source: string; upscale: number }
  | { type: 'savePng'; result: string };

export type GenerationReply =
  | { type: 'generation'; sources: GenerationSource[]; codebook: string; results: GenerationResult[] }
  | { type: 'sources'; sources: GenerationSource[] }
  | { type: 'result'; result: GenerationResult }
  | { type: 'saved'; path: string | null };

export type GenerationNotification =
  | { type: 'sources'; sources: GenerationSource[] }
  | { type: 'progress'; done: number; total: number; message?: string };

// ---------------------------------------------------------------------------------------------
// Lab view

export type LabRequest =
  | { type: 'init' }
  | { type: 'run'; kind: LabKind }
  | { type: 'rerun'; cell: string }
  | { type: 'remove'; cell: string }
  | { type: 'open'; cell: string }
  | { type: 'cancel'; cell: string };

export type LabReply = { type: 'cells'; cells: LabCell[] } | { type: 'ok' };
export type LabNotification = { type: 'cells'; cells: LabCell[] };

// ---------------------------------------------------------------------------------------------
// Envelopes

export type ErrorReply = { type: 'error'; message: string };

export type Envelope<TBody> =
  | { kind: 'request'; id: number; body: TBody }
  | { kind: 'reply'; id: number; body: TBody | ErrorReply }
  | { kind: 'notify'; body: TBody };

/** What a panel's host and its webview exchange, per direction. */
export interface Channel<TRequest, TReply, TNotification> {
  request: TRequest;
  reply: TReply;
  notification: TNotification;
}

export type CodebookChannel = Channel<CodebookRequest, CodebookReply, CodebookNotification>;
export type TokenGridChannel = Channel<TokenGridRequest, TokenGridReply, never>;
export type GenerationChannel = Channel<GenerationRequest, GenerationReply, GenerationNotification>;
export type LabChannel = Channel<LabRequest, LabReply, LabNotification>;

// ---------------------------------------------------------------------------------------------
// Validation: a tiny schema language, enough for these messages.

type Check = (v: unknown, path: string) => string | null;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const str: Check = (v, p) => (typeof v === 'string' ? null : `${p} must be a string`);
const num: Check = (v, p) => (typeof v === 'number' && Number.isFinite(v) ? null : `${p} must be a finite number`);
const int: Check = (v, p) => (Number.isInteger(v) ? null : `${p} must be an integer`);
const nonNegInt: Check = (v, p) => (Number.isInteger(v) && (v as number) >= 0 ? null : `${p} must be an integer >= 0`);
const lit =
  (...values: string[]): Check =>
  (v, p) =>
    typeof v === 'string' && values.includes(v) ? null : `${p} must be one of ${values.join(', ')}`;
const opt =
  (c: Check): Check =>
  (v, p) =>
    v === undefined ? null : c(v, p);
const orNull =
  (c: Check): Check =>
  (v, p) =>
    v === null ? null : c(v, p);
const arr =
  (c: Check): Check =>
  (v, p) => {
    if (!Array.isArray(v)) return `${p} must be an array`;
    for (let i = 0; i < v.length; i++) {
      const e = c(v[i], `${p}[${i}]`);
      if (e) return e;
    }
    return null;
  };
/** A numeric array; checked with one typed loop because counts arrays hold up to 500,000 entries. */
const numArr =
  (integer: boolean): Check =>
  (v, p) => {
    if (!Array.isArray(v)) return `${p} must be an array of numbers`;
    for (let i = 0; i < v.length; i++) {
      const x = v[i];
      if (typeof x !== 'number' || !Number.isFinite(x) || (integer && !Number.isInteger(x))) {
        return `${p}[${i}] must be ${integer ? 'an integer' : 'a finite number'}`;
      }
    }
    return null;
  };
const pair: Check = (v, p) =>
  Array.isArray(v) && v.length === 2 && v.every((x) => Number.isInteger(x) && x > 0) ? null : `${p} must be [rows, cols] of positive integers`;
const record =
  (c: Check): Check =>
  (v, p) => {
    if (!isObj(v)) return `${p} must be an object`;
    for (const [key, value] of Object.entries(v)) {
      const e = c(value, `${p}.${key}`);
      if (e) return e;
    }
    return null;
  };
const union =
  (...cs: Check[]): Check =>
  (v, p) =>
    cs.some((c) => c(v, p) === null) ? null : `${p} has the wrong type`;
const obj =
  (fields: Record<string, Check>): Check =>
  (v, p) => {
    if (!isObj(v)) return `${p} must be an object`;
    for (const [key, check] of Object.entries(fields)) {
      const e = check(v[key], `${p}.${key}`);
      if (e) return e;
    }
    return null;
  };
/** A discriminated union on `type`: picks the variant's fields by its tag. */
const tagged =
  (variants: Record<string, Record<string, Check>>): Check =>
  (v, p) => {
    if (!isObj(v) || typeof v.type !== 'string') return `${p}.type is missing`;
    const fields = variants[v.type];
    if (!fields) return `${p}.type "${v.type}" is not a known message`;
    return obj(fields)(v, p);
  };

const summary = obj({
  file: str, k: nonNegInt, d: nonNegInt, encoder: str, lambda: num, iterations: nonNegInt, fingerprint: str, atlas: str,
  tokens: num, used: nonNegInt, utilization: num, perplexity: num, dead: nonNegInt,
});
const datasets = arr(obj({ id: str, label: str }));
const sources = arr(obj({ id: str, label: str, grid: pair }));
const genResult = obj({ id: str, label: str, image: str, width: nonNegInt, height: nonNegInt });
const labKind = lit('build', 'tokenize', 'decode', 'refine', 'demo');
const labCell = obj({
  id: str, kind: labKind, status: lit('running', 'done', 'failed', 'cancelled'), title: str, startedAt: str,
  finishedAt: opt(str), inputs: record(str), params: record(union(str, num)),
  progress: opt(obj({ done: num, total: num, message: opt(str) })), metrics: opt(record(union(str, num))),
  thumbnails: opt(arr(str)), tokenPreview: opt(obj({ grid: pair, ids: numArr(true) })), files: opt(arr(str)), error: opt(str),
});
const progress = { done: num, total: num, message: opt(str) };
const error = { message: str };

const bodies = {
  codebook: {
    request: tagged({ init: {}, selectDataset: { dataset: str }, codeDetail: { code: nonNegInt }, addTokensFile: {} }),
    reply: tagged({
      codebook: { data: obj({ summary, counts: numArr(false), order: numArr(true), datasets, dataset: str, restore: obj({ file: str }) }) },
      codeDetail: {
        code: nonNegInt, count: num, share: num, note: opt(str),
        patches: arr(obj({ src: str, image: str, row: nonNegInt, col: nonNegInt })),
        neighbours: arr(obj({ code: nonNegInt, distance: num, count: num })),
      },
      datasets: { datasets },
      error,
    }),
    notification: tagged({ datasets: { datasets } }),
  },
  tokenGrid: {
    request: tagged({ init: {}, decode: { ids: numArr(true) }, openInGeneration: { ids: numArr(true) } }),
    reply: tagged({
      tokenGrid: {
        data: obj({
          imageLabel: str, image: str, grid: pair, ids: numArr(true), distances: opt(numArr(false)),
          reconstruction: str, k: nonNegInt, codebook: str, restore: obj({ codebook: str, image: str }),
        }),
      },
      decoded: { reconstruction: str },
      ok: {},
      error,
    }),
    notification: tagged({}),
  },
  generation: {
    request: tagged({ init: {}, addTokensFile: {}, generate: { source: str, upscale: nonNegInt }, savePng: { result: str } }),
    reply: tagged({
      generation: { sources, codebook: str, results: arr(genResult) },
      sources: { sources },
      result: { result: genResult },
      saved: { path: orNull(str) },
      error,
    }),
    notification: tagged({ sources: { sources }, progress }),
  },
  lab: {
    request: tagged({
      init: {}, run: { kind: labKind }, rerun: { cell: str }, remove: { cell: str }, open: { cell: str }, cancel: { cell: str },
    }),
    reply: tagged({ cells: { cells: arr(labCell) }, ok: {}, error }),
    notification: tagged({ cells: { cells: arr(labCell) } }),
  },
} satisfies Record<string, { request: Check; reply: Check; notification: Check }>;

export type PanelName = keyof typeof bodies;

/**
 * Checks an incoming envelope. `side` says who receives it: the host receives requests, the
 * webview receives replies and notifications. Returns an error string, or null when valid.
 */
export function validateEnvelope(panel: PanelName, side: 'host' | 'webview', message: unknown): string | null {
  if (!isObj(message)) return 'message must be an object';
  const b = bodies[panel];
  switch (message.kind) {
    case 'request':
      if (side !== 'host') return 'the webview does not accept requests';
      return int(message.id, 'id') ?? b.request(message.body, 'body');
    case 'reply':
      if (side !== 'webview') return 'the host does not accept replies';
      return int(message.id, 'id') ?? b.reply(message.body, 'body');
    case 'notify':
      if (side !== 'webview') return 'the host does not accept notifications';
      return b.notification(message.body, 'body');
    default:
      return 'message.kind must be request, reply or notify';
  }
}

// ---------------------------------------------------------------------------------------------
// The endpoint both sides use: validates what arrives, matches replies to requests by id.

export interface EndpointOptions<TIn> {
  panel: PanelName;
  side: 'host' | 'webview';
  post: (envelope: Envelope<unknown>) => void;
  /** the host answers requests here; the webview handles notifications here */
  onMessage: (body: TIn) => Promise<unknown> | unknown;
  /** a malformed message was dropped */
  onReject: (reason: string, message: unknown) => void;
}

export class Endpoint<TOut, TIn> {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(private readonly opts: EndpointOptions<TIn>) {}

  /** Sends a request and waits for its reply; an error reply rejects. */
  request<TReply>(body: TOut): Promise<TReply> {
    const id = this.nextId++;
    return new Promise<TReply>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.opts.post({ kind: 'request', id, body });
    });
  }

  notify(body: TOut): void {
    this.opts.post({ kind: 'notify', body });
  }

  /** Feed every message that arrives from the other side through here. */
  async receive(message: unknown): Promise<void> {
    const problem = validateEnvelope(this.opts.panel, this.opts.side, message);
    if (problem) {
      this.opts.onReject(problem, message);
      return;
    }
    const envelope = message as Envelope<TIn>;
    if (envelope.kind === 'reply') {
      const waiter = this.pending.get(envelope.id);
      if (!waiter) {
        this.opts.onReject(`reply ${envelope.id} answers no pending request`, message);
        return;
      }
      this.pending.delete(envelope.id);
      const body = envelope.body as { type: string; message?: string };
      if (body.type === 'error') waiter.reject(new Error(body.message));
      else waiter.resolve(body);
      return;
    }
    if (envelope.kind === 'notify') {
      await this.opts.onMessage(envelope.body);
      return;
    }
    try {
      const reply = await this.opts.onMessage(envelope.body);
      this.opts.post({ kind: 'reply', id: envelope.id, body: reply });
    } catch (err) {
      const text = err instanceof Error ? err.message : String(err);
      this.opts.post({ kind: 'reply', id: envelope.id, body: { type: 'error', message: text } });
    }
  }
}

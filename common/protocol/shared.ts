// The machinery every panel's protocol is built from (the panels' own messages live beside this
// file, one module each). A protocol is a set of descriptors: each request names the schema of its
// parameters and the schema of its reply, so the reply type is fixed by the descriptor, never
// chosen by the caller; each notification (host -> webview) names the schema of its parameters.
// The TypeScript types are derived from those runtime schemas (valibot), so a message shape is
// written once. Whatever arrives through postMessage is untrusted until its schema accepted it:
// the host checks requests, the webview checks replies and notifications.
//
// Wire format (structured-cloned by postMessage):
//   request  {kind: 'request', id, type, params}     webview -> host
//   reply    {kind: 'reply', id, result} | {kind: 'reply', id, error}   host -> webview
//   notify   {kind: 'notify', type, params}          host -> webview
import * as v from 'valibot';
import { UserError } from '../errors.js';

/** Any synchronous valibot schema. */
export type Schema = v.GenericSchema;
/** What a schema accepts (for layers that must not import valibot themselves). */
export type Infer<S extends Schema> = v.InferOutput<S>;

// ---------------------------------------------------------------------------------------------
// Building blocks for message schemas

/** Plain data only: an object whose prototype is Object.prototype (or null). A message can never
 *  smuggle fields in through a prototype, and class instances are not messages. */
function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return false;
  const proto: unknown = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

/** Any plain object; the schemas below narrow it. */
export const plainObject = v.custom<Record<string, unknown>>(isPlainObject, 'Invalid type: Expected a plain object');

/**
 * An object with exactly these keys. Extra keys are rejected (valibot's strictObject; an own
 * `__proto__` key is an extra key too), and so is anything that is not a plain object, since
 * strictObject alone would accept a field inherited from a prototype.
 */
export function message<const E extends v.ObjectEntries>(entries: E) {
  return v.pipe(plainObject, v.strictObject(entries));
}

export const text = v.string();
export const finite = v.pipe(v.number(), v.finite());
/** An integer >= 0 (a code id, a count, an index). */
export const index = v.pipe(v.number(), v.safeInteger(), v.minValue(0));
export const positive = v.pipe(v.number(), v.safeInteger(), v.minValue(1));
/** A token grid's shape, [rows, cols]. */
export const gridShape = v.tuple([positive, positive]);

/** A string-keyed table of plain data (keys such as `__proto__` are dropped by valibot's record). */
export function dictionary<const S extends Schema>(value: S) {
  return v.pipe(plainObject, v.record(v.string(), value));
}

/**
 * A numeric array checked by one tight loop: counts and orders hold up to 500,000 entries, where a
 * per-item schema costs tens of milliseconds. The message names the first bad item.
 */
export function numbers(kind: 'finite' | 'index') {
  const ok = kind === 'finite' ? Number.isFinite : (x: number) => Number.isSafeInteger(x) && x >= 0;
  const firstBad = (a: unknown[]): number => {
    for (let i = 0; i < a.length; i++) {
      const x = a[i];
      if (typeof x !== 'number' || !ok(x)) return i;
    }
    return -1;
  };
  const expected = kind === 'finite' ? 'a finite number' : 'an integer >= 0';
  return v.custom<number[]>(
    (x) => Array.isArray(x) && firstBad(x) < 0,
    (issue) =>
      Array.isArray(issue.input)
        ? `Invalid item ${firstBad(issue.input)}: Expected ${expected} but received ${String(issue.input[firstBad(issue.input)])}`
        : `Invalid type: Expected an array of numbers but received ${issue.received}`,
  );
}

// ---------------------------------------------------------------------------------------------
// Descriptors

export interface RequestType<P extends Schema = Schema, R extends Schema = Schema> {
  readonly params: P;
  readonly reply: R;
}

/** A request's descriptor: the schema of its parameters and the schema of its reply. */
export function request<P extends Schema, R extends Schema>(params: P, reply: R): RequestType<P, R> {
  return { params, reply };
}

/** The parameters of a request that takes none. */
export const noParams = message({});

export interface Protocol<Q extends Record<string, RequestType>, N extends Record<string, Schema>> {
  /** names the panel in logs */
  readonly name: string;
  /** webview -> host, each answered by one reply */
  readonly requests: Q;
  /** host -> webview, unanswered */
  readonly notifications: N;
}

export function protocol<const Q extends Record<string, RequestType>, const N extends Record<string, Schema>>(
  name: string,
  requests: Q,
  notifications: N,
): Protocol<Q, N> {
  return { name, requests, notifications };
}

/** The widest protocol, for constraints (`any`: a descriptor's schemas vary in both directions). */
export type AnyProtocol = Protocol<Record<string, RequestType<any, any>>, Record<string, Schema>>;
export type RequestName<P extends AnyProtocol> = keyof P['requests'] & string;
export type Params<P extends AnyProtocol, K extends RequestName<P>> = v.InferOutput<P['requests'][K]['params']>;
export type Reply<P extends AnyProtocol, K extends RequestName<P>> = v.InferOutput<P['requests'][K]['reply']>;
export type NotificationName<P extends AnyProtocol> = keyof P['notifications'] & string;
export type NotificationParams<P extends AnyProtocol, K extends NotificationName<P>> = v.InferOutput<P['notifications'][K]>;

/** The host's side of a protocol: one handler per request, its return type checked against the
 *  descriptor's reply schema. A thrown error becomes an error reply. */
export type Handlers<P extends AnyProtocol> = {
  [K in RequestName<P>]: (params: Params<P, K>) => Promise<Reply<P, K>> | Reply<P, K>;
};

/** The webview's side of a protocol's notifications. */
export type NotificationHandlers<P extends AnyProtocol> = {
  [K in NotificationName<P>]: (params: NotificationParams<P, K>) => void;
};

// ---------------------------------------------------------------------------------------------
// Envelopes

const messageId = v.pipe(v.number(), v.safeInteger(), v.minValue(1));
const requestEnvelope = message({ kind: v.literal('request'), id: messageId, type: text, params: v.unknown() });
const resultEnvelope = message({ kind: v.literal('reply'), id: messageId, result: v.unknown() });
const errorEnvelope = message({ kind: v.literal('reply'), id: messageId, error: text });
const notifyEnvelope = message({ kind: v.literal('notify'), type: text, params: v.unknown() });

export type RequestEnvelope = v.InferOutput<typeof requestEnvelope>;
export type ReplyEnvelope = v.InferOutput<typeof resultEnvelope> | v.InferOutput<typeof errorEnvelope>;
export type NotifyEnvelope = v.InferOutput<typeof notifyEnvelope>;
export type Envelope = RequestEnvelope | ReplyEnvelope | NotifyEnvelope;

/** One line naming where a value failed its schema and why, e.g. `params.code: Invalid value: …`. */
function problem(where: string, issues: readonly v.BaseIssue<unknown>[]): string {
  const first = issues[0]!;
  const path = v.getDotPath(first);
  return `${where}${path ? `.${path}` : ''}: ${first.message}`;
}

/** `value` as the schema's output, or the one line that says what is wrong with it. */
export function checked<S extends Schema>(schema: S, value: unknown, where: string): { ok: true; value: Infer<S> } | { ok: false; problem: string } {
  const result = v.safeParse(schema, value, { abortEarly: true });
  return result.success ? { ok: true, value: result.output } : { ok: false, problem: problem(where, result.issues) };
}

/** Validates `value`; returns the error line, or null when it is valid. */
export function check(schema: Schema, value: unknown, where: string): string | null {
  const result = checked(schema, value, where);
  return result.ok ? null : result.problem;
}

/** Own keys only: `toString` or `__proto__` are found on every object, and are no message type. */
function lookup<T>(table: Record<string, T>, type: string): T | undefined {
  return Object.hasOwn(table, type) ? table[type] : undefined;
}

const unknownType = (what: string, type: string, table: object): string => {
  const known = Object.keys(table);
  return known.length ? `${what} type "${type}" is not one of ${known.join(', ')}` : `${what} type "${type}": this panel takes no ${what}s`;
};

export interface EndpointIo {
  /** sends an envelope to the other side (postMessage) */
  post(envelope: Envelope): void;
  /** a malformed message was dropped: what was wrong, and the message itself */
  onReject(reason: string, message: unknown): void;
}

export interface HostIo extends EndpointIo {
  /** a handler threw: the webview gets an error reply with its message */
  onError?(type: string, error: unknown): void;
}

// ---------------------------------------------------------------------------------------------
// Endpoints

/** The extension host's end of a panel's connection: answers requests, sends notifications. */
export class HostEndpoint<P extends AnyProtocol> {
  constructor(
    private readonly protocol: P,
    private readonly handlers: Handlers<P>,
    private readonly io: HostIo,
  ) {}

  notify<K extends NotificationName<P>>(type: K, params: NotificationParams<P, K>): void {
    this.io.post({ kind: 'notify', type, params });
  }

  /** Feed every message that arrives from the webview through here. */
  async receive(raw: unknown): Promise<void> {
    const envelope = v.safeParse(requestEnvelope, raw, { abortEarly: true });
    if (!envelope.success) return this.io.onReject(problem('message', envelope.issues), raw);
    const { id, type, params } = envelope.output;
    const descriptor = lookup(this.protocol.requests, type);
    if (!descriptor) return this.io.onReject(unknownType('request', type, this.protocol.requests), raw);
    const parsed = v.safeParse(descriptor.params, params, { abortEarly: true });
    if (!parsed.success) {
      // answered, so the webview's request does not wait forever
      const reason = problem('params', parsed.issues);
      this.io.onReject(reason, raw);
      return this.io.post({ kind: 'reply', id, error: `malformed ${type} request: ${reason}` });
    }
    const handler = this.handlers[type as RequestName<P>] as (p: unknown) => unknown;
    try {
      this.io.post({ kind: 'reply', id, result: await handler(parsed.output) });
    } catch (err) {
      this.io.onError?.(type, err);
      // a UserError as VS Code words it: webviews live in VS Code (common/errors.ts)
      this.io.post({ kind: 'reply', id, error: err instanceof UserError ? err.text('vscode') : err instanceof Error ? err.message : String(err) });
    }
  }
}

interface Pending {
  type: string;
  reply: Schema;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

/** Params as arguments: optional for a request that takes none. */
type ParamsArg<P extends AnyProtocol, K extends RequestName<P>> = object extends Params<P, K> ? [params?: Params<P, K>] : [params: Params<P, K>];

/** The webview's end: sends requests and checks their replies, receives notifications. */
export class WebviewEndpoint<P extends AnyProtocol> {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(
    private readonly protocol: P,
    private readonly handlers: NotificationHandlers<P>,
    private readonly io: EndpointIo,
  ) {}

  /** Sends a request; resolves to its reply (checked against the descriptor), rejects on an error reply. */
  request<K extends RequestName<P>>(type: K, ...[params]: ParamsArg<P, K>): Promise<Reply<P, K>> {
    const id = this.nextId++;
    const { reply } = this.protocol.requests[type]!;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { type, reply, resolve: resolve as (value: unknown) => void, reject });
      this.io.post({ kind: 'request', id, type, params: params ?? {} });
    });
  }

  /** Feed every message that arrives from the host through here. */
  receive(raw: unknown): void {
    const kind = typeof raw === 'object' && raw !== null ? (raw as { kind?: unknown }).kind : undefined;
    if (kind === 'notify') return this.receiveNotification(raw);
    const envelope = v.safeParse(v.union([resultEnvelope, errorEnvelope]), raw, { abortEarly: true });
    if (!envelope.success) return this.io.onReject(kind === 'reply' ? problem('message', envelope.issues) : 'message.kind must be reply or notify', raw);
    const waiter = this.pending.get(envelope.output.id);
    if (!waiter) return this.io.onReject(`reply ${envelope.output.id} answers no pending request`, raw);
    this.pending.delete(envelope.output.id);
    if ('error' in envelope.output) return waiter.reject(new Error(envelope.output.error));
    const result = v.safeParse(waiter.reply, envelope.output.result, { abortEarly: true });
    if (result.success) return waiter.resolve(result.output);
    const reason = problem('result', result.issues);
    this.io.onReject(reason, raw);
    waiter.reject(new Error(`malformed reply to ${waiter.type}: ${reason}`));
  }

  private receiveNotification(raw: unknown): void {
    const envelope = v.safeParse(notifyEnvelope, raw, { abortEarly: true });
    if (!envelope.success) return this.io.onReject(problem('message', envelope.issues), raw);
    const { type, params } = envelope.output;
    const schema = lookup(this.protocol.notifications, type);
    if (!schema) return this.io.onReject(unknownType('notification', type, this.protocol.notifications), raw);
    const parsed = v.safeParse(schema, params, { abortEarly: true });
    if (!parsed.success) return this.io.onReject(problem('params', parsed.issues), raw);
    (this.handlers[type as NotificationName<P>] as (p: unknown) => void)(parsed.output);
  }
}

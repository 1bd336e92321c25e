// A minimal ONNX ModelProto writer. The engine builds its compute graphs (nearest-code search,
// test encoders...) in-process and hands the bytes to onnxruntime's InferenceSession.create, so
// no Python export step and no protobuf dependency are needed: the handful of ONNX messages used
// here are encoded by hand (protobuf wire format: varints and length-delimited fields).
//
// Field numbers follow onnx/onnx.proto3 (IR version 8).
//
//   const g = new GraphBuilder('nearest');
//   g.input('q', 'float32', ['N', 768]);
//   g.initializer('c', { type: 'float32', dims: [k, 768], data });
//   g.node('Gemm', ['q', 'c', 'norms'], ['scores'], { transB: 1, alpha: float(-2) });
//   g.output('scores', 'float32', ['N', k]);
//   const bytes = g.toModel();

export type ElemType = 'float32' | 'uint8' | 'int8' | 'int32' | 'int64' | 'string' | 'bool' | 'float16' | 'float64';

/** A dimension: a fixed size, or a symbolic name (dim_param) for sizes known only at run time. */
export type Dim = number | string;

export type TensorValue =
  | { type: 'float32'; dims: number[]; data: Float32Array }
  | { type: 'float16'; dims: number[]; data: Uint16Array /* IEEE half bit patterns */ }
  | { type: 'float64'; dims: number[]; data: Float64Array }
  | { type: 'int32'; dims: number[]; data: Int32Array }
  | { type: 'int64'; dims: number[]; data: BigInt64Array }
  | { type: 'uint8'; dims: number[]; data: Uint8Array }
  | { type: 'int8'; dims: number[]; data: Int8Array };

/** Forces FLOAT / FLOATS attribute types: a JS number alone cannot say whether -2 is an int. */
export interface FloatAttr { kind: 'float'; value: number }
export interface FloatsAttr { kind: 'floats'; value: number[] }
export const float = (value: number): FloatAttr => ({ kind: 'float', value });
export const floats = (value: number[]): FloatsAttr => ({ kind: 'floats', value });

/**
 * Attribute values: an integer `number` -> INT, `number[]` of integers -> INTS (a non-integer
 * number is rejected rather than guessed: wrap floats with `float()` / `floats()`),
 * `string` -> STRING, a TensorValue -> TENSOR.
 */
export type AttributeValue = number | number[] | string | FloatAttr | FloatsAttr | TensorValue;

const DATA_TYPE: Record<ElemType, number> = {
  float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, string: 8, bool: 9, float16: 10, float64: 11,
};

const ATTR_FLOAT = 1, ATTR_INT = 2, ATTR_STRING = 3, ATTR_TENSOR = 4, ATTR_FLOATS = 6, ATTR_INTS = 7;

const WIRE_VARINT = 0, WIRE_FIXED32 = 5, WIRE_LEN = 2;

const utf8 = new TextEncoder();

/**
 * One protobuf message under construction. Kept as a list of byte pieces rather than one growing
 * buffer, so that large raw_data payloads (codebook chunks of 100+ MB) are referenced, not copied,
 * until the final flatten in toModel().
 */
class Message {
  readonly parts: Uint8Array[] = [];
  length = 0;
  private scratch: number[] = [];

  private flushScratch(): void {
    if (this.scratch.length === 0) return;
    this.pushBytes(Uint8Array.from(this.scratch));
    this.scratch = [];
  }

  private pushBytes(bytes: Uint8Array): void {
    this.parts.push(bytes);
    this.length += bytes.length;
  }

  private varint(value: number | bigint): void {
    // int64 fields encode negatives as their 64-bit two's complement (10 bytes).
    if (typeof value === 'number' && !Number.isSafeInteger(value)) {
      throw new Error(`onnx graph: ${value} is not an integer`);
    }
    let v = BigInt.asUintN(64, BigInt(value));
    while (v >= 0x80n) {
      this.scratch.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.scratch.push(Number(v));
  }

  private tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  int(field: number, value: number | bigint): void {
    this.tag(field, WIRE_VARINT);
    this.varint(value);
  }

  float32(field: number, value: number): void {
    this.tag(field, WIRE_FIXED32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.scratch.push(...b);
  }

  bytes(field: number, payload: Uint8Array): void {
    this.tag(field, WIRE_LEN);
    this.varint(payload.length);
    this.flushScratch();
    this.pushBytes(payload);
  }

  string(field: number, s: string): void {
    this.bytes(field, utf8.encode(s));
  }

  message(field: number, m: Message): void {
    m.flushScratch();
    this.tag(field, WIRE_LEN);
    this.varint(m.length);
    this.flushScratch();
    for (const p of m.parts) this.pushBytes(p);
  }

  /** packed repeated int64 */
  packedInts(field: number, values: readonly (number | bigint)[]): void {
    const inner = new Message();
    for (const v of values) inner.varint(v);
    this.message(field, inner);
  }

  /** packed repeated float */
  packedFloats(field: number, values: readonly number[]): void {
    const f = new Float32Array(values);
    this.bytes(field, littleEndianBytes(f));
  }

  toBytes(): Uint8Array {
    this.flushScratch();
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

// ONNX raw_data is little-endian; so is every platform Node ships prebuilt onnxruntime for.
function littleEndianBytes(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Where an initializer's bytes live when they are kept outside the model file. */
interface ExternalPlacement {
  location: string;
  offset: number;
  length: number;
}

function tensorMessage(name: string, t: TensorValue, external?: ExternalPlacement): Message {
  const expected = t.dims.reduce((a, b) => a * b, 1);
  if (t.data.length !== expected) {
    throw new Error(`onnx graph: tensor '${name}' has ${t.data.length} values for dims [${t.dims.join(', ')}]`);
  }
  const m = new Message();
  for (const d of t.dims) m.int(1, d); // dims (unpacked is always accepted by parsers)
  m.int(2, DATA_TYPE[t.type]);
  if (name) m.string(8, name);
  if (!external) {
    m.bytes(9, littleEndianBytes(t.data));
    return m;
  }
  // external_data (13): StringStringEntryProto {key = 1, value = 2}; data_location (14) = EXTERNAL
  for (const [key, value] of [['location', external.location], ['offset', String(external.offset)], ['length', String(external.length)]]) {
    const entry = new Message();
    entry.string(1, key!);
    entry.string(2, value!);
    m.message(13, entry);
  }
  m.int(14, 1);
  return m;
}

function isTensorValue(v: AttributeValue): v is TensorValue {
  return typeof v === 'object' && !Array.isArray(v) && 'dims' in v;
}

function attributeMessage(name: string, value: AttributeValue): Message {
  const m = new Message();
  m.string(1, name);
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error(`onnx graph: attribute '${name}' = ${value}: wrap floats in float()`);
    m.int(3, value);
    m.int(20, ATTR_INT);
  } else if (typeof value === 'string') {
    m.string(4, value);
    m.int(20, ATTR_STRING);
  } else if (Array.isArray(value)) {
    if (!value.every(Number.isInteger)) throw new Error(`onnx graph: attribute '${name}' has non-integers: wrap floats in floats()`);
    m.packedInts(8, value);
    m.int(20, ATTR_INTS);
  } else if (isTensorValue(value)) {
    m.message(5, tensorMessage('', value));
    m.int(20, ATTR_TENSOR);
  } else if (value.kind === 'float') {
    m.float32(2, value.value);
    m.int(20, ATTR_FLOAT);
  } else {
    m.packedFloats(7, value.value);
    m.int(20, ATTR_FLOATS);
  }
  return m;
}

function valueInfoMessage(name: string, type: ElemType, shape: readonly Dim[]): Message {
  const shapeMsg = new Message();
  for (const d of shape) {
    const dim = new Message();
    if (typeof d === 'number') dim.int(1, d);
    else dim.string(2, d);
    shapeMsg.message(1, dim);
  }
  const tensorType = new Message();
  tensorType.int(1, DATA_TYPE[type]);
  tensorType.message(2, shapeMsg);
  const typeProto = new Message();
  typeProto.message(1, tensorType);
  const m = new Message();
  m.string(1, name);
  m.message(2, typeProto);
  return m;
}

export interface ModelOptions {
  /** default-domain opset; 17 covers every op the engine uses */
  opset?: number;
  /** extra operator sets, e.g. { 'com.microsoft': 1 } */
  opsets?: Record<string, number>;
  producer?: string;
}

export class GraphBuilder {
  private readonly graph = new Message();
  private readonly names = new Set<string>();
  private nodeCount = 0;
  private readonly external = new Map<string, Uint8Array[]>();

  constructor(name: string) {
    this.graph.string(2, name);
  }

  /** declares a graph input (fed at run time) */
  input(name: string, type: ElemType, shape: readonly Dim[]): this {
    this.graph.message(11, valueInfoMessage(name, type, shape));
    return this;
  }

  /** declares a graph output */
  output(name: string, type: ElemType, shape: readonly Dim[]): this {
    this.graph.message(12, valueInfoMessage(name, type, shape));
    return this;
  }

  /** a constant baked into the model (weights, codebook chunks); with `externalFile`, its bytes
   *  go to that file beside the model instead (as large exports keep their weights): see
   *  externalData() */
  initializer(name: string, tensor: TensorValue, externalFile?: string): this {
    if (!externalFile) {
      this.graph.message(5, tensorMessage(name, tensor));
      return this;
    }
    const parts = this.external.get(externalFile) ?? [];
    const offset = parts.reduce((s, p) => s + p.length, 0);
    const bytes = littleEndianBytes(tensor.data).slice();
    parts.push(bytes);
    this.external.set(externalFile, parts);
    this.graph.message(5, tensorMessage(name, tensor, { location: externalFile, offset, length: bytes.length }));
    return this;
  }

  /** the contents of each external data file named by initializer(..., externalFile) */
  externalData(): Map<string, Uint8Array> {
    const files = new Map<string, Uint8Array>();
    for (const [file, parts] of this.external) {
      const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
      let o = 0;
      for (const p of parts) {
        out.set(p, o);
        o += p.length;
      }
      files.set(file, out);
    }
    return files;
  }

  node(opType: string, inputs: readonly string[], outputs: readonly string[],
       attributes: Record<string, AttributeValue> = {}, opts: { name?: string; domain?: string } = {}): this {
    const m = new Message();
    for (const i of inputs) m.string(1, i); // '' marks an omitted optional input
    for (const o of outputs) m.string(2, o);
    const nodeName = opts.name ?? `${opType}_${this.nodeCount++}`;
    if (this.names.has(nodeName)) throw new Error(`onnx graph: duplicate node name '${nodeName}'`);
    this.names.add(nodeName);
    m.string(3, nodeName);
    m.string(4, opType);
    for (const [k, v] of Object.entries(attributes)) m.message(5, attributeMessage(k, v));
    if (opts.domain) m.string(7, opts.domain);
    this.graph.message(1, m);
    return this;
  }

  /** serializes the ModelProto; the result is what InferenceSession.create accepts */
  toModel(opts: ModelOptions = {}): Uint8Array {
    const model = new Message();
    model.int(1, 8); // ir_version
    model.string(2, opts.producer ?? 'unicode2-studio');
    const opsets: [string, number][] = [['', opts.opset ?? 17], ...Object.entries(opts.opsets ?? {})];
    for (const [domain, version] of opsets) {
      const o = new Message();
      if (domain) o.string(1, domain);
      o.int(2, version);
      model.message(8, o);
    }
    model.message(7, this.graph);
    return model.toBytes();
  }
}

// A small seeded generator of hostile variants of valid files, for the property tests of the
// parsers (test/fuzz/parsers.test.ts): byte-level mutations (bit flips, truncation, insertion,
// deletion, length fields overwritten with extreme integers), text-level ones (numbers replaced
// by extreme or malformed ones, punctuation swapped) and structural JSON ones (values replaced by
// other types and extremes, keys dropped or added). Seeded, so a failure names a case that can be
// replayed exactly.
import { seededRandom } from '../../extension/engine/core/sampling.js';

/** Integers that break naive length and size arithmetic. */
const EXTREME_INTS = [0, 1, 2, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 53 - 1, 2 ** 53];
const EXTREME_NUMBER_TEXT = ['-1', '0', '1', '1.5', '1e309', '-0', '99999999999999999999', '4294967296', '2147483648', '0x10', 'NaN', 'Infinity', '', '3L', '1_000'];
const PUNCTUATION = ["'", '"', '(', ')', ',', ':', '{', '}', '[', ']', ' ', '\n', '\0', '\\'];

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export class Mutator {
  private readonly random: () => number;

  constructor(readonly seed: number) {
    this.random = seededRandom(seed);
  }

  int(n: number): number {
    return Math.floor(this.random() * n);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  chance(p: number): boolean {
    return this.random() < p;
  }

  /** 1 to 3 random byte-level mutations of `original` (which is not modified). `hot` bytes at the
   *  start (a header) are chosen more often, where a single change matters most. */
  bytes(original: Uint8Array, hot = 64): Uint8Array {
    let b: Uint8Array = Uint8Array.from(original);
    const at = () => (this.chance(0.6) && b.length > 0 ? this.int(Math.min(hot, b.length)) : this.int(Math.max(1, b.length)));
    for (let n = 1 + this.int(3); n > 0; n--) {
      switch (this.int(7)) {
        case 0: // flip one bit
          if (b.length) b[at()]! ^= 1 << this.int(8);
          break;
        case 1: // a byte that means something to a parser
          if (b.length) b[at()] = this.pick([0, 0xff, 0x7f, 0x80, ...PUNCTUATION.map((c) => c.charCodeAt(0)), 0x30 + this.int(10)]);
          break;
        case 2: // truncate
          b = b.subarray(0, this.int(b.length + 1));
          break;
        case 3: { // insert random bytes
          const pos = at();
          const extra = Uint8Array.from({ length: 1 + this.int(16) }, () => this.int(256));
          b = concat(b.subarray(0, pos), extra, b.subarray(pos));
          break;
        }
        case 4: { // delete a slice
          const pos = at();
          b = concat(b.subarray(0, pos), b.subarray(Math.min(b.length, pos + 1 + this.int(16))));
          break;
        }
        case 5: { // an extreme little-endian integer over 2, 4 or 8 bytes (length fields)
          const width = this.pick([2, 4, 8]);
          const pos = at();
          if (pos + width <= b.length) {
            const v = BigInt(this.pick(EXTREME_INTS)) * (this.chance(0.2) ? 2n ** 11n : 1n);
            const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
            if (width === 2) view.setUint16(pos, Number(v & 0xffffn), true);
            else if (width === 4) view.setUint32(pos, Number(v & 0xffffffffn), true);
            else view.setBigUint64(pos, v, true);
          }
          break;
        }
        default: { // duplicate a slice
          const pos = at();
          b = concat(b.subarray(0, pos), b.subarray(pos, pos + 1 + this.int(32)), b.subarray(pos));
        }
      }
    }
    return b;
  }

  /** 1 to 3 text-level mutations: a number replaced by an extreme or malformed one, punctuation
   *  inserted or swapped, a range deleted. */
  text(original: string): string {
    let t = original;
    for (let n = 1 + this.int(3); n > 0; n--) {
      const numbers = [...t.matchAll(/-?\d+(\.\d+)?/g)];
      const choice = this.int(3);
      if (choice === 0 && numbers.length) {
        const m = this.pick(numbers);
        t = t.slice(0, m.index) + this.pick(EXTREME_NUMBER_TEXT) + t.slice(m.index! + m[0].length);
      } else if (choice === 1) {
        const pos = this.int(t.length + 1);
        t = t.slice(0, pos) + this.pick(PUNCTUATION) + t.slice(pos + (this.chance(0.5) ? 1 : 0));
      } else {
        const pos = this.int(t.length + 1);
        t = t.slice(0, pos) + t.slice(pos + 1 + this.int(8));
      }
    }
    return t;
  }

  /** A structural mutation of a JSON value: one node replaced, dropped or given a sibling. */
  json(value: Json): Json {
    const copy = JSON.parse(JSON.stringify(value)) as Json;
    const nodes: { parent: Json[] | { [key: string]: Json }; key: string | number }[] = [];
    const walk = (v: Json) => {
      if (Array.isArray(v)) v.forEach((child, i) => (nodes.push({ parent: v, key: i }), walk(child)));
      else if (v && typeof v === 'object') for (const [k, child] of Object.entries(v)) nodes.push({ parent: v, key: k }), walk(child);
    };
    walk(copy);
    if (!nodes.length || this.chance(0.05)) return this.extremeJson();
    const { parent, key } = this.pick(nodes);
    const action = this.int(4);
    if (action === 0 && !Array.isArray(parent)) delete parent[key as string];
    else if (action === 1 && !Array.isArray(parent)) parent[`x${this.int(3)}`] = this.extremeJson();
    else (parent as Record<string | number, Json>)[key] = this.extremeJson();
    return copy;
  }

  extremeJson(): Json {
    return this.pick<() => Json>([
      () => null, () => true, () => -1, () => 0, () => 1.5, () => 2 ** 53, () => 1e308, () => -(2 ** 31),
      () => this.pick(EXTREME_INTS), () => '', () => 'dct:224', () => '../../etc/passwd', () => [], () => ({}),
      () => [2000, 2000], () => [0, 0], () => [1, 200000], () => [this.int(300), this.int(300)], () => new Array(this.int(50)).fill(this.int(70)),
    ])();
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

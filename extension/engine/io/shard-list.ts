// Lists of shards as webdataset and img2dataset write them: brace ranges `{00000..00099}` (the
// zero padding kept: every number as wide as the range's first bound) and brace lists `{a,b}`,
// several braces giving every combination in order. Shell-free: the pattern is expanded here, so
// `'shards/{00000..00099}.tar'` works quoted, from a script or a settings field alike.
import * as path from 'node:path';
import { UserError } from '../../../common/errors.js';

/** Most names one pattern may expand to (a million shards is 10 billion webdataset samples). */
export const MAX_SHARDS = 1_000_000;

const BRACE = /\{([^{}]*)\}/;

/** The choices one brace offers: a numeric range (zero-padded as its bounds are) or a list. */
function choices(body: string, pattern: string): string[] {
  const range = /^(-?\d+)\.\.(-?\d+)$/.exec(body);
  if (range) {
    const [from, to] = [Number(range[1]), Number(range[2])];
    const count = Math.abs(to - from) + 1;
    if (count > MAX_SHARDS) throw new UserError(`${pattern}: the range {${body}} names ${count} shards; the limit is ${MAX_SHARDS}`);
    const width = range[1]!.startsWith('0') || range[2]!.startsWith('0') ? Math.max(range[1]!.length, range[2]!.length) : 0;
    const step = to >= from ? 1 : -1;
    return Array.from({ length: count }, (_, i) => String(from + i * step).padStart(width, '0'));
  }
  if (body.includes(',')) return body.split(',');
  return [`{${body}}`]; // not a brace expression: kept as written
}

/** Whether `pattern` holds a brace range or list to expand. */
export function hasBraces(pattern: string): boolean {
  const m = BRACE.exec(pattern);
  return m !== null && (/^-?\d+\.\.-?\d+$/.test(m[1]!) || m[1]!.includes(','));
}

/** Every name `pattern` stands for, in order: 'a/{0..2}.tar' -> a/0.tar, a/1.tar, a/2.tar. */
export function expandBraces(pattern: string): string[] {
  let names = [''];
  let rest = pattern;
  for (let m = BRACE.exec(rest); m; m = BRACE.exec(rest)) {
    const options = choices(m[1]!, pattern);
    const head = rest.slice(0, m.index);
    if (names.length * options.length > MAX_SHARDS) throw new UserError(`${pattern} names more than ${MAX_SHARDS} shards`);
    names = names.flatMap((n) => options.map((o) => n + head + o));
    rest = rest.slice(m.index + m[0].length);
  }
  return names.map((n) => n + rest);
}

export type ShardKind = 'tar' | 'parquet';

export interface ShardFile {
  /** the path as listed (after brace expansion) */
  path: string;
  /** its base name without the extension: what its outputs are named after */
  name: string;
  kind: ShardKind;
}

/** The kind of shard a path names by its extension, or null for anything else. */
export function shardKindOf(file: string): ShardKind | null {
  const ext = path.extname(file).toLowerCase();
  return ext === '.tar' ? 'tar' : ext === '.parquet' ? 'parquet' : null;
}

/** Whether an operand names data-set shards (a .tar or .parquet file, or a pattern of them). */
export function isShardOperand(operand: string): boolean {
  return shardKindOf(operand) !== null;
}

/** The shards `operands` name, patterns expanded, in order. Two shards of one name would write
 *  the same outputs: refused. Whether each exists is found when it is read (it then fails alone). */
export function listShards(operands: readonly string[]): ShardFile[] {
  const shards: ShardFile[] = [];
  const names = new Map<string, string>();
  for (const operand of operands) {
    for (const file of hasBraces(operand) ? expandBraces(operand) : [operand]) {
      const kind = shardKindOf(file);
      if (!kind) throw new UserError(`${file}: not a data-set shard (expected a .tar webdataset shard or a .parquet file)`);
      const name = path.basename(file).slice(0, -path.extname(file).length);
      const other = names.get(name);
      if (other !== undefined) throw new UserError(`${file} and ${other} are both shards named '${name}': their outputs would collide; rename one`);
      names.set(name, file);
      shards.push({ path: file, name, kind });
    }
  }
  return shards;
}

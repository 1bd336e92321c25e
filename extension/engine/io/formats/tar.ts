// A streaming tar reader (POSIX ustar, pax extended headers, GNU long names and base-256 sizes),
// for webdataset shards. It walks the archive header by header with positioned reads, so a shard
// of any size is never held in memory: a member's bytes are read only when its reader asks, and
// only after its size was checked against the caller's bound and against what is left of the
// file. Names are data, never paths: nothing here touches the file system by a member's name, and
// links are reported as links, never followed.
import type { FileHandle } from 'node:fs/promises';
import { UserError } from '../../../../common/errors.js';
import { readExactly } from '../files.js';

const BLOCK = 512;
/** Largest pax extended header or GNU long name read (a name is a few hundred bytes). */
const MAX_META_BYTES = 1 << 20;

export type TarMemberKind = 'file' | 'link' | 'folder' | 'other';

export interface TarMember {
  /** the member's path as the archive names it (pax path, GNU long name or ustar prefix/name) */
  name: string;
  kind: TarMemberKind;
  size: number;
  /** where its bytes start in the archive */
  offset: number;
}

interface Header {
  name: string;
  size: number;
  type: string;
}

/** A header field as text: up to its first NUL. */
function field(block: Uint8Array, start: number, length: number): string {
  const bytes = block.subarray(start, start + length);
  const end = bytes.indexOf(0);
  return Buffer.from(end < 0 ? bytes : bytes.subarray(0, end)).toString('utf8');
}

/** A numeric field: octal text, or GNU base-256 (high bit of the first byte set) for large values. */
function numeric(block: Uint8Array, start: number, length: number): number {
  if (block[start]! & 0x80) {
    if (block[start] === 0xff) return NaN; // negative
    let value = block[start]! & 0x7f;
    for (let i = start + 1; i < start + length; i++) value = value * 256 + block[i]!;
    return value;
  }
  const text = field(block, start, length).trim();
  return text === '' ? 0 : /^[0-7]+$/.test(text) ? parseInt(text, 8) : NaN;
}

function checksumOk(block: Uint8Array): boolean {
  const stored = numeric(block, 148, 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : block[i]!;
  return stored === sum;
}

function parseHeader(block: Uint8Array, file: string, at: number): Header {
  if (!checksumOk(block)) throw new UserError(`${file}: not a tar archive or a damaged one (bad header checksum at byte ${at})`);
  const size = numeric(block, 124, 12);
  if (!Number.isSafeInteger(size) || size < 0) throw new UserError(`${file}: damaged tar header at byte ${at} (size field unreadable)`);
  const posix = field(block, 257, 6) === 'ustar' && block[262] === 0;
  const prefix = posix ? field(block, 345, 155) : '';
  const name = field(block, 0, 100);
  return { name: prefix ? `${prefix}/${name}` : name, size, type: String.fromCharCode(block[156]!) };
}

/** The records of a pax extended header: `<length> <key>=<value>\n`, each. */
function paxRecords(bytes: Uint8Array, file: string): Map<string, string> {
  const records = new Map<string, string>();
  const text = Buffer.from(bytes);
  for (let at = 0; at < text.length && text[at] !== 0; ) {
    const space = text.indexOf(0x20, at);
    const length = Number(text.subarray(at, space).toString('latin1'));
    if (space < 0 || !Number.isSafeInteger(length) || length <= space - at || at + length > text.length) {
      throw new UserError(`${file}: damaged pax header in the tar archive`);
    }
    const record = text.subarray(space + 1, at + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) records.set(record.slice(0, eq), record.slice(eq + 1));
    at += length;
  }
  return records;
}

function kindOf(type: string): TarMemberKind {
  if (type === '0' || type === '\0' || type === '7') return 'file';
  if (type === '1' || type === '2') return 'link';
  if (type === '5') return 'folder';
  return 'other';
}

/**
 * The members of the tar archive open as `handle` (`size` bytes), in archive order. A truncated
 * archive (a header or member running past the end, no end-of-archive block) or a damaged header
 * is a UserError naming `file`; members are yielded as found, so a failure comes after the members
 * before it.
 */
export async function* tarMembers(handle: FileHandle, size: number, file: string): AsyncGenerator<TarMember> {
  const block = new Uint8Array(BLOCK);
  let at = 0;
  let pending: { name?: string; size?: number } = {};
  for (;;) {
    if (at + BLOCK > size) throw new UserError(`${file}: truncated tar archive (it ends after ${size} bytes, without the end-of-archive block)`);
    await readExactly(handle, block, at, file, 'tar archive');
    if (block.every((b) => b === 0)) return;
    const header = parseHeader(block, file, at);
    const offset = at + BLOCK;
    const meta = header.type === 'x' || header.type === 'L' || header.type === 'g' || header.type === 'K';
    const memberSize = meta ? header.size : (pending.size ?? header.size);
    if (offset + memberSize > size) {
      throw new UserError(`${file}: truncated tar archive (a member at byte ${at} claims ${memberSize} bytes; ${Math.max(0, size - offset)} are left)`);
    }
    at = offset + Math.ceil(memberSize / BLOCK) * BLOCK;
    if (header.type === 'x' || header.type === 'L') {
      if (memberSize > MAX_META_BYTES) throw new UserError(`${file}: a tar extended header of ${memberSize} bytes is over the limit of ${MAX_META_BYTES}`);
      const bytes = new Uint8Array(memberSize);
      await readExactly(handle, bytes, offset, file, 'tar archive');
      pending = header.type === 'L' ? { ...pending, name: field(bytes, 0, bytes.length) } : { ...pending, ...paxOverrides(paxRecords(bytes, file), file) };
      continue;
    }
    if (header.type === 'g' || header.type === 'K') continue; // global pax defaults, GNU long link names: not needed
    yield { name: pending.name ?? header.name, kind: kindOf(header.type), size: memberSize, offset };
    pending = {};
  }
}

function paxOverrides(records: Map<string, string>, file: string): { name?: string; size?: number } {
  const out: { name?: string; size?: number } = {};
  const path = records.get('path');
  if (path !== undefined) out.name = path;
  const size = records.get('size');
  if (size !== undefined) {
    const n = /^\d+$/.test(size) ? Number(size) : NaN;
    if (!Number.isSafeInteger(n)) throw new UserError(`${file}: damaged pax header in the tar archive (size ${JSON.stringify(size.slice(0, 40))})`);
    out.size = n;
  }
  return out;
}

/** The bytes of `member` (a regular file), refused before anything is allocated when over `maxBytes`. */
export async function readTarMember(handle: FileHandle, member: TarMember, file: string, maxBytes: number): Promise<Uint8Array> {
  if (member.size > maxBytes) throw new UserError(`${member.size} bytes, over the limit of ${maxBytes}`);
  const bytes = new Uint8Array(member.size);
  await readExactly(handle, bytes, member.offset, file, 'tar archive');
  return bytes;
}

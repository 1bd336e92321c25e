// The child process of parquet.ts that decodes one parquet file: opens it, parses its footer and
// decodes its row groups with hyparquet. The file is read through positioned reads, each bounded
// (MAX_PARQUET_READ_BYTES) and checked before anything is allocated for it, and every page header
// of a column chunk is checked before hyparquet decodes the chunk: hyparquet trusts its page
// headers (a missing size becomes a NaN offset, which reads byte 0 for ever). What no header check
// can see — a run length inside a page, which hyparquet writes out whatever it says — parquet.ts
// bounds from outside: this process's heap limit and a watchdog. A process, not a worker thread:
// V8 aborts the whole process when one array outgrows a worker's heap limit.
import type { AsyncBuffer, ColumnMetaData, FileMetaData, PageHeader } from 'hyparquet' with { 'resolution-mode': 'import' };
import { UserError } from '../../../../common/errors.js';
import { openRegularFile, readExactly } from '../files.js';
import { MAX_PARQUET_READ_BYTES } from '../../core/limits.js';
import type { ParquetColumn, ParquetRows } from './parquet.js';

export type ParquetRequest = { op: 'open'; file: string } | { op: 'group'; index: number; columns: string[] };
export interface ParquetOpened {
  columns: ParquetColumn[];
  rows: number;
  /** the bytes of each row group's column chunks, for the watchdog's allowance */
  groupBytes: number[];
}
export type ParquetReply = { ok: true; value: ParquetOpened | ParquetRows } | { ok: false; error: string };

type Hyparquet = typeof import('hyparquet', { with: { 'resolution-mode': 'import' } });
type ColumnModule = typeof import('hyparquet/src/column.js', { with: { 'resolution-mode': 'import' } });

interface Opened {
  file: string;
  lib: Hyparquet;
  readHeader: ColumnModule['parquetHeader'];
  buffer: AsyncBuffer;
  metadata: FileMetaData;
  /** top-level columns with a repeated field inside: more than one value a row */
  repeated: Set<string>;
}

const send = process.send?.bind(process);
if (!send) throw new Error('parquet-worker.ts runs as a child process of parquet.ts');
let opened: Opened | undefined;

process.on('message', (request: ParquetRequest) => {
  const file = request.op === 'open' ? request.file : opened!.file;
  const work = request.op === 'open' ? open(request.file) : rowGroup(opened!, request.index, request.columns);
  void work.then(
    (value) => send({ ok: true, value } satisfies ParquetReply),
    (err: unknown) => send({ ok: false, error: damaged(file, err).message } satisfies ParquetReply),
  );
});
// parquet.ts gone (closed, or its process ended): so is this one
process.on('disconnect', () => process.exit(0));

function damaged(file: string, err: unknown): UserError {
  if (err instanceof UserError) return err;
  const reason = (err instanceof Error ? err.message : String(err)).split('\n')[0];
  return new UserError(`${file}: not a parquet file or a damaged one (${reason})`);
}

function columnKind(element: { type?: string; num_children?: number; converted_type?: string; logical_type?: { type: string } }): ParquetColumn['kind'] {
  if (element.num_children) return 'struct';
  if (element.type !== 'BYTE_ARRAY') return 'other';
  const text = element.converted_type === 'UTF8' || element.converted_type === 'JSON' || element.logical_type?.type === 'STRING';
  return text ? 'string' : 'binary';
}

async function open(file: string): Promise<ParquetOpened> {
  // the handle lives as long as this process: parquet.ts ends it when done
  const { handle, size } = await openRegularFile(file, 'parquet file');
  const buffer: AsyncBuffer = {
    byteLength: size,
    async slice(start: number, end = size) {
      if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= 0 && end >= start && end <= size)) {
        throw new UserError(`${file}: damaged parquet file (a read of bytes ${start}..${end} of ${size})`);
      }
      if (end - start > MAX_PARQUET_READ_BYTES) throw new UserError(`${file}: a parquet read of ${end - start} bytes is over the limit of ${MAX_PARQUET_READ_BYTES} (row groups too large)`);
      const bytes = new Uint8Array(end - start);
      await readExactly(handle, bytes, start, file, 'parquet file');
      return bytes.buffer;
    },
  };
  const [lib, { parquetHeader }] = await Promise.all([import('hyparquet'), import('hyparquet/src/column.js')]);
  const metadata = await lib.parquetMetadataAsync(buffer);
  const schema = lib.parquetSchema(metadata);
  const repeated = new Set(schema.children.filter((c) => hasRepetition(c)).map((c) => c.element.name));
  opened = { file, lib, readHeader: parquetHeader, buffer, metadata, repeated };
  const columns = schema.children.map((c) => ({
    name: c.element.name,
    kind: columnKind(c.element),
    children: c.children.map((g) => g.element.name),
  }));
  const groupBytes = metadata.row_groups.map((g) => g.columns.reduce((n, c) => n + chunkBytes(c.meta_data), 0));
  return { columns, rows: Number(metadata.num_rows), groupBytes };
}

function chunkBytes(meta: ColumnMetaData | undefined): number {
  return meta ? Math.max(Number(meta.total_compressed_size), Number(meta.total_uncompressed_size)) : 0;
}

async function rowGroup(o: Opened, index: number, columns: string[]): Promise<ParquetRows> {
  const group = o.metadata.row_groups[index]!;
  const first = o.metadata.row_groups.slice(0, index).reduce((n, g) => n + Number(g.num_rows), 0);
  const count = Number(group.num_rows);
  // The column chunks this group reads, bounded and their pages checked before the library reads them.
  for (const chunk of group.columns) {
    const meta = chunk.meta_data;
    if (!meta || !columns.includes(meta.path_in_schema[0]!)) continue;
    const bytes = chunkBytes(meta);
    if (!(bytes <= MAX_PARQUET_READ_BYTES)) throw new UserError(`${o.file}: a parquet column chunk of ${bytes} bytes is over the limit of ${MAX_PARQUET_READ_BYTES} (write smaller row groups)`);
    await checkPages(o, meta, o.repeated.has(meta.path_in_schema[0]!) ? undefined : count, `row group ${index}, column '${meta.path_in_schema.join('.')}'`);
  }
  // utf8: false keeps un-annotated BYTE_ARRAY (image bytes) as bytes; annotated text still decodes
  const rows = await o.lib.parquetReadObjects({ file: o.buffer, metadata: o.metadata, columns, rowStart: first, rowEnd: first + count, utf8: false });
  if (rows.length !== count) throw new UserError(`${o.file}: damaged parquet file (a row group of ${count} rows gave ${rows.length})`);
  return { first, rows };
}

function hasRepetition(node: { element: { repetition_type?: string }; children: { element: { repetition_type?: string }; children: unknown[] }[] }): boolean {
  return node.element.repetition_type === 'REPEATED' || node.children.some((c) => hasRepetition(c as typeof node));
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Walks the page headers of a column chunk as hyparquet will, each checked (pageProblem); with
 *  `rows` (a column without repetition: one value a row), their values must add up to the rows. */
async function checkPages(o: Opened, meta: ColumnMetaData, rows: number | undefined, where: string): Promise<void> {
  const start = Number(meta.dictionary_page_offset || meta.data_page_offset);
  const end = start + Number(meta.total_compressed_size);
  let values = 0;
  // hyparquet stops one byte short of a chunk's end (a writer may leave an empty byte there)
  for (let at = start; at < end - 1; ) {
    const { header, length } = await pageHeader(o, at, end, where);
    const problem = pageProblem(header, end - at - length);
    if (problem) throw new UserError(`${o.file}: damaged parquet file (${where}: the page at byte ${at} ${problem})`);
    values += header.data_page_header?.num_values ?? header.data_page_header_v2?.num_values ?? 0;
    at += length + header.compressed_page_size;
  }
  if (rows !== undefined && values !== rows) throw new UserError(`${o.file}: damaged parquet file (${where}: its pages hold ${values} values for ${rows} rows)`);
}

/** The page header at byte `at`: read in a window that doubles until the header fits in it. */
async function pageHeader(o: Opened, at: number, end: number, where: string): Promise<{ header: PageHeader; length: number }> {
  for (let window = 4096; ; window *= 2) {
    const bytes = await o.buffer.slice(at, Math.min(end, at + window));
    const reader = { view: new DataView(bytes), offset: 0 };
    try {
      return { header: o.readHeader(reader), length: reader.offset };
    } catch (err) {
      if (at + window >= end) throw new UserError(`${o.file}: damaged parquet file (${where}: no page header at byte ${at}: ${(err as Error).message})`);
    }
  }
}

/** What makes a page header unsafe to decode (`room`: the chunk's bytes after the header), or
 *  undefined. Every count hyparquet sizes an array or an offset by must be a whole number. */
function pageProblem(h: PageHeader, room: number): string | undefined {
  if (!isCount(h.compressed_page_size) || h.compressed_page_size > room) return `claims ${String(h.compressed_page_size)} bytes; its column chunk has ${room} left`;
  if (!isCount(h.uncompressed_page_size) || h.uncompressed_page_size > MAX_PARQUET_READ_BYTES) return `claims ${String(h.uncompressed_page_size)} bytes uncompressed (at most ${MAX_PARQUET_READ_BYTES})`;
  if (h.type === 'DICTIONARY_PAGE') return isCount(h.dictionary_page_header?.num_values) ? undefined : 'is a dictionary page without a value count';
  if (h.type === 'DATA_PAGE') {
    const d = h.data_page_header;
    return d && isCount(d.num_values) && d.encoding ? undefined : 'is a data page without a value count or an encoding';
  }
  if (h.type !== 'DATA_PAGE_V2') return `has page type ${String(h.type)}`;
  const d = h.data_page_header_v2;
  if (!d || !d.encoding || ![d.num_values, d.num_nulls, d.num_rows, d.definition_levels_byte_length, d.repetition_levels_byte_length].every(isCount)) {
    return 'is a data page without its counts, level lengths or encoding';
  }
  const levels = d.definition_levels_byte_length + d.repetition_levels_byte_length;
  if (d.num_nulls > d.num_values || d.num_rows > d.num_values) return `holds ${d.num_values} values but ${d.num_nulls} nulls and ${d.num_rows} rows`;
  if (levels > h.compressed_page_size || levels > h.uncompressed_page_size) return `has ${levels} bytes of levels in a page of ${h.compressed_page_size}`;
  return undefined;
}

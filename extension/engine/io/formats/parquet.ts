// Parquet files read with hyparquet (a maintained pure-JS reader), one row group at a time and only
// the columns asked for: a Hugging Face data-set shard of a few GB never sits in memory whole. The
// file is read through positioned reads on one open descriptor, each read bounded
// (MAX_PARQUET_READ_BYTES) and checked before anything is allocated for it; whatever the library
// throws on a damaged file becomes one UserError naming the file.
import type { AsyncBuffer, FileMetaData } from 'hyparquet' with { 'resolution-mode': 'import' };
import { UserError } from '../../../../common/errors.js';
import { openRegularFile, readExactly } from '../files.js';
import { MAX_PARQUET_READ_BYTES } from '../../core/limits.js';

export interface ParquetColumn {
  name: string;
  /** 'binary': BYTE_ARRAY without a text annotation; 'struct': a group, with its children's names */
  kind: 'binary' | 'string' | 'struct' | 'other';
  children: string[];
}

export interface ParquetRows {
  /** the row number of the first of `rows` in the file */
  first: number;
  rows: Record<string, unknown>[];
}

export interface ParquetFile {
  columns: ParquetColumn[];
  rows: number;
  /** the rows of the named top-level columns, one row group at a time */
  rowGroups(columns: string[]): AsyncGenerator<ParquetRows>;
  close(): Promise<void>;
}

type Hyparquet = typeof import('hyparquet', { with: { 'resolution-mode': 'import' } });
let library: Promise<Hyparquet> | null = null;
/** Loaded on first use: nothing loads it when no parquet file is read. */
const hyparquet = (): Promise<Hyparquet> => (library ??= import('hyparquet'));

function damaged(file: string, err: unknown): unknown {
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

/** Opens a parquet file: its footer read and parsed, its top-level columns listed. */
export async function openParquet(file: string): Promise<ParquetFile> {
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
  try {
    const lib = await hyparquet();
    const metadata = await lib.parquetMetadataAsync(buffer);
    const columns = lib.parquetSchema(metadata).children.map((c) => ({
      name: c.element.name,
      kind: columnKind(c.element),
      children: c.children.map((g) => g.element.name),
    }));
    return { columns, rows: Number(metadata.num_rows), rowGroups: (names) => rowGroups(lib, buffer, metadata, names, file), close: () => handle.close() };
  } catch (err) {
    await handle.close();
    throw damaged(file, err);
  }
}

async function* rowGroups(lib: Hyparquet, file: AsyncBuffer, metadata: FileMetaData, columns: string[], name: string): AsyncGenerator<ParquetRows> {
  let first = 0;
  for (const group of metadata.row_groups) {
    const count = Number(group.num_rows);
    // The column chunks this group reads, bounded before the library allocates for them.
    for (const chunk of group.columns) {
      const meta = chunk.meta_data;
      if (!meta || !columns.includes(meta.path_in_schema[0]!)) continue;
      const bytes = Math.max(Number(meta.total_compressed_size), Number(meta.total_uncompressed_size));
      if (!(bytes <= MAX_PARQUET_READ_BYTES)) throw new UserError(`${name}: a parquet column chunk of ${bytes} bytes is over the limit of ${MAX_PARQUET_READ_BYTES} (write smaller row groups)`);
    }
    let rows: Record<string, unknown>[];
    try {
      // utf8: false keeps un-annotated BYTE_ARRAY (image bytes) as bytes; annotated text still decodes
      rows = await lib.parquetReadObjects({ file, metadata, columns, rowStart: first, rowEnd: first + count, utf8: false });
    } catch (err) {
      throw damaged(name, err);
    }
    if (rows.length !== count) throw new UserError(`${name}: damaged parquet file (a row group of ${count} rows gave ${rows.length})`);
    yield { first, rows };
    first += count;
  }
}

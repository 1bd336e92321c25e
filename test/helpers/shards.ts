// Data-set shards written by reference writers for the shard tests: webdataset .tar files by
// Python's tarfile (the writer webdataset itself uses), parquet files by hyparquet-writer, shaped
// as Hugging Face writes image data sets (an `image` struct{bytes, path} column, `__key__`).
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';

/** One tar member: a file with bytes, or (python tarfile kinds) a link or folder. */
export interface TarEntry {
  name: string;
  data?: Uint8Array | string;
  /** 'file' (default), 'symlink', 'hardlink', 'dir' */
  type?: 'file' | 'symlink' | 'hardlink' | 'dir';
  link?: string;
}

const TAR_WRITER = `
import base64, io, json, sys, tarfile
spec = json.load(sys.stdin)
kinds = {'file': tarfile.REGTYPE, 'symlink': tarfile.SYMTYPE, 'hardlink': tarfile.LNKTYPE, 'dir': tarfile.DIRTYPE}
fmt = {'pax': tarfile.PAX_FORMAT, 'gnu': tarfile.GNU_FORMAT, 'ustar': tarfile.USTAR_FORMAT}[spec['format']]
with tarfile.open(spec['out'], 'w', format=fmt) as t:
    for e in spec['entries']:
        info = tarfile.TarInfo(e['name'])
        info.type = kinds[e.get('type', 'file')]
        info.mtime = 1700000000
        if e.get('link'): info.linkname = e['link']
        data = base64.b64decode(e.get('data', ''))
        if info.type == tarfile.REGTYPE:
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        else:
            t.addfile(info)
`;

/** Writes a tar with Python's tarfile (pax by default: long and non-ASCII names as pax headers). */
export function writeTar(out: string, entries: TarEntry[], format: 'pax' | 'gnu' | 'ustar' = 'pax'): void {
  const spec = {
    out,
    format,
    entries: entries.map((e) => ({ ...e, data: Buffer.from(e.data ?? '').toString('base64') })),
  };
  execFileSync('python3', ['-c', TAR_WRITER], { input: JSON.stringify(spec) });
}

/** Sets the size field of the tar header at byte `at` to `size` (GNU base-256: any size, e.g. a
 *  lying 8 GiB) and fixes the header's checksum. */
export function claimTarSize(tar: Uint8Array, at: number, size: number): void {
  const h = tar.subarray(at, at + 512);
  h.fill(0, 124, 136);
  h[124] = 0x80;
  for (let i = 135, v = size; i > 124; i--, v = Math.floor(v / 256)) h[i] = v % 256;
  h.fill(32, 148, 156);
  Buffer.from(h.reduce((a, b) => a + b, 0).toString(8).padStart(6, '0') + '\0 ', 'latin1').copy(h, 148);
}

/** A webdataset sample's members: `<key>.<ext>` for each. */
export function sampleEntries(key: string, members: Record<string, Uint8Array | string>): TarEntry[] {
  return Object.entries(members).map(([ext, data]) => ({ name: `${key}.${ext}`, data }));
}

/** Writes a Hugging Face style image parquet: `image` struct{bytes, path} and `__key__`, or (with
 *  `column`) a plain binary column of that name; `rowGroupSize` rows per row group; pages
 *  snappy-compressed unless `codec` says otherwise; `dictionaryKeys`: `__key__` dictionary-encoded
 *  (RLE_DICTIONARY pages: a bit width, then runs of indexes). */
export async function writeImageParquet(
  out: string,
  rows: { key: string; bytes: Uint8Array | null }[],
  options: { column?: string; rowGroupSize?: number; codec?: 'SNAPPY' | 'UNCOMPRESSED'; dictionaryKeys?: boolean } = {},
): Promise<void> {
  const { parquetWriteBuffer } = await import('hyparquet-writer');
  const keys = { name: '__key__', data: rows.map((r) => r.key), ...(options.dictionaryKeys ? { encoding: 'RLE_DICTIONARY' as const } : {}) };
  const rowGroupSize = options.rowGroupSize ?? 2;
  const codec = options.codec ?? 'SNAPPY';
  const buffer = options.column
    ? parquetWriteBuffer({ columnData: [{ name: options.column, data: rows.map((r) => r.bytes), type: 'BYTE_ARRAY' }, { ...keys, type: 'STRING' }], rowGroupSize, codec })
    : parquetWriteBuffer({
        columnData: [{ name: 'image', data: rows.map((r) => (r.bytes ? { bytes: r.bytes, path: `${r.key}.jpg` } : null)) }, keys],
        schema: [
          { name: 'root', num_children: 2 },
          { name: 'image', num_children: 2, repetition_type: 'OPTIONAL' },
          { name: 'bytes', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' },
          { name: 'path', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
          { name: '__key__', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
        ],
        rowGroupSize,
        codec,
      });
  await fs.writeFile(out, new Uint8Array(buffer));
}

/** One page of a parquet file: where its header starts, where its data starts and ends, and the
 *  header as hyparquet reads it. */
export interface ParquetPage {
  column: string;
  start: number;
  data: number;
  end: number;
  header: import('hyparquet', { with: { 'resolution-mode': 'import' } }).PageHeader;
}

/** The pages of a (valid) parquet file, column chunk after column chunk, as its footer places them. */
export async function parquetPages(bytes: Uint8Array): Promise<ParquetPage[]> {
  const { parquetMetadata } = await import('hyparquet');
  const { parquetHeader } = await import('hyparquet/src/column.js');
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer;
  const pages: ParquetPage[] = [];
  for (const group of parquetMetadata(buffer).row_groups) {
    for (const { meta_data: meta } of group.columns) {
      const start = Number(meta!.dictionary_page_offset || meta!.data_page_offset);
      for (let at = start; at < start + Number(meta!.total_compressed_size); ) {
        const reader = { view: new DataView(buffer), offset: at };
        const header = parquetHeader(reader);
        pages.push({ column: meta!.path_in_schema.join('.'), start: at, data: reader.offset, end: reader.offset + header.compressed_page_size, header });
        at = reader.offset + header.compressed_page_size;
      }
    }
  }
  return pages;
}

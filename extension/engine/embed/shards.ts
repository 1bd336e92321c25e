// The images of a data-set shard, streamed: a webdataset .tar (members grouped into samples by
// key, the part of a member's path before the first dot of its base name; the image is the jpg,
// jpeg, png or webp member, and json, txt and cls members are carried beside the key) or a parquet
// file with an image column (Hugging Face's struct{bytes, path}, or a binary column). Images come
// out as bytes named by their key, for the encode pool to decode; a sample without a usable image
// is listed as skipped with why. Keys are data: nothing is ever opened or written by one.
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { UserError } from '../../../common/errors.js';
import { openRegularFile } from '../io/files.js';
import { readTarMember, tarMembers } from '../io/formats/tar.js';
import { openParquet, type ParquetColumn } from '../io/formats/parquet.js';
import type { ShardFile } from '../io/shard-list.js';
import type { ShardStat } from '../io/shard-job.js';
import { MAX_IMAGE_BYTES, MAX_SAMPLE_TEXT_BYTES } from '../core/limits.js';
import type { SkippedImage } from './embed.js';
import type { EncodedImage } from './image.js';

/** The member extensions taken as a sample's image, and those carried into the index as text. */
export const IMAGE_MEMBERS = ['jpg', 'jpeg', 'png', 'webp'];
export const TEXT_MEMBERS = ['json', 'txt', 'cls'];

export type SampleMeta = Record<string, unknown>;

interface Sample {
  key: string;
  image: EncodedImage | null;
  meta: SampleMeta;
  /** why the sample has no image to encode */
  problem?: string;
}

export interface ShardImages {
  /** the shard's images in order, each named by its key; read as they are consumed */
  images: AsyncIterable<EncodedImage>;
  /** samples without an image to encode, filled as `images` is consumed */
  skipped: SkippedImage[];
  /** json/txt/cls members by key, filled as `images` is consumed */
  meta: Map<string, SampleMeta>;
  /** each key's place in the shard (its first sample's), for listing skipped samples in order */
  order: Map<string, number>;
}

export interface ShardOptions {
  /** parquet: the column holding the images (default: 'image', else the first struct{bytes, path}) */
  imageColumn?: string;
}

/** The images of `shard`, streamed (see ShardImages); a damaged container throws a UserError
 *  naming the shard when it is reached. */
export function shardImages(shard: ShardFile, options: ShardOptions = {}): ShardImages {
  const skipped: SkippedImage[] = [];
  const meta = new Map<string, SampleMeta>();
  const order = new Map<string, number>();
  const samples = shard.kind === 'tar' ? tarSamples(shard.path) : parquetSamples(shard.path, options.imageColumn);
  async function* images(): AsyncGenerator<EncodedImage> {
    for await (const sample of samples) {
      if (!order.has(sample.key)) order.set(sample.key, order.size);
      if (Object.keys(sample.meta).length > 0) meta.set(sample.key, sample.meta);
      if (sample.image) yield sample.image;
      else skipped.push({ path: sample.key, reason: sample.problem ?? 'no image member' });
    }
  }
  return { images: images(), skipped, meta, order };
}

/** The images of several shards as one input, shard after shard, each streamed (refine and stats
 *  over a whole data set). Samples without an image go to `skipped`; `onShard` hears each shard
 *  begin and the end (done, total); a damaged shard throws naming it when it is reached. */
export function imagesOfShards(
  shards: readonly ShardFile[],
  options: ShardOptions & { onShard?: (done: number, total: number) => void } = {},
): { images: AsyncIterable<EncodedImage>; skipped: SkippedImage[]; count: () => number } {
  const skipped: SkippedImage[] = [];
  let count = 0;
  async function* images(): AsyncGenerator<EncodedImage> {
    for (const [i, shard] of shards.entries()) {
      options.onShard?.(i, shards.length);
      const source = shardImages(shard, options);
      for await (const image of source.images) {
        count++;
        yield image;
      }
      skipped.push(...source.skipped);
    }
    options.onShard?.(shards.length, shards.length);
  }
  return { images: images(), skipped, count: () => count };
}

/** The image of sample `key` in `shard` (the `occurrence`-th image of that key, from 0: keys may
 *  repeat), found by streaming the shard up to it; null when the shard holds no such image. The
 *  key is only compared, never opened. */
export async function shardSampleImage(shard: ShardFile, key: string, occurrence = 0, options: ShardOptions = {}): Promise<EncodedImage | null> {
  let seen = 0;
  for await (const image of shardImages(shard, options).images) {
    if (image.name === key && seen++ === occurrence) return image;
  }
  return null;
}

/** What the index of a shard's output records beside its rows (tokenize and embed alike): the
 *  shard (path, bytes, mtime), every sample skipped in shard order (those without an image and
 *  the images that did not decode, interleaved) and the kept images' json/txt/cls members. */
export function shardIndexExtra(shard: ShardFile, stat: ShardStat, source: ShardImages, undecoded: readonly SkippedImage[], kept: readonly string[]): { skipped: number; extra: Record<string, unknown> } {
  const skipped = [...source.skipped, ...undecoded].map((s) => ({ key: s.path, reason: s.reason }));
  skipped.sort((a, b) => source.order.get(a.key)! - source.order.get(b.key)!);
  const meta = kept.map((key) => source.meta.get(key) ?? {});
  const extra = { shard: { path: path.resolve(shard.path), bytes: stat.size, mtimeMs: stat.mtimeMs }, skipped, ...(meta.some((m) => Object.keys(m).length > 0) && { meta }) };
  return { skipped: skipped.length, extra };
}

/** webdataset's split of a member path into key and extension ("a/b.c.jpg" -> "a/b", "c.jpg");
 *  null for a name without one (webdataset ignores those members). */
export function sampleKeyOf(name: string): { key: string; ext: string } | null {
  const m = /^((?:.*\/|)[^.]+)\.([^/]*)$/s.exec(name);
  return m ? { key: m[1]!, ext: m[2]! } : null;
}

async function* tarSamples(file: string): AsyncGenerator<Sample> {
  const { handle, size } = await openRegularFile(file, 'tar shard');
  try {
    let current: Sample | null = null;
    for await (const member of tarMembers(handle, size, file)) {
      const split = sampleKeyOf(member.name);
      if (!split) continue;
      if (current && current.key !== split.key) {
        yield current;
        current = null;
      }
      current ??= { key: split.key, image: null, meta: {} };
      await addMember(current, member, split.ext.toLowerCase(), handle, file);
    }
    if (current) yield current;
  } finally {
    await handle.close();
  }
}

/** Takes one member into its sample: the first image member, the text members; links and
 *  members over their size bound are noted, never read. */
async function addMember(sample: Sample, member: Parameters<typeof readTarMember>[1], ext: string, handle: FileHandle, file: string): Promise<void> {
  const isImage = IMAGE_MEMBERS.includes(ext);
  if (isImage && (sample.image || sample.problem)) return; // the first image member is the sample's
  if (member.kind === 'link') {
    if (isImage) sample.problem = `its image member is a link (links in shards are not followed)`;
    return;
  }
  if (member.kind !== 'file') return;
  if (isImage) {
    if (member.size > MAX_IMAGE_BYTES) sample.problem = `its image member claims ${member.size} bytes, over the limit of ${MAX_IMAGE_BYTES}`;
    else sample.image = { name: sample.key, bytes: await readTarMember(handle, member, file, MAX_IMAGE_BYTES) };
  } else if (TEXT_MEMBERS.includes(ext) && member.size <= MAX_SAMPLE_TEXT_BYTES) {
    const text = Buffer.from(await readTarMember(handle, member, file, MAX_SAMPLE_TEXT_BYTES)).toString('utf8');
    sample.meta[ext] = ext === 'json' ? parsedOrText(text) : text;
  }
}

function parsedOrText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The column of a parquet shard holding its images: the one named, else 'image', else the first
 *  struct with a 'bytes' child, else a binary column named like an image member ('jpg'). */
function imageColumnOf(columns: ParquetColumn[], named: string | undefined, file: string): ParquetColumn {
  const usable = (c: ParquetColumn) => c.kind === 'binary' || (c.kind === 'struct' && c.children.includes('bytes'));
  if (named !== undefined) {
    const column = columns.find((c) => c.name === named);
    if (!column) throw new UserError(`${file}: no column '${named}' (columns: ${columns.map((c) => c.name).join(', ')})`);
    if (!usable(column)) throw new UserError(`${file}: column '${named}' holds no image bytes (expected binary, or a struct with 'bytes')`);
    return column;
  }
  const column =
    columns.find((c) => c.name === 'image' && usable(c)) ??
    columns.find((c) => c.kind === 'struct' && usable(c)) ??
    columns.find((c) => c.kind === 'binary' && IMAGE_MEMBERS.includes(c.name.toLowerCase())); // webdataset-style 'jpg'
  if (!column) throw new UserError(`${file}: no image column found (columns: ${columns.map((c) => c.name).join(', ')})`, { cli: 'name it with --image-column', vscode: 'name it in the prompt' });
  return column;
}

/** A sample's key: its '__key__' column, else the image's recorded path, else its row number. */
function parquetKey(row: Record<string, unknown>, cell: unknown, rowNumber: number): string {
  if (typeof row.__key__ === 'string') return row.__key__;
  const path = (cell as { path?: unknown } | null)?.path;
  return typeof path === 'string' && path !== '' ? path : String(rowNumber);
}

async function* parquetSamples(file: string, named: string | undefined): AsyncGenerator<Sample> {
  const parquet = await openParquet(file);
  try {
    const column = imageColumnOf(parquet.columns, named, file);
    const keyed = parquet.columns.some((c) => c.name === '__key__' && c.kind === 'string');
    for await (const { first, rows } of parquet.rowGroups(keyed ? [column.name, '__key__'] : [column.name])) {
      for (const [i, row] of rows.entries()) {
        const cell = row[column.name];
        const key = parquetKey(row, cell, first + i);
        const bytes = column.kind === 'struct' ? (cell as { bytes?: unknown } | null)?.bytes : cell;
        if (!(bytes instanceof Uint8Array)) yield { key, image: null, meta: {}, problem: 'no image bytes in its row' };
        else if (bytes.length > MAX_IMAGE_BYTES) yield { key, image: null, meta: {}, problem: `its image is ${bytes.length} bytes, over the limit of ${MAX_IMAGE_BYTES}` };
        // a copy of its own: a view would carry the whole page to the worker that decodes it
        else yield { key, image: { name: key, bytes: bytes.slice() }, meta: {} };
      }
    }
  } finally {
    await parquet.close();
  }
}

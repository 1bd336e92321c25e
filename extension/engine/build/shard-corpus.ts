// A build's corpus from data-set shards (`build --images 'shards/{00000..00099}.tar'`): the shards
// embedded into the build's corpus folder as `embed SHARDS --out DIR/` writes them (a shard's
// images streamed, one shard's embeddings in memory at a time), then read back shard after shard
// in the list's order, as `build --embeddings DIR/` reads a sharded embed's folder. So the
// vectors are row for row those of the same images as a folder in key order. Each shard's set is
// kept with its completion record: a build run again (after a failed shard, or interrupted) embeds
// only the shards whose sets are missing.
import * as path from 'node:path';
import type { Matrix } from '../../../native-gpu/backend.js';
import { UserError } from '../../../common/errors.js';
import { embedShards } from '../embed/embed-shards.js';
import { requireSomeImages, type SkippedImage } from '../embed/embed.js';
import type { Encoder } from '../embed/encoders/index.js';
import { shardSource, type RowSource } from '../embed/embedding-source.js';
import { indexPathOf } from '../io/formats/npy-index.js';
import { readEmbeddings } from '../io/formats/npy.js';
import { readJsonFile } from '../io/files.js';
import type { ShardFile } from '../io/shard-list.js';
import { MAX_JSON_BYTES } from '../core/limits.js';

export interface ShardCorpusControl {
  /** parquet shards: the column of image bytes */
  imageColumn?: string;
  signal?: AbortSignal;
  /** shards done of all */
  onProgress: (done: number, total: number) => void;
}

/** What tells one shard corpus from another in a corpus folder's name (corpusInputFingerprint):
 *  the shards (absolute paths) and the parquet column read. */
export function shardCorpusInputs(shards: readonly ShardFile[], imageColumn: string | undefined): string[] {
  return [...shards.map((s) => path.resolve(s.path)), ...(imageColumn !== undefined ? [`image-column:${imageColumn}`] : [])];
}

/** Embeds `shards` into `dir` (what is there already and complete is kept) and opens the whole as
 *  one row source. A shard that failed fails the build, named with why, once the others are done. */
export async function embedShardCorpus(
  encoder: Encoder,
  shards: ShardFile[],
  dir: string,
  control: ShardCorpusControl,
): Promise<{ source: RowSource; load: () => Promise<Matrix>; skipped: SkippedImage[] }> {
  const summary = await embedShards(encoder, {
    shards,
    out: dir,
    ...(control.imageColumn !== undefined && { imageColumn: control.imageColumn }),
    ...(control.signal && { signal: control.signal }),
    onShard: ({ done, total, status }) => control.onProgress(status === 'skipped' ? done + 1 : done, total),
  });
  const [first, ...others] = summary.failed;
  if (first) {
    const more = others.length > 0 ? ` (and ${others.length} more: ${others.map((f) => f.shard).join(', ')})` : '';
    const kept = shards.length > summary.failed.length ? "; the other shards' embeddings are kept for the next run" : '';
    throw new UserError(`shard ${first.shard} failed: ${first.error}${more}${kept}`);
  }
  const skipped = await skippedSamples(shards, dir);
  const source = await shardSource(dir);
  requireSomeImages(source.rows, skipped);
  return { source, load: () => readEmbeddings(dir), skipped };
}

/** The samples each shard's index lists as skipped (no image, or one that did not decode), named
 *  by their keys, in shard order. */
async function skippedSamples(shards: readonly ShardFile[], dir: string): Promise<SkippedImage[]> {
  const skipped: SkippedImage[] = [];
  for (const shard of shards) {
    const index = (await readJsonFile(indexPathOf(path.join(dir, `${shard.name}.npy`)), 'embedding index', MAX_JSON_BYTES)) as { skipped?: { key: string; reason: string }[] };
    for (const s of index.skipped ?? []) skipped.push({ path: `${shard.path}: ${s.key}`, reason: s.reason });
  }
  return skipped;
}

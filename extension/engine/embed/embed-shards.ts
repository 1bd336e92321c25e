// Embedding sets as `embed` writes them: float32 [sum of L, d] .npy plus its index (images, the
// grid or each image's grid, the encoder), for a list of images or one per data-set shard
// (`embed SHARDS --out DIR/`: `DIR/<shard name>.npy`, whose index also holds the shard, its
// skipped samples and their json/txt/cls members). The job itself — parts, skipping complete
// outputs, failures one shard at a time, the manifest — is io/shard-job.ts's.
import * as path from 'node:path';
import { indexPathOf, writeIndexedNpy } from '../io/formats/npy-index.js';
import { runShardJob, type JobIdentity, type ShardCounts, type ShardJob, type ShardPart, type ShardStat, type ShardSummary } from '../io/shard-job.js';
import type { ShardFile } from '../io/shard-list.js';
import { commonGrid, embedImages } from './embed.js';
import type { Encoder, EncoderDescriptor } from './encoders/index.js';
import { shardImages, shardIndexExtra, type ShardOptions } from './shards.js';

/** Writes an embedding set: the rows, and beside them which image each belongs to (one grid for
 *  all, rows per image fixed, or each image's grid, its rows after the previous image's). */
export async function writeEmbeddingSet(
  out: string,
  r: Awaited<ReturnType<typeof embedImages>>,
  descriptor: EncoderDescriptor,
  extra: Record<string, unknown> = {},
): Promise<{ shape: [number, number]; index: string }> {
  const shape: [number, number] = [r.embeddings.rows, r.embeddings.cols];
  const grid = commonGrid(r.grids);
  const rows = { images: r.images, ...(grid ? { grid, rowsPerImage: grid[0] * grid[1] } : { grids: r.grids }), encoder: descriptor, ...extra };
  await writeIndexedNpy(out, { shape, dtype: 'float32', data: r.embeddings.data }, rows);
  return { shape, index: indexPathOf(out) };
}

export interface EmbedShardsRequest extends ShardOptions {
  shards: ShardFile[];
  out: string;
  part?: ShardPart;
  signal?: AbortSignal;
  onShard?: ShardJob['onShard'];
}

/** What an embed job's outputs depend on besides the shard: the encoder, and for a model its file
 *  (the precision's) and layer (the same on a cluster's submit side, which plans from the
 *  completion records). */
export const embedIdentity = (descriptor: EncoderDescriptor, options: ShardOptions = {}): JobIdentity => ({
  encoder: descriptor.id,
  ...(descriptor.model && { model: `${descriptor.model.file}#${descriptor.model.layer ?? 'last'}` }),
  ...(options.imageColumn !== undefined && { imageColumn: options.imageColumn }),
});

/** The embedding set of one shard, written into `out`; its file names and counts. */
async function embedShard(encoder: Encoder, shard: ShardFile, stat: ShardStat, request: EmbedShardsRequest): Promise<ShardCounts & { outputs: string[] }> {
  const source = shardImages(shard, request);
  const r = await embedImages(encoder, source.images, { parallel: true, ...(request.signal && { signal: request.signal }) });
  const index = shardIndexExtra(shard, stat, source, r.skipped, r.images);
  const file = `${shard.name}.npy`;
  // a shard whose samples were all skipped still gets its (empty, [0, d]) set
  await writeEmbeddingSet(path.join(request.out, file), r, encoder.descriptor, index.extra);
  return { images: r.images.length, skipped: index.skipped, outputs: [file, path.basename(indexPathOf(file))] };
}

/** Embeds the request's part of the shards (see io/shard-job.ts for what is skipped, how failures
 *  are isolated and the manifest). */
export function embedShards(encoder: Encoder, request: EmbedShardsRequest): Promise<ShardSummary> {
  return runShardJob({
    job: 'embed',
    out: request.out,
    shards: request.shards,
    ...(request.part && { part: request.part }),
    identity: embedIdentity(encoder.descriptor, request),
    run: (shard, stat) => embedShard(encoder, shard, stat, request),
    ...(request.onShard && { onShard: request.onShard }),
    ...(request.signal && { signal: request.signal }),
  });
}

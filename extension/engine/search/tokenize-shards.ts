// Tokenize over data-set shards into a folder (`tokenize SHARDS --out DIR/`): each shard gives
// one token data set, `DIR/<shard name>.tokens.npy` and its index, whose `images` are the shard's
// keys in shard order, beside the shard (path, bytes, mtime), the samples skipped (with why) and
// the samples' json/txt/cls members; with `pooled`, each image's pooled embedding beside it
// (`<shard name>.tokens.pooled.npy`, one more output of the shard). The job itself — parts,
// skipping complete outputs, failures one shard at a time, the manifest — is io/shard-job.ts's.
import * as path from 'node:path';
import type { ComputeBackend } from '../../../native-gpu/backend.js';
import type { Codebook } from '../codebook/codebook.js';
import type { Encoder } from '../embed/encoders/index.js';
import { shardImages, shardIndexExtra, type ShardOptions } from '../embed/shards.js';
import { checkPooledOutput } from '../embed/embed.js';
import { pooledPathOf, TOKENS_SUFFIX, writeTokenDataset } from '../codebook/token-files.js';
import { indexPathOf } from '../io/formats/npy-index.js';
import { runShardJob, type JobIdentity, type ShardCounts, type ShardJob, type ShardPart, type ShardStat, type ShardSummary } from '../io/shard-job.js';
import type { ShardFile } from '../io/shard-list.js';
import { checkEncoderMatches, computedOn, tokenizeImages, type TokenizeControl } from './tokenize.js';
import { openSearch } from './search.js';

export interface TokenizeShardsRequest extends ShardOptions {
  shards: ShardFile[];
  out: string;
  /** also keep each image's pooled embedding beside its shard's tokens */
  pooled?: boolean;
  part?: ShardPart;
  control?: TokenizeControl;
  onShard?: ShardJob['onShard'];
}

/** The token data set of one shard, written into `out`; its file names and counts. */
async function tokenizeShard(cb: Codebook, encoder: Encoder, backend: ComputeBackend, shard: ShardFile, stat: ShardStat, request: TokenizeShardsRequest): Promise<ShardCounts & { outputs: string[] }> {
  const source = shardImages(shard, request);
  const { results, skipped, pooled } = await tokenizeImages(cb, encoder, source.images, backend, { ...request.control, pooled: request.pooled === true });
  const index = shardIndexExtra(shard, stat, source, skipped, results.map((r) => r.image));
  const file = `${shard.name}${TOKENS_SUFFIX}`;
  await writeTokenDataset(path.join(request.out, file), results, {
    // a shard whose samples were all skipped still gets its (empty) data set, with no pooled file
    ...(results.length === 0 && { identity: await identityOf(cb, encoder, backend, request) }),
    ...(pooled && { pooled }),
    extra: index.extra,
  });
  const outputs = [file, path.basename(indexPathOf(file)), ...(pooled ? [pooledPathOf(file)] : [])];
  return { images: results.length, skipped: index.skipped, outputs };
}

/** What a token data set records of how it was made, without any grid to take it from. */
async function identityOf(cb: Codebook, encoder: Encoder, backend: ComputeBackend, request: TokenizeShardsRequest) {
  const search = await openSearch(cb, backend, request.control?.search);
  search.dispose();
  return { codebook: cb.fingerprint, encoder: encoder.descriptor.id, device: computedOn(encoder, backend), search: search.info };
}

/** What a tokenize job's outputs depend on besides the shard: the codebook, the encoder, a
 *  parquet image column when one is named and whether pooled embeddings are kept (the same on a
 *  cluster's submit side, which plans from the completion records; the token set editor reads the
 *  column back to find each photo). */
export const tokenizeIdentity = (cb: Codebook, encoderId: string, options: ShardOptions & { pooled?: boolean } = {}): JobIdentity => ({
  codebook: cb.fingerprint,
  encoder: encoderId,
  ...(options.imageColumn !== undefined && { imageColumn: options.imageColumn }),
  ...(options.pooled === true && { pooled: 'kept' }),
});

/** Tokenizes the request's part of the shards (see io/shard-job.ts for what is skipped, how
 *  failures are isolated and the manifest). */
export async function tokenizeShards(cb: Codebook, encoder: Encoder, backend: ComputeBackend, request: TokenizeShardsRequest): Promise<ShardSummary> {
  checkEncoderMatches(cb, encoder);
  // one line before the job, not one failure per shard
  if (request.pooled) checkPooledOutput(encoder);
  return runShardJob({
    job: 'tokenize',
    out: request.out,
    shards: request.shards,
    ...(request.part && { part: request.part }),
    identity: tokenizeIdentity(cb, encoder.descriptor.id, request),
    run: (shard, stat) => tokenizeShard(cb, encoder, backend, shard, stat, request),
    ...(request.onShard && { onShard: request.onShard }),
    ...(request.control?.signal && { signal: request.control.signal }),
  });
}

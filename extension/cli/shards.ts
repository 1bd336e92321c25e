// What the commands that read data-set shards share (tokenize, embed; refine and stats take them
// as their images): their options, the output folder, per-shard progress and the summary
// (`--json`: {shards, images, done, skipped, failed, seconds, slurm}; exit status 2 when a shard
// failed).
import { promises as fs } from 'node:fs';
import type { OptionSpec } from './args.js';
import { imageProgress, listAll, str, type Context } from './command.js';
import {
  imagesOfShards, isShardOperand, listShards, shardsOfPart, taskPlaceOf, trackTask, UserError,
  type Images, type ShardFile, type ShardJob, type ShardPart, type ShardSummary, type SkippedImage,
} from '../engine/index.js';

export const IMAGE_COLUMN: OptionSpec = { kind: 'string', value: 'NAME', help: "parquet shards: the column of image bytes (binary, or struct{bytes, path}); default 'image'" };

export const SHARD_OPTIONS: Record<string, OptionSpec> = {
  shard: { kind: 'string', value: 'I/N', help: 'over data-set shards: run the I-th of N parts (shards I, I+N, ..., counted from 1); parts may run at once into one --out' },
  'image-column': IMAGE_COLUMN,
};

/** "I/N" (--shard) -> the part; I counts from 1. */
export function parseShardPart(text: string): ShardPart {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const [index, count] = m ? [Number(m[1]), Number(m[2])] : [NaN, NaN];
  if (!(index >= 1 && count >= 1 && index <= count)) throw new UserError(`--shard must be I/N with 1 <= I <= N (the I-th of N parts: shards I, I+N, ...), got '${text}'`);
  return { index, count };
}

/** Whether the command's operands are data-set shards (then all must be). */
export function isShardRun(ctx: Context): boolean {
  const shards = ctx.args.operands.filter(isShardOperand).length;
  if (shards > 0 && shards < ctx.args.operands.length) throw new UserError('give either images (files, folders) or data-set shards (.tar, .parquet), not both');
  if (shards === 0 && (str(ctx.args, 'shard') ?? str(ctx.args, 'image-column')) !== undefined) throw new UserError('--shard and --image-column apply to data-set shards (.tar, .parquet)');
  return shards > 0;
}

/** The images `--images` names (refine, stats): files and folders, listed, or data-set shards
 *  ('shards/{00000..00099}.tar'), streamed shard after shard with a progress step per shard.
 *  `skipped` fills with the shards' samples without an image; `count` is the images read. */
export async function imagesOption(ctx: Context, phase: string): Promise<{ images: Images; skipped: SkippedImage[]; count: () => number }> {
  const value = str(ctx.args, 'images')!;
  const imageColumn = str(ctx.args, 'image-column');
  if (!isShardOperand(value)) {
    if (imageColumn !== undefined) throw new UserError(`an image column applies to data-set shards (.tar, .parquet), not to ${value}`, { cli: 'drop --image-column', vscode: 'leave the image column empty' });
    const images = await listAll([value]);
    return { images, skipped: [], count: () => images.length };
  }
  return imagesOfShards(listShards([value]), { ...(imageColumn !== undefined && { imageColumn }), onShard: imageProgress(ctx, `${phase} shards`) });
}

/** A shard run's inputs: the shard list, the part and the output folder (`--out DIR/`, or a
 *  folder that exists). */
export async function shardRun(ctx: Context): Promise<{ shards: ShardFile[]; part?: ShardPart; out: string; imageColumn?: string }> {
  const out = str(ctx.args, 'out');
  const isFolder = out !== undefined && (out.endsWith('/') || (await fs.stat(out).catch(() => null))?.isDirectory() === true);
  if (!isFolder) throw new UserError(`over data-set shards, --out names a folder (--out DIR/, with the trailing slash): each shard gives its own outputs there${out ? `; got ${out}` : ''}`);
  const shard = str(ctx.args, 'shard');
  const imageColumn = str(ctx.args, 'image-column');
  return { shards: listShards(ctx.args.operands), out, ...(shard !== undefined && { part: parseShardPart(shard) }), ...(imageColumn !== undefined && { imageColumn }) };
}

/** Runs a shard job's part; inside a Slurm task, its status file follows it (running, done or
 *  failed, with the counts). */
export function tracked(run: { shards: ShardFile[]; part?: ShardPart }, job: () => Promise<ShardSummary>): Promise<ShardSummary> {
  const place = taskPlaceOf(process.env);
  return place ? trackTask(place, shardsOfPart(run.shards, run.part).length, job) : job();
}

/** Per-shard progress on stderr: a step per shard, a line per failure. */
export function shardProgress(ctx: Context, phase: string): NonNullable<ShardJob['onShard']> {
  return ({ shard, done, total, status, error }) => {
    if (status === 'failed') ctx.progress.note(`unicode2: shard ${shard.path} failed: ${error}`);
    ctx.progress.report({ phase, done: status === 'start' ? done : done + (status === 'skipped' ? 1 : 0), total });
  };
}

/** The command's result for a shard run: exit status 2 when a shard failed. */
export function shardResult(summary: ShardSummary, out: string): { json: ShardSummary; text: string; exitCode: number } {
  const failed = summary.failed.map((f) => `\n  failed: ${f.shard}: ${f.error}`).join('');
  const on = summary.slurm ? ` on Slurm (jobs ${summary.slurm.jobs.join(', ') || 'none'}, ${summary.slurm.tasks} tasks)` : '';
  const text = `${summary.shards} shards into ${out}${on}: ${summary.done} done, ${summary.skipped} skipped (complete already), ${summary.failed.length} failed; ${summary.images} images in ${summary.seconds.toFixed(1)} s${failed}`;
  return { json: summary, text, exitCode: summary.failed.length > 0 ? 2 : 0 };
}

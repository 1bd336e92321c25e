// Tokenize Folder over a folder of data-set shards (.tar webdataset, .parquet): one token data set
// per shard in `.unicode2/tokens/<folder>.<codebook>.tokens/` with its manifest.json, as
// `unicode2 tokenize SHARDS --out DIR/` writes them, run here or — when Slurm's sbatch is on the
// PATH — as the same Slurm job `--slurm` submits, with the unicode2.slurm.* settings. The Lab cell
// of a run on Slurm shows each task's state; Cancel runs scancel; a reloaded window re-attaches.
import * as vscode from 'vscode';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { isShardOperand, jobFolderOf, listShards, planSlurmJob, slurmSummary, submitSlurmJob, tokenizeShards, SHARD_MANIFEST, UserError, type ShardFile, type ShardSummary, type SlurmRequest } from '../engine/index.js';
import type { LabCell } from '../../common/protocol/lab.js';
import type { Studio } from '../state/studio.js';
import type { JobContext } from '../state/jobs.js';
import { readSettings, workspaceDataDir } from '../state/config.js';
import { codebookName } from '../state/codebook-names.js';
import { tokenizeSlurmRequest } from '../state/slurm-jobs.js';
import { Recorded, tokenizeParams, type TokenizeWith } from './command.js';
import { askWhere, cliBundle, followInCell, ON_SLURM } from './slurm-run.js';

export interface TokenizeShardsRun extends TokenizeWith {
  folder: string;
  /** run as a Slurm job instead of here */
  slurm?: boolean;
}

/** The data-set shards directly in `folder`, by name; none for a folder of images (or one that
 *  cannot be read: listing its images says why). */
export async function shardsIn(folder: string): Promise<ShardFile[]> {
  const entries = await fs.readdir(folder, { withFileTypes: true }).catch(() => []);
  const files = entries.filter((e) => e.isFile() && isShardOperand(e.name)).map((e) => path.join(folder, e.name));
  return listShards(files.sort());
}

/** Here or on Slurm (asked only when sbatch is on the PATH); undefined when dismissed. */
export const askWhereShards = (shards: number): Promise<boolean | undefined> =>
  askWhere(`tokenize ${shards} data-set shard${shards === 1 ? '' : 's'}`, `an array job over the ${shards} shards`);

/** The run's output folder: the shards' token sets and their manifest. */
function outputFolder(t: TokenizeShardsRun): string {
  const data = workspaceDataDir();
  if (!data) throw new UserError('the token sets of data-set shards are written under the workspace folder\'s .unicode2/tokens/, and no folder is open', { cli: 'give --out DIR/', vscode: 'open a folder (File > Open Folder…) and run Tokenize Folder again' });
  return path.join(data, 'tokens', `${path.basename(t.folder)}.${codebookName(t.codebook)}.tokens`);
}

/** A shard run's summary as its cell shows it; failed shards are the cell's warning. */
function shardOutputs(summary: ShardSummary, out: string) {
  const failed = summary.failed.map((f) => `${path.basename(f.shard)}: ${f.error}`);
  return {
    metrics: { shards: summary.shards, images: summary.images, done: summary.done, skipped: summary.skipped, failed: summary.failed.length, seconds: summary.seconds.toFixed(1) },
    files: [path.join(out, SHARD_MANIFEST)],
    ...(failed.length > 0 && { warning: `${failed.length} shard${failed.length === 1 ? '' : 's'} failed: ${failed.join('; ')}` }),
  };
}

export async function runShards(studio: Studio, t: TokenizeShardsRun, shards: ShardFile[]): Promise<void> {
  const out = outputFolder(t);
  const { params, replay } = tokenizeParams(t);
  const spec = { kind: 'tokenize' as const, inputs: { folder: t.folder, codebook: t.codebook }, params: { ...params, ...(t.slurm && ON_SLURM) }, replay };
  const title = `Tokenize ${shards.length} shards of ${path.basename(t.folder)}`;
  const result = t.slurm
    ? await studio.jobs.run({ ...spec, title: `${title} on Slurm` }, (ctx) => submitAndFollow(studio, ctx, t, shards, out))
    : await studio.jobs.run({ ...spec, title }, async ({ signal, progress }) => {
      const cb = await studio.codebook(t.codebook);
      const encoder = await studio.encoderFor(cb, t.encoder);
      const onShard = ({ done, total, status }: { done: number; total: number; status: string }) => progress({ phase: 'tokenize shards', done: done + (status === 'skipped' ? 1 : 0), total });
      return shardOutputs(await tokenizeShards(cb, encoder, await studio.backend.get(), { shards, out, control: { signal, search: t.search }, onShard }), out);
    });
  if (result) void vscode.window.showInformationMessage(`UniCode²: ${result.metrics.images} images of ${shards.length} shards tokenized with ${codebookName(t.codebook)} → ${out}`);
}

/** The Slurm request of a run: the encoder is opened only when it is not the codebook's own (its
 *  id is part of what the outputs depend on). */
async function slurmRequest(studio: Studio, t: TokenizeShardsRun, shards: ShardFile[], out: string): Promise<SlurmRequest> {
  const cb = await studio.codebook(t.codebook);
  const other = t.encoder && t.encoder !== cb.meta.encoder.id ? t.encoder : undefined;
  const encoder = other ? { spec: other, id: (await studio.encoderFor(cb, other)).descriptor.id } : undefined;
  return tokenizeSlurmRequest({ shards, out, codebook: t.codebook, cb, ...(encoder && { encoder }), search: t.search, settings: readSettings().slurm, cli: cliBundle(studio) });
}

async function submitAndFollow(studio: Studio, ctx: JobContext, t: TokenizeShardsRun, shards: ShardFile[], out: string) {
  const request = await slurmRequest(studio, t, shards, out);
  const plan = await planSlurmJob(request);
  // every part's outputs complete already: nothing to submit, the summary says so
  if (plan.pending.length === 0) return shardOutputs(await slurmSummary({ ...request, count: plan.count }, null, [], 0), out);
  const sub = await submitSlurmJob(request, plan);
  studio.log.appendLine(`[tokenize] submitted array job ${sub.array} (${sub.tasks.length} of ${plan.count} tasks) and merge job ${sub.merge} from ${plan.folder}`);
  return follow(studio, ctx, request);
}

/** Follows the run's job folder in its cell until the jobs end; the summary a local run gives. */
async function follow(studio: Studio, ctx: JobContext, request: SlurmRequest) {
  const { jobs, sub, views, seconds } = await followInCell(studio, ctx, path.resolve(jobFolderOf(request.out)));
  return shardOutputs(await slurmSummary({ ...request, count: jobs.count }, sub, views, seconds), request.out);
}

/** Re-attaches a reloaded window to a cell's run on Slurm: follows its job folder again. */
export async function reattach(studio: Studio, cell: LabCell): Promise<void> {
  const folder = cell.slurm!.folder;
  const r = new Recorded(cell);
  const t: TokenizeShardsRun = { folder: r.input('folder'), ...r.tokenizeWith(), slurm: true };
  await studio.jobs.run({ kind: 'tokenize', title: cell.title, inputs: cell.inputs, params: cell.params, ...(cell.replay && { replay: cell.replay }), resume: cell.id }, async (ctx) => {
    const request = await slurmRequest(studio, t, await shardsIn(t.folder), path.dirname(folder));
    return follow(studio, ctx, request);
  });
}

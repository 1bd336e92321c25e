// The sbatch scripts of a job over shards: an array job whose task i runs the same command with
// `--shard i/N`, and a merge step (submitted with afterok on the array) that runs the command
// whole: every shard is complete by then, so it only rewrites the manifest. Both run the CLI
// again with the absolute paths of node and the CLI script, from the directory the command was
// given in, so relative paths mean what they meant there. Every path and argument goes through
// shellQuote; the setup line is the user's own shell text, run as written before the command.
import { shellQuote } from './shell.js';
import { TASK_FOLDER_ENV } from './task.js';
import { logName } from './job-folder.js';

/** How to run the command again on a node. */
export interface Invocation {
  /** what the job is, named in the scripts and job names: 'tokenize' */
  job: string;
  /** the command and its options, after node and the CLI script (without --shard) */
  argv: string[];
  /** its operands, given after `--` */
  operands: string[];
  node: string;
  cli: string;
  /** the directory the command was given in */
  cwd: string;
  /** a shell line run before the command in every task (module load, a venv) */
  setup?: string;
}

export const TASKS_SCRIPT = 'tasks.sbatch';
export const MERGE_SCRIPT = 'merge.sbatch';

/** "1-3,5,7-8" for Slurm's --array. */
export function arrayRanges(ids: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < ids.length; i++) {
    let j = i;
    while (j + 1 < ids.length && ids[j + 1] === ids[j]! + 1) j++;
    parts.push(i === j ? `${ids[i]}` : `${ids[i]}-${ids[j]}`);
    i = j;
  }
  return parts.join(',');
}

/** A job's script: its directives, then the CLI run again from the command's directory with the
 *  task's own options (`command`: shell text after the forwarded options, e.g. ` --shard ...`). */
export function jobScript(run: Invocation, folder: string, directives: string[], comment: string, command: string): string {
  return [
    '#!/bin/bash',
    ...directives.map((d) => `#SBATCH ${d}`),
    `# ${comment}`,
    '# Written by unicode2; submitted from this folder (the logs land here). Re-running the same',
    '# unicode2 command submits only the tasks whose outputs are missing.',
    'set -eo pipefail',
    `cd -- ${shellQuote(run.cwd)}`,
    ...(run.setup ? [run.setup] : []),
    `export ${TASK_FOLDER_ENV}=${shellQuote(folder)}`,
    `exec ${[run.node, run.cli, ...run.argv].map(shellQuote).join(' ')}${command} --json -- ${run.operands.map(shellQuote).join(' ')}`,
    '',
  ].join('\n');
}

/** The array job's script: tasks `ids` of `count` parts. */
export function tasksScript(run: Invocation, folder: string, ids: readonly number[], count: number): string {
  // %a: Slurm's array task id in the log's name, relative to the folder it is submitted from
  const directives = [`--job-name=unicode2-${run.job}`, `--array=${arrayRanges(ids)}`, '--output=task-%a.log'];
  const comment = `unicode2 ${run.job}, task i of ${count}: shards i, i+${count}, ... of the list (i = $SLURM_ARRAY_TASK_ID)`;
  return jobScript(run, folder, directives, comment, ` --shard "$SLURM_ARRAY_TASK_ID"/${count}`);
}

/** The merge step's script: the command whole, after every task succeeded. */
export function mergeScript(run: Invocation, folder: string): string {
  const directives = [`--job-name=unicode2-${run.job}-merge`, `--output=${logName('merge')}`];
  return jobScript(run, folder, directives, `unicode2 ${run.job}, the merge: every shard done, the manifest written whole`, '');
}

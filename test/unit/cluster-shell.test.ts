// How text reaches the Slurm scripts: shellQuote (every path, key and argument) read back by a real
// bash as the same word, shellSplit (the user's sbatch options) splitting as bash does without
// evaluating anything, and --array's id ranges. The scripts on a cluster: test/slurm/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { shellQuote, shellSplit } from '../../extension/engine/cluster/shell.js';
import { arrayRanges } from '../../extension/engine/cluster/scripts.js';

const NASTY = ['plain', 'data set $(touch pwned)', "it's", "''", '`id`', '$HOME', 'a\nb', '"q" \\ *', '', '-n', '!x', '~', 'é ünï'];

/** The words bash sees for a command line, one per line of a NUL-separated print. */
const bashWords = (line: string) => execFileSync('bash', ['-c', `printf '%s\\0' ${line}`], { encoding: 'utf8' }).split('\0').slice(0, -1);

test('shellQuote: bash reads every quoted word back as itself, and runs nothing', () => {
  assert.deepEqual(bashWords(NASTY.map(shellQuote).join(' ')), NASTY);
  assert.equal(shellQuote('/abs/path-1.tar'), '/abs/path-1.tar');
  assert.equal(shellQuote("it's"), `'it'\\''s'`);
});

test('shellSplit: the words bash would make, nothing expanded; an open quote is refused', () => {
  const lines = ["--partition=gpu --gres=gpu:1   --time=04:00:00", `--comment='a b' --x="c \\"d\\" \\$e" f\\ g`, `--job-name=$(touch pwned) '$HOME' *`];
  assert.deepEqual(shellSplit(lines[0]!, 'o'), ['--partition=gpu', '--gres=gpu:1', '--time=04:00:00']);
  assert.deepEqual(shellSplit(lines[1]!, 'o'), ['--comment=a b', '--x=c "d" $e', 'f g']);
  assert.deepEqual(shellSplit(lines[2]!, 'o'), ['--job-name=$(touch', 'pwned)', '$HOME', '*']);
  // the same words bash makes for the first two (no expansion in them to differ)
  for (const line of lines.slice(0, 2)) assert.deepEqual(shellSplit(line, 'o'), bashWords(line));
  assert.deepEqual(shellSplit('  ', 'o'), []);
  assert.deepEqual(shellSplit("''", 'o'), ['']);
  assert.throws(() => shellSplit("--comment='open", 'the sbatch options'), /^UserError: the sbatch options: the quote ' at character 11 is never closed/);
});

test('arrayRanges: consecutive task ids as ranges', () => {
  assert.equal(arrayRanges([1, 2, 3, 5, 7, 8]), '1-3,5,7-8');
  assert.equal(arrayRanges([4]), '4');
  assert.equal(arrayRanges([]), '');
});

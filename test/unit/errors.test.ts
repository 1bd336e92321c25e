// An error says what to do in the surface the user is in: the CLI names flags and environment
// variables, VS Code names commands and settings (common/errors.ts). Checked on the remedies, on
// real engine errors, and on the sources: no error outside the CLI words a flag into its fact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REMEDIES, UserError, type Remedy } from '../../common/errors.js';
import { lockOutput } from '../../extension/engine/io/output-lock.js';
import { openCodebookEncoder, EXTERNAL_ENCODER, type EncoderDescriptor } from '../../extension/engine/embed/encoders/index.js';
import { openBackend } from '../../native-gpu/index.js';

const root = path.resolve(__dirname, '../..');
/** a CLI flag or one of the project's environment variables */
const CLI_WORDS = /(^|[\s(])--[a-z]|\bUNICODE2_[A-Z_]+|\bunicode2 [a-z]+\b/;
/** a palette command or a setting */
const VSCODE_WORDS = /UniCode²: |\bunicode2\.[a-zA-Z]+/;

test('a UserError renders its fact with the remedy of each surface; message is the CLI rendering', () => {
  const err = new UserError('no WebGPU adapter found', REMEDIES.useCpu);
  assert.equal(err.text('cli'), 'no WebGPU adapter found; use --device cpu');
  assert.equal(err.message, err.text('cli'));
  assert.equal(err.text('vscode'), 'no WebGPU adapter found; choose the cpu device ("UniCode²: Select Compute Device…")');
  const bare = new UserError('codebook x.safetensors does not exist');
  assert.equal(bare.text('vscode'), bare.message);
  assert.equal(bare.text('cli'), bare.message);
});

test('each shared remedy speaks its own surface: flags only for the CLI, commands and settings only for VS Code', () => {
  for (const [name, remedy] of Object.entries(REMEDIES) as [string, Remedy][]) {
    assert.doesNotMatch(remedy.vscode, CLI_WORDS, `REMEDIES.${name}.vscode`);
    assert.doesNotMatch(remedy.cli, VSCODE_WORDS, `REMEDIES.${name}.cli`);
  }
});

test('real engine errors: a codebook of external embeddings, and an output another job holds', async () => {
  const backend = await openBackend('cpu');
  try {
    const external = { meta: { encoder: { kind: 'onnx', id: EXTERNAL_ENCODER, patch: 16, inputSize: [224, 224], d: 8 } as EncoderDescriptor } };
    const err = await openCodebookEncoder(external, undefined, backend).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof UserError);
    assert.match(err.text('cli'), /--encoder/);
    assert.doesNotMatch(err.text('vscode'), CLI_WORDS);
    assert.match(err.text('vscode'), /choose the encoder/);
  } finally {
    await backend.dispose();
  }

  const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'errors-')), 'cb.safetensors');
  const held = await lockOutput(out, 'build');
  try {
    // A job of this process (the same VS Code window) holds it.
    const mine = await lockOutput(out, 'build').then(() => null, (e: unknown) => e);
    assert.ok(mine instanceof UserError);
    assert.equal(mine.text('vscode'), `a build into ${out} is already running; wait for it to finish or cancel it`);
    assert.equal(mine.text('cli'), `a build into ${out} is already running; wait for it or choose another output`);
  } finally {
    await held.release();
  }
  // A job of another live process holds it: a child that takes the lock and waits.
  const script = `const { lockOutput } = require(${JSON.stringify(path.join(root, 'extension/engine/io/output-lock.ts'))});
    lockOutput(${JSON.stringify(out)}, 'build').then(() => { process.stdout.write(String(process.pid) + '\\n'); setTimeout(() => {}, 60000); });`;
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const pid = await new Promise<number>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim()))));
    const theirs = await lockOutput(out, 'build').then(() => null, (e: unknown) => e);
    assert.ok(theirs instanceof UserError);
    assert.equal(theirs.text('vscode'), `another build is writing ${out} (pid ${pid}); wait for it to finish`);
  } finally {
    child.kill();
  }
});

/** The first argument of every `new UserError(` in a source file, as written. */
function userErrorFacts(src: string): string[] {
  const facts: string[] = [];
  for (const m of src.matchAll(/new UserError\(\s*(['"`])/g)) {
    const quote = m[1]!;
    let i = m.index! + m[0].length;
    let text = '';
    while (i < src.length && src[i] !== quote) {
      if (src[i] === '\\') text += src[i++];
      text += src[i++];
    }
    facts.push(text);
  }
  return facts;
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? sources(full) : full.endsWith('.ts') ? [full] : [];
  });
}

test('outside the CLI, no UserError names a flag or an environment variable in its fact (that is what a remedy is for)', () => {
  const dirs = ['common', 'native-gpu', 'extension/engine', 'extension/state', 'extension/commands', 'extension/panels'];
  const offenders: string[] = [];
  let seen = 0;
  for (const file of dirs.flatMap((d) => sources(path.join(root, d)))) {
    for (const fact of userErrorFacts(readFileSync(file, 'utf8'))) {
      seen++;
      if (CLI_WORDS.test(fact)) offenders.push(`${path.relative(root, file)}: ${fact}`);
    }
  }
  assert.ok(seen > 50, `the scan found the errors (${seen})`);
  assert.deepEqual(offenders, []);
});

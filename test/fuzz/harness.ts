// The fuzz tier's way of running the real CLI (node dist/cli.js) on hostile input: under a hard
// address-space limit (prlimit --as: a runaway allocation fails instead of taking the machine),
// with its peak RSS measured by the kernel (VmHWM, written at exit by peak-rss.cjs), and killed if
// it outlives a time limit (a hang is a failure, never a wait). These are bounds a correct run
// stays far below, not timings: nothing here asserts how fast anything is.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UserError } from '../../common/errors.js';

export const ROOT = path.join(__dirname, '../..');
export const CLI = path.join(ROOT, 'dist/cli.js');
export const IMAGES = path.join(ROOT, 'test/fixtures/images');
const PEAK_RSS = path.join(__dirname, 'peak-rss.cjs');

/** Hard cap on the CLI's address space: Node + onnxruntime + libvips reserve about 1.3 GB of it. */
export const ADDRESS_SPACE_BYTES = 4 * 2 ** 30;
/** Peak RSS every run must stay under, bad input or not (a plain tokenize peaks near 100 MB). */
export const PEAK_RSS_CEILING_MB = 600;
/** A run still going after this long is hung. */
export const TIME_LIMIT_MS = 90_000;

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** peak resident set size in MB, or null when the process was killed before it could say */
  peakRssMb: number | null;
  /** true when the time limit killed it */
  timedOut: boolean;
}

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** watch stderr as it comes, e.g. to signal the child at a point of its progress */
  onStderr?: (stderr: string, child: ReturnType<typeof spawn>) => void;
  /** a command line the node invocation runs under (e.g. ['setpriv', '--reuid=65534', ...]) */
  wrap?: string[];
  /** pass the arguments as given, without the --device cpu added for commands that take one */
  asGiven?: boolean;
}

let runCount = 0;
/** The largest peak RSS seen by this test file's runs, for its closing diagnostic. */
export const largestPeak = { mb: 0, label: '' };

/** Runs `unicode2 <args>` (on the CPU backend unless --device is given or opts.asGiven). */
export async function runCli(args: string[], opts: RunOptions = {}): Promise<Run> {
  const argv = args.includes('--device') || opts.asGiven ? args : [...args, '--device', 'cpu'];
  const peakFile = path.join(os.tmpdir(), `u2-peak-${process.pid}-${runCount++}`);
  const command = [
    ...(opts.wrap ?? []),
    'prlimit', `--as=${ADDRESS_SPACE_BYTES}`, '--',
    process.execPath, '--require', PEAK_RSS, CLI, ...argv,
  ];
  const child = spawn(command[0]!, command.slice(1), {
    cwd: opts.cwd ?? os.tmpdir(),
    env: { ...process.env, UNICODE2_DEBUG: '', UNICODE2_TEST_PEAK_RSS_FILE: peakFile, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, TIME_LIMIT_MS);
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
    opts.onStderr?.(stderr, child);
  });
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c, s) => resolve([c, s]));
  });
  clearTimeout(timer);
  const peak = await fs.readFile(peakFile, 'utf8').catch(() => '');
  await fs.rm(peakFile, { force: true });
  return { code, signal, stdout, stderr, peakRssMb: peak ? Number(peak) / 1024 : null, timedOut };
}

/** The run ended by itself, in time, under the memory ceiling. */
export function assertBounded(r: Run, label: string): void {
  assert.ok(!r.timedOut, `${label}: still running after ${TIME_LIMIT_MS / 1000} s (hung)\n${r.stderr}`);
  assert.ok(r.peakRssMb !== null, `${label}: ended without reporting its peak RSS (exit ${r.code}, signal ${r.signal})\n${r.stderr.slice(0, 2000)}`);
  if (r.peakRssMb > largestPeak.mb) Object.assign(largestPeak, { mb: r.peakRssMb, label });
  assert.ok(r.peakRssMb < PEAK_RSS_CEILING_MB, `${label}: peak RSS ${r.peakRssMb.toFixed(0)} MB over the ${PEAK_RSS_CEILING_MB} MB ceiling`);
}

/** Bad input: exit 2, exactly one stderr line `unicode2: ...` matching `pattern`, no internal
 *  error, nothing on stdout, bounded. */
export function assertRefused(r: Run, pattern: RegExp, label: string): void {
  assertBounded(r, label);
  assert.equal(r.code, 2, `${label}: exit ${r.code} (signal ${r.signal}), expected 2\n${r.stderr.slice(0, 2000)}`);
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  assert.equal(lines.length, 1, `${label}: ${lines.length} stderr lines, expected one\n${r.stderr.slice(0, 2000)}`);
  assert.match(lines[0]!, /^unicode2: /, label);
  assert.doesNotMatch(lines[0]!, /internal error/, label);
  assert.match(lines[0]!, pattern, label);
  assert.equal(r.stdout, '', `${label}: printed on stdout`);
}

/** For property tests run in-process: runs `parse`; a throw must be a one-line UserError. Returns
 *  the result, or undefined when it was refused. */
export async function parsedOrRefused<T>(parse: () => T | Promise<T>, replay: string): Promise<T | undefined> {
  try {
    return await parse();
  } catch (err) {
    assert.ok(err instanceof UserError, `${replay}: threw ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
    assert.ok(!err.message.includes('\n'), `${replay}: a multi-line message: ${JSON.stringify(err.message)}`);
    return undefined;
  }
}

export async function tempDir(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), `u2-fuzz-${prefix}-`));
}

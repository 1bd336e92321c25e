// Runs the built `unicode2` CLI (dist/cli.js) as a child process and checks its contract: one JSON
// document on stdout with --json, bad input = exit 2 with one line on stderr.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';

export const CLI = path.join(__dirname, '../../dist/cli.js');

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliRunner {
  cli(args: string[], onStderr?: (text: string, child: ReturnType<typeof spawn>) => void): Promise<Run>;
  cliJson(args: string[]): Promise<Record<string, any>>;
  assertUserError(args: string[], pattern: RegExp): Promise<void>;
}

/** Commands that compute nothing on a device and so take no --device. */
const DEVICELESS = ['prior', 'codebook', 'jobs'];

/** A runner whose commands run in the folder `cwd()` returns (read at each call). Commands run
 *  on the CPU backend unless a test names a device: 'auto' would probe for a GPU through Dawn,
 *  whose native warnings on stderr are not the CLI's to test here. */
export function cliRunner(cwd: () => string): CliRunner {
  const cli: CliRunner['cli'] = (args, onStderr) => {
    const keep = args.includes('--help') || args.includes('--device') || DEVICELESS.includes(args[0]!);
    const argv = keep ? args : [...args, '--device', 'cpu'];
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, ...argv], { cwd: cwd(), env: { ...process.env, UNICODE2_DEBUG: '' } });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
      child.stderr.setEncoding('utf8').on('data', (s: string) => {
        stderr += s;
        onStderr?.(stderr, child);
      });
      child.on('error', reject);
      child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    });
  };
  return {
    cli,
    /** Runs with --json and returns the one JSON document printed, after checking exit 0. */
    async cliJson(args) {
      const r = await cli([...args, '--json', '--quiet']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      return JSON.parse(r.stdout);
    },
    /** Bad input: exit 2, exactly one line `unicode2: ...` on stderr, no stack, nothing on stdout. */
    async assertUserError(args, pattern) {
      const r = await cli([...args, '--quiet']);
      assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
      assert.equal(r.stdout, '');
      const lines = r.stderr.split('\n').filter(Boolean);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, /^unicode2: /);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
      assert.match(lines[0]!, pattern);
    },
  };
}

// `unicode2`: the engine from the command line, for servers, scripts and CI.
// Contract: stdout carries the result (exactly one JSON document with --json), stderr carries
// progress and errors. Exit 0 on success, 2 on bad input (one line: `unicode2: <message>`),
// 130 when interrupted (Ctrl-C aborts the run; atomic writes leave no partial file), 1 on a bug
// (message only; the stack with UNICODE2_DEBUG=1). Each command lives in cli/commands/.
import { commandHelp, parseArgs, wantsHelp } from './cli/args.js';
import { ProgressReporter } from './cli/progress.js';
import type { Command, CommandGroup } from './cli/command.js';
import { DEFAULTS, openBackend, CancelledError, UserError, type ComputeBackend, type DeviceChoice } from './engine/index.js';
import { embed } from './cli/commands/embed.js';
import { build } from './cli/commands/build.js';
import { tokenize } from './cli/commands/tokenize.js';
import { text } from './cli/commands/text.js';
import { search } from './cli/commands/search.js';
import { decode } from './cli/commands/decode.js';
import { refine } from './cli/commands/refine.js';
import { calibrate } from './cli/commands/calibrate.js';
import { stats } from './cli/commands/stats.js';
import { demo } from './cli/commands/demo.js';
import { prior } from './cli/commands/prior.js';
import { generate } from './cli/commands/generate.js';
import { codebook } from './cli/commands/codebook.js';
import { jobs } from './cli/commands/jobs.js';

const COMMANDS: Record<string, Command | CommandGroup> = { embed, build, tokenize, text, search, calibrate, decode, refine, codebook, stats, prior, generate, demo, jobs };

const isGroup = (c: Command | CommandGroup): c is CommandGroup => 'subcommands' in c;

function listing(entries: [string, string][]): string[] {
  const width = Math.max(...entries.map(([n]) => n.length)) + 2;
  return entries.map(([name, summary]) => `  ${name.padEnd(width)}${summary}`);
}

function globalHelp(): string {
  return [
    'usage: unicode2 <command> [options]     (unicode2 <command> --help for its options)',
    '',
    'commands:',
    ...listing(Object.entries(COMMANDS).map(([name, c]) => [name, isGroup(c) ? c.summary : c.spec.summary])),
    '',
  ].join('\n');
}

function groupHelp(group: CommandGroup): string {
  return [
    `usage: unicode2 ${group.name} <subcommand> [options]     (unicode2 ${group.name} <subcommand> --help for its options)`,
    '',
    group.summary,
    '',
    'subcommands:',
    ...listing(Object.entries(group.subcommands).map(([name, c]) => [name, c.spec.summary])),
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Entry point

function write(stream: NodeJS.WriteStream, text: string): Promise<void> {
  return new Promise((resolve) => stream.write(text, () => resolve()));
}

/** Runs one command line; returns the exit code. */
async function main(argv: string[]): Promise<number> {
  const name = argv[0];
  let rest = argv.slice(1);
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    await write(name === undefined ? process.stderr : process.stdout, globalHelp());
    return name === undefined ? 2 : 0;
  }
  const entry = COMMANDS[name];
  if (!entry) throw new UserError(`unknown command '${name}' (commands: ${Object.keys(COMMANDS).join(', ')})`);
  let command: Command;
  if (isGroup(entry)) {
    const [sub, ...subRest] = rest;
    if (sub === undefined || sub === '--help' || sub === '-h') {
      await write(sub === undefined ? process.stderr : process.stdout, groupHelp(entry));
      return sub === undefined ? 2 : 0;
    }
    const found = entry.subcommands[sub];
    if (!found) throw new UserError(`unknown subcommand '${name} ${sub}' (subcommands: ${Object.keys(entry.subcommands).join(', ')})`);
    command = found;
    rest = subRest;
  } else {
    command = entry;
  }
  if (wantsHelp(rest)) {
    await write(process.stdout, commandHelp(command.spec));
    return 0;
  }
  const args = parseArgs(command.spec, rest);
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    // First Ctrl-C: cancel cleanly (atomic writes roll back). Second: the user insists.
    if (++interrupts > 1) process.exit(130);
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  const progress = new ProgressReporter(process.stderr, Boolean(args.options.quiet));
  let backend: Promise<ComputeBackend> | undefined;
  try {
    const result = await command.run({
      args,
      signal: controller.signal,
      progress,
      backend: () => (backend ??= openBackend(((args.options.device as string | undefined) ?? DEFAULTS.device) as DeviceChoice)),
    });
    progress.end();
    await write(process.stdout, args.options.json ? JSON.stringify(result.json) + '\n' : result.text + '\n');
    return result.exitCode ?? 0;
  } finally {
    progress.end();
    process.off('SIGINT', onSigint);
    if (backend) await (await backend.catch(() => undefined))?.dispose();
  }
}

async function exitCodeFor(err: unknown): Promise<number> {
  if (err instanceof CancelledError) {
    await write(process.stderr, 'unicode2: cancelled\n');
    return 130;
  }
  const message = err instanceof UserError ? err.text('cli') : err instanceof Error ? err.message : String(err);
  const oneLine = message.split('\n')[0];
  if (err instanceof UserError) {
    await write(process.stderr, `unicode2: ${oneLine}\n`);
    return 2;
  }
  const debug = process.env.UNICODE2_DEBUG === '1' && err instanceof Error && err.stack;
  await write(process.stderr, `unicode2: internal error: ${debug || oneLine}\n`);
  return 1;
}

main(process.argv.slice(2))
  .catch(exitCodeFor)
  // Exit explicitly: a native module (Dawn, onnxruntime) may keep the event loop alive after its
  // last use, and the CLI must return to the shell as soon as its work is done.
  .then((code) => process.exit(code));

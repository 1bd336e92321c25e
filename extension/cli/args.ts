// A small, strict argument parser for the `unicode2` commands: each command declares its options,
// and anything not declared, missing or malformed is a UserError (exit 2) naming the option.
// Hand-written so the CLI carries no dependency; accepts `--name value` and `--name=value`.
import { UserError } from '../../common/errors.js';

export type OptionKind = 'string' | 'number' | 'int' | 'flag';

export interface OptionSpec {
  kind: OptionKind;
  help: string;
  /** shown in help, e.g. FILE, K */
  value?: string;
  required?: boolean;
  /** allowed values for a string option */
  choices?: readonly string[];
  /** its value is itself a list of options (`--sbatch '--partition=gpu'`): taken even when it
   *  begins with -- */
  optionsValue?: true;
}

export interface CommandSpec {
  name: string;
  summary: string;
  /** positional operands, e.g. { name: 'IMAGES', min: 1, max: Infinity } */
  operands?: { name: string; min: number; max: number };
  options: Record<string, OptionSpec>;
  /** groups of options of which exactly one must be given */
  exactlyOne?: string[][];
  /** extra lines at the end of the help */
  notes?: string[];
}

export type OptionValue = string | number | boolean;

export interface ParsedArgs {
  operands: string[];
  options: Record<string, OptionValue | undefined>;
}

export function parseArgs(spec: CommandSpec, argv: string[]): ParsedArgs {
  const options: Record<string, OptionValue | undefined> = {};
  const operands: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      operands.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--') || arg === '-') {
      if (arg.startsWith('-') && arg !== '-') throw new UserError(`unknown option ${arg} for '${spec.name}' (see unicode2 ${spec.name} --help)`);
      operands.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const opt = spec.options[name];
    if (!opt) throw new UserError(`unknown option --${name} for '${spec.name}' (see unicode2 ${spec.name} --help)`);
    if (options[name] !== undefined) throw new UserError(`option --${name} is given twice`);
    if (opt.kind === 'flag') {
      if (eq >= 0) throw new UserError(`option --${name} takes no value`);
      options[name] = true;
      continue;
    }
    const raw = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (raw === undefined || (eq < 0 && raw.startsWith('--') && !opt.optionsValue)) throw new UserError(`option --${name} needs a value (${opt.value ?? opt.kind})`);
    options[name] = convert(name, opt, raw);
  }
  for (const [name, opt] of Object.entries(spec.options)) {
    if (opt.required && options[name] === undefined) throw new UserError(`missing required option --${name} for '${spec.name}'`);
  }
  for (const group of spec.exactlyOne ?? []) {
    const given = group.filter((n) => options[n] !== undefined);
    if (given.length !== 1) {
      const list = group.map((n) => `--${n}`).join(' or ');
      throw new UserError(given.length === 0 ? `'${spec.name}' needs ${list}` : `give only one of ${list}`);
    }
  }
  const { operands: want } = spec;
  const min = want?.min ?? 0;
  const max = want?.max ?? 0;
  if (operands.length < min) throw new UserError(`'${spec.name}' needs ${want!.name}`);
  if (operands.length > max) throw new UserError(`unexpected argument '${operands[max]}' for '${spec.name}'`);
  return { operands, options };
}

function convert(name: string, opt: OptionSpec, raw: string): OptionValue {
  if (opt.kind === 'string') {
    if (opt.choices && !opt.choices.includes(raw)) {
      throw new UserError(`option --${name} must be one of ${opt.choices.join(', ')}, got '${raw}'`);
    }
    return raw;
  }
  const n = raw.trim() === '' ? NaN : Number(raw);
  if (!Number.isFinite(n) || (opt.kind === 'int' && !Number.isInteger(n))) {
    throw new UserError(`option --${name} needs ${opt.kind === 'int' ? 'a whole number' : 'a number'}, got '${raw}'`);
  }
  return n;
}

/** `--help` anywhere wins over everything else, even over malformed options. */
export function wantsHelp(argv: string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

export function commandHelp(spec: CommandSpec): string {
  const operand = spec.operands ? ` ${spec.operands.max > 1 ? `${spec.operands.name}...` : spec.operands.name}` : '';
  const lines = [`usage: unicode2 ${spec.name}${operand} [options]`, '', spec.summary, '', 'options:'];
  const entries = Object.entries(spec.options).map(([name, o]) => {
    const left = `  --${name}${o.kind === 'flag' ? '' : ` ${o.value ?? (o.choices ? o.choices.join('|') : o.kind.toUpperCase())}`}`;
    return [left, `${o.help}${o.required ? ' (required)' : ''}`] as const;
  });
  const width = Math.max(...entries.map(([l]) => l.length)) + 2;
  for (const [left, right] of entries) lines.push(left.padEnd(width) + right);
  if (spec.notes?.length) lines.push('', ...spec.notes);
  return lines.join('\n') + '\n';
}

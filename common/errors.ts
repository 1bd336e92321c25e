// Errors the user can act on. The CLI prints a UserError as one line and exits 2 (CancelledError:
// 130); the extension shows it in a notification. Anything else is a bug.
//
// What the user should do about an error depends on where they are: at a shell they pass a flag
// or set an environment variable, in VS Code they run a command or change a setting. So a
// UserError keeps the fact apart from its remedy, and the remedy says it once per surface; each
// surface renders the error with text(surface). `message` is the CLI's rendering (what logs,
// stack traces and the engine's own tests see).

/** Where the user reads an error. */
export type Surface = 'cli' | 'vscode';

/** What to do about an error, in each surface's own terms. */
export type Remedy = Readonly<Record<Surface, string>>;

/** Remedies several parts of the code give; an error may also carry its own. */
export const REMEDIES = {
  useCpu: { cli: 'use --device cpu', vscode: 'choose the cpu device ("UniCode²: Select Compute Device…")' },
  allowSoftwareGpuOrCpu: {
    cli: 'software adapters are used only when UNICODE2_ALLOW_SOFTWARE_GPU=1; use --device cpu',
    vscode: 'software adapters are used only with the setting unicode2.allowSoftwareGpu; or choose the cpu device ("UniCode²: Select Compute Device…")',
  },
  refineFirst: { cli: 'refine the codebook first (unicode2 refine)', vscode: 'refine the codebook first ("UniCode²: Refine Trainable Codebook…")' },
  nameEncoder: {
    cli: 'name the encoder that made them with --encoder',
    vscode: 'choose the encoder that made them when asked (run the command again)',
  },
  locateEncoder: {
    cli: "name the encoder's model folder with --encoder",
    vscode: "choose the encoder's model folder when asked (run the command again)",
  },
} as const satisfies Record<string, Remedy>;

export class UserError extends Error {
  override readonly name = 'UserError';
  /** what was found and what was expected, without what to do about it */
  readonly fact: string;
  readonly remedy: Remedy | undefined;

  /** Control characters in the fact (a newline in a file name or in text quoted from a file)
   *  are written as escapes, so every rendering is one line whatever it quotes. */
  constructor(fact: string, remedy?: Remedy) {
    const line = fact.replace(/[\u0000-\u001f\u007f]/g, (c) => (c === '\n' ? '\\n' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
    super(remedy ? `${line}; ${remedy.cli}` : line);
    this.fact = line;
    this.remedy = remedy;
  }

  /** The one line a surface shows: the fact and, when there is one, that surface's remedy. */
  text(surface: Surface): string {
    return this.remedy ? `${this.fact}; ${this.remedy[surface]}` : this.fact;
  }
}

export class CancelledError extends Error {
  override readonly name = 'CancelledError';
  constructor(message = 'cancelled') {
    super(message);
  }
}

/** Throws CancelledError when the signal has fired; call between units of work. */
export function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CancelledError();
}

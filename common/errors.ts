// Errors the user can act on. The CLI prints `message` as one line and exits 2 (UserError) or
// 130 (CancelledError); the extension shows it in a notification. Anything else is a bug.

export class UserError extends Error {
  override readonly name = 'UserError';
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

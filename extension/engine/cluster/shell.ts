// The one way text reaches a shell script: shellQuote. Paths, keys and user text are written
// single-quoted, so a folder named `data set $(touch pwned)` is a name and nothing runs. And the
// reverse for options users type as one string (`--sbatch '--partition=gpu --time=04:00:00'`):
// shellSplit splits them as a shell would (quotes, backslashes) without evaluating anything.
import { UserError } from '../../../common/errors.js';

/** `text` as one shell word, single-quoted ('it'\''s'); words of safe characters stay bare. */
export function shellQuote(text: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(text)) return text;
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** Words as a POSIX shell splits `text`: blanks separate, '...' is literal, "..." keeps
 *  everything but \" \\ \$ \`, a backslash escapes the next character. Nothing is expanded: a
 *  `$`, `*` or backquote is kept as the character. Unbalanced quotes are refused. */
export function shellSplit(text: string, what: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else if (c === "'" || c === '"') {
      const end = closingQuote(text, i, what);
      const body = text.slice(i + 1, end);
      word = (word ?? '') + (c === '"' ? body.replace(/\\([\\"$`])/g, '$1') : body);
      i = end;
    } else if (c === '\\') {
      word = (word ?? '') + (text[++i] ?? '');
    } else {
      word = (word ?? '') + c;
    }
  }
  if (word !== null) words.push(word);
  return words;
}

function closingQuote(text: string, open: number, what: string): number {
  const quote = text[open]!;
  for (let i = open + 1; i < text.length; i++) {
    if (quote === '"' && text[i] === '\\') i++;
    else if (text[i] === quote) return i;
  }
  throw new UserError(`${what}: the quote ${quote} at character ${open + 1} is never closed`);
}

// Finds the product's functions longer than a screen (MAX_FUNCTION_LINES, from the line that opens
// the body to the line that closes it). A function may be longer only with its reason written in
// a `// long: <why>` line of the comment right above it. Run by the unit tier
// (test/unit/function-length.test.ts); `npx tsx scripts/check-function-length.ts` lists them.
//
// A scanner, not a parser (the project's TypeScript ships no JavaScript API): comments, strings
// and template literals are blanked, then every `{` that opens a body after a parameter list
// (`(...) {`, `(...): Type {`, `=> {`) counts, except after if / for / while / switch / catch.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';

export const MAX_FUNCTION_LINES = 60;
export const PRODUCT_FOLDERS = ['common', 'extension', 'native-gpu', 'webview'];
const REASON = /^\s*\/\/\s*long:\s*\S/;
const NOT_FUNCTIONS = new Set(['if', 'for', 'while', 'switch', 'catch', 'with']);

export interface LongFunction {
  file: string;
  /** 1-based line of the declaration */
  line: number;
  name: string;
  lines: number;
}

/** The source with comments, strings and template literal text replaced by spaces (newlines
 *  kept, so offsets and line numbers stay those of the file). Template `${...}` code is kept. */
export function blanked(src: string): string {
  const out = src.split('');
  const blank = (from: number, to: number) => {
    for (let j = from; j < to; j++) if (out[j] !== '\n') out[j] = ' ';
  };
  // stack of open template literals, each with the brace depth of its `${` code
  const templates: number[] = [];
  let depth = 0;
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (c === '/' && src[i + 1] === '/') {
      const end = src.indexOf('\n', i);
      blank(i, end < 0 ? src.length : end);
      i = end < 0 ? src.length : end;
    } else if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      const stop = end < 0 ? src.length : end + 2;
      blank(i, stop);
      i = stop;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < src.length && src[j] !== c && src[j] !== '\n') j += src[j] === '\\' ? 2 : 1;
      blank(i + 1, j);
      i = j + 1;
    } else if (c === '`' || (c === '}' && templates.length && templates[templates.length - 1] === depth)) {
      if (c === '}') templates.pop();
      let j = i + 1;
      while (j < src.length && src[j] !== '`' && !(src[j] === '$' && src[j + 1] === '{')) j += src[j] === '\\' ? 2 : 1;
      blank(i + 1, j);
      if (src[j] === '$') {
        templates.push(depth);
        i = j + 2;
      } else {
        i = j + 1;
      }
    } else {
      if (c === '{') depth++;
      else if (c === '}') depth--;
      else if (c === '/' && isRegexStart(src, i)) {
        let j = i + 1;
        let inClass = false;
        while (j < src.length && src[j] !== '\n' && (inClass || src[j] !== '/')) {
          if (src[j] === '[') inClass = true;
          else if (src[j] === ']') inClass = false;
          j += src[j] === '\\' ? 2 : 1;
        }
        blank(i + 1, j);
        i = j + 1;
        continue;
      }
      i++;
    }
  }
  return out.join('');
}

/** A `/` starts a regular expression literal where an operand is expected. */
function isRegexStart(src: string, at: number): boolean {
  let k = at - 1;
  while (k >= 0 && /\s/.test(src[k]!)) k--;
  if (k < 0) return true;
  const prev = src[k]!;
  // `x! / y` is TypeScript's non-null assertion, then a division
  if (prev === '!') return !/[\w$)\]]/.test(src[k - 1] ?? '');
  if (/[(,=:[&|?{};+\-*%<>~^]/.test(prev)) return true;
  const word = /[A-Za-z_$]+$/.exec(src.slice(Math.max(0, k - 10), k + 1))?.[0];
  return word === 'return' || word === 'typeof' || word === 'case';
}

function matchingOpen(code: string, close: number, open: string, shut: string): number {
  let depth = 0;
  for (let k = close; k >= 0; k--) {
    if (code[k] === shut) depth++;
    else if (code[k] === open && --depth === 0) return k;
  }
  return -1;
}

function matchingClose(code: string, open: number): number {
  let depth = 0;
  for (let k = open; k < code.length; k++) {
    if (code[k] === '{') depth++;
    else if (code[k] === '}' && --depth === 0) return k;
  }
  return code.length - 1;
}

/** The name of the function whose body opens at `brace`, or null when the brace opens no body. */
function functionAt(code: string, brace: number): string | null {
  const before = code.slice(0, brace).trimEnd();
  if (!before) return null;
  if (before.endsWith('=>')) {
    const head = before.slice(0, -2).trimEnd();
    const open = head.endsWith(')') ? matchingOpen(code, head.length - 1, '(', ')') : head.search(/[\w$]+$/);
    const name = /([\w$]+)\s*(?::[^=]*)?=\s*(?:async\s*)?(?:<[^>]*>)?\s*$/.exec(code.slice(Math.max(0, open - 200), open));
    return name ? name[1]! : 'arrow function';
  }
  const close = parameterListClose(code, before.length - 1);
  if (close < 0) return null;
  const open = matchingOpen(code, close, '(', ')');
  if (open < 0) return null;
  const word = /([\w$]+)\s*(?:<[^()]*>)?\s*$/.exec(code.slice(Math.max(0, open - 200), open))?.[1];
  return !word || NOT_FUNCTIONS.has(word) ? null : word;
}

/** Before a `{`, the `)` closing a parameter list: right there, or before a `: ReturnType` (whose
 *  own brackets, e.g. `Promise<{ x: number }>`, are skipped); -1 when the brace follows anything else. */
function parameterListClose(code: string, from: number): number {
  let depth = 0;
  for (let k = from; k >= 0; k--) {
    const c = code[k]!;
    if (depth === 0 && c === ')' && k === from) return k;
    if (')]}'.includes(c) || (c === '>' && code[k - 1] !== '=')) depth++;
    else if ('([{<'.includes(c)) {
      if (--depth < 0) return -1;
    } else if (depth === 0) {
      if (c === ':') {
        const prev = code.slice(0, k).trimEnd();
        return prev.endsWith(')') ? prev.length - 1 : -1;
      }
      // a return type at the top level stays on the line of its `{`
      if (';={}\n'.includes(c)) return -1;
    }
  }
  return -1;
}

export function longFunctions(file: string, src: string, max = MAX_FUNCTION_LINES): LongFunction[] {
  const code = blanked(src);
  const lineOf = (offset: number) => code.slice(0, offset).split('\n').length;
  const srcLines = src.split('\n');
  const found: LongFunction[] = [];
  for (let at = code.indexOf('{'); at >= 0; at = code.indexOf('{', at + 1)) {
    const name = functionAt(code, at);
    if (!name) continue;
    const first = lineOf(at);
    const lines = lineOf(matchingClose(code, at)) - first + 1;
    if (lines <= max) continue;
    // the declaration may span lines (long parameter lists): its first line is where the comment sits
    let decl = first;
    while (decl > 1 && !/^\s*$/.test(srcLines[decl - 2]!) && !/^\s*(\/\/|\*|\/\*)/.test(srcLines[decl - 2]!) && !/[;{}]\s*$/.test(srcLines[decl - 2]!)) decl--;
    let reason = false;
    for (let k = decl - 2; k >= 0 && /^\s*(\/\/|\*|\/\*)/.test(srcLines[k]!); k--) reason = reason || REASON.test(srcLines[k]!);
    if (!reason) found.push({ file, line: decl, name, lines });
  }
  return found;
}

function listTs(dir: string): string[] {
  if (statSync(dir).isFile()) return dir.endsWith('.ts') && !dir.endsWith('.d.ts') ? [dir] : [];
  return readdirSync(dir).flatMap((name) => listTs(path.join(dir, name)));
}

export function checkFunctionLength(root: string, folders = PRODUCT_FOLDERS): LongFunction[] {
  return folders.flatMap((folder) => listTs(path.join(root, folder)))
    .flatMap((file) => longFunctions(path.relative(root, file).split(path.sep).join('/'), readFileSync(file, 'utf8')));
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(__filename)) {
  const found = checkFunctionLength(path.resolve(__dirname, '..')).sort((a, b) => b.lines - a.lines);
  for (const f of found) console.error(`${f.file}:${f.line} ${f.name}: ${f.lines} lines`);
  console.log(found.length ? `${found.length} function(s) over ${MAX_FUNCTION_LINES} lines without a '// long:' reason` : `functions: none over ${MAX_FUNCTION_LINES} lines without a reason`);
  process.exit(found.length ? 1 : 0);
}

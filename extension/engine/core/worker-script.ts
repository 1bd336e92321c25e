// Where one of the product's worker scripts (a worker thread's, a child process's) is: the
// esbuild bundle dist/<name>.js beside the bundle that starts it (scripts/build.mjs builds each),
// or the TypeScript source when the sources run under tsx (tests, benchmarks), with the node
// options that load tsx's require hook first (none for the bundle: a worker thread then inherits
// its parent's).
import { existsSync } from 'node:fs';
import * as path from 'node:path';

/** Worker script `name` (no extension) of `dir` (the caller's `__dirname`), and the node options
 *  it needs. */
export function workerScript(dir: string, name: string): { file: string; execArgv?: string[] } {
  const bundled = path.join(dir, `${name}.js`);
  if (existsSync(bundled)) return { file: bundled };
  return { file: path.join(dir, `${name}.ts`), execArgv: ['--require', 'tsx/cjs'] };
}

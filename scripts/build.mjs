// Bundles the extension host, the CLI and each webview with esbuild.
// Native packages stay external: they load their own .node binaries at run time.
import * as esbuild from 'esbuild';
import { readdirSync, existsSync } from 'node:fs';

const quiet = process.argv.includes('--quiet');
const nativeExternals = ['vscode', 'onnxruntime-node', 'sharp', 'webgpu'];

const hostBuilds = [
  { entryPoints: ['extension/extension.ts'], outfile: 'dist/extension.js' },
  { entryPoints: ['extension/cli.ts'], outfile: 'dist/cli.js', banner: { js: '#!/usr/bin/env node' } },
  // the encode pool's worker thread (engine/embed/encode-pool.ts starts it from beside the bundle)
  { entryPoints: ['extension/engine/embed/encode-worker.ts'], outfile: 'dist/encode-worker.js' },
  // the parquet reader's decoding thread (engine/io/formats/parquet.ts starts it the same way)
  { entryPoints: ['extension/engine/io/formats/parquet-worker.ts'], outfile: 'dist/parquet-worker.js' },
].filter((b) => existsSync(b.entryPoints[0]));

// Each webview/<panel>/main.ts becomes dist/webview/<panel>.js (browser, IIFE).
const webviewEntries = existsSync('webview')
  ? readdirSync('webview', { withFileTypes: true })
      .filter((e) => e.isDirectory() && existsSync(`webview/${e.name}/main.ts`))
      .map((e) => ({ in: `webview/${e.name}/main.ts`, out: e.name }))
  : [];

await Promise.all([
  ...hostBuilds.map((b) =>
    esbuild.build({
      ...b,
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      sourcemap: true,
      external: nativeExternals,
      logLevel: quiet ? 'error' : 'info',
    }),
  ),
  webviewEntries.length &&
    esbuild.build({
      entryPoints: webviewEntries,
      outdir: 'dist/webview',
      bundle: true,
      platform: 'browser',
      format: 'iife',
      target: 'es2022',
      sourcemap: true,
      loader: { '.css': 'text' },
      logLevel: quiet ? 'error' : 'info',
    }),
  // The notebook renderer: VS Code loads renderers as ES modules that export activate().
  existsSync('webview/notebook/renderer.ts') &&
    esbuild.build({
      entryPoints: { 'tokens-renderer': 'webview/notebook/renderer.ts' },
      outdir: 'dist/webview',
      bundle: true,
      platform: 'browser',
      format: 'esm',
      target: 'es2022',
      sourcemap: true,
      logLevel: quiet ? 'error' : 'info',
    }),
]);

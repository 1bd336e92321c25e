// onnxruntime-node, loaded on first use. Its native library (~20 MB, plus a thread pool) would
// otherwise load with whatever imports this package — the VS Code extension host at activation,
// the CLI before it has parsed its arguments — although most of that code never computes. The
// CPU backend and the ONNX encoders call onnxruntime() where they start work; types come from
// `import type`, which loads nothing.
//
// Its log goes to stderr, which carries the CLI's one-line errors: only errors are let through
// (a warning such as "Failed to persist telemetry device ID", printed whenever HOME is not
// writable, would add a second line to every message). Failures still reach the caller as
// exceptions.
import type * as Ort from 'onnxruntime-node';

export type OnnxRuntime = typeof Ort;

let loaded: OnnxRuntime | null = null;

export function onnxruntime(): OnnxRuntime {
  // require, not import(): this package compiles to CommonJS (see ./index.ts), and esbuild keeps
  // an external require() where it stands, so the bundle loads the module only when this runs.
  if (!loaded) {
    loaded = require('onnxruntime-node') as OnnxRuntime;
    loaded.env.logLevel = 'error';
  }
  return loaded;
}

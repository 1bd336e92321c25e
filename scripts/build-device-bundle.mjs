// Bundles the GPU tests and the WebGPU bench into single .js files under .device/, so a device
// machine with only a node binary and the native packages (no npm, no tsx) can run them:
//   node .device/gpu-tests.js        test/gpu kernel + device tests (node:test)
//   node .device/gpu-cli-test.js     test/gpu/cli-device.test.ts (needs dist/cli.js)
//   node .device/webgpu-bench.js     bench/webgpu.bench.ts
//   node .device/tokenize-bench.js   bench/tokenize.bench.ts (end-to-end images/s)
//   node .device/generation-bench.js bench/generation.bench.ts (denoiser steps/s, CPU and WebGPU providers)
import * as esbuild from 'esbuild';
import { readdirSync } from 'node:fs';

const quiet = process.argv.includes('--quiet');
const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  external: ['webgpu', 'onnxruntime-node', 'sharp'],
  logLevel: quiet ? 'error' : 'info',
};

const CLI_TEST = 'cli-device.test.ts';
const testFiles = readdirSync('test/gpu').filter((f) => f.endsWith('.test.ts') && f !== CLI_TEST).sort();
// One entry that requires every test file in name order; node:test runs them in one process.
const testsEntry = testFiles.map((f) => `require('./${f}');`).join('\n');

await Promise.all([
  esbuild.build({ ...common, stdin: { contents: testsEntry, resolveDir: 'test/gpu', sourcefile: 'gpu-tests.ts', loader: 'ts' }, outfile: '.device/gpu-tests.js' }),
  // __dirname-relative paths (fixtures, dist/cli.js) must resolve as in the source tree: keep the
  // CLI test's bundle at the depth of test/gpu (two levels under the root) via a define.
  esbuild.build({ ...common, entryPoints: [`test/gpu/${CLI_TEST}`], outfile: '.device/gpu-cli-test.js', define: { __dirname: JSON.stringify('test/gpu') } }),
  esbuild.build({ ...common, entryPoints: ['bench/webgpu.bench.ts'], outfile: '.device/webgpu-bench.js' }),
  // Reads test/fixtures and media/samples relative to __dirname, like the CLI test above.
  esbuild.build({ ...common, entryPoints: ['bench/tokenize.bench.ts'], outfile: '.device/tokenize-bench.js', define: { __dirname: JSON.stringify('bench') } }),
  esbuild.build({ ...common, entryPoints: ['bench/generation.bench.ts'], outfile: '.device/generation-bench.js', define: { __dirname: JSON.stringify('bench') } }),
]);

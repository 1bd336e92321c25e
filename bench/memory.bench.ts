// Peak memory of the CLI on a codebook at the paper's scale: 500,000 x 1152, frozen and trainable
// both f16 (2.3 GB, the layout safetensors.torch.save_file writes), once without and once with a
// coarse level. Each command runs as its own process under /usr/bin/time -v (peak RSS = "Maximum
// resident set size"): `search` over 729 queries, and `tokenize` of 16 images (two batches, so the
// worker threads run) with a SigLIP-shaped ONNX encoder of d = 1152 (a random patch-embedding
// convolution: 14 x 14 patches of a 224 x 224 input, 256 tokens) written for the run. Only the
// frozen table is read: trainable never is (no decoder runs), and f16 stays f16.
// Rewrites the "memory" section of BENCHMARKS.md.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Matrix } from '../native-gpu/backend.js';
import { createCpuBackend } from '../native-gpu/cpu/index.js';
import { GraphBuilder } from '../native-gpu/cpu/onnx-graph.js';
import { rowsF32 } from '../native-gpu/tables.js';
import { f32ToF16 } from '../common/half.js';
import { writeSafetensors, type Tensor } from '../extension/engine/io/formats/safetensors.js';
import { writeNpy } from '../extension/engine/io/formats/npy.js';
import { listImages } from '../extension/engine/embed/image.js';
import { sampleIndices, seededRandom, takeRows } from '../extension/engine/core/sampling.js';
import { benchDir, quickMode, updateSection } from './harness.js';

const ROOT = path.join(__dirname, '..');
const CLI = path.join(ROOT, 'dist/cli.js');
const PATCH = 14, SIZE = 224;

/** pixel_values [B,3,224,224] -> Conv(d, 14x14, stride 14) -> last_hidden_state [B, 256, d] */
function patchEmbedding(d: number): Uint8Array {
  const random = seededRandom(3);
  const scale = 1 / Math.sqrt(3 * PATCH * PATCH);
  const g = new GraphBuilder('patch_embedding');
  g.input('pixel_values', 'float32', ['batch', 3, SIZE, SIZE]);
  g.initializer('weight', { type: 'float32', dims: [d, 3, PATCH, PATCH], data: Float32Array.from({ length: d * 3 * PATCH * PATCH }, () => (random() * 2 - 1) * scale) });
  g.initializer('shape', { type: 'int64', dims: [3], data: BigInt64Array.of(0n, BigInt(d), -1n) });
  g.node('Conv', ['pixel_values', 'weight'], ['patches'], { kernel_shape: [PATCH, PATCH], strides: [PATCH, PATCH] });
  g.node('Reshape', ['patches', 'shape'], ['channels']);
  g.node('Transpose', ['channels'], ['last_hidden_state'], { perm: [0, 2, 1] });
  g.output('last_hidden_state', 'float32', ['batch', (SIZE / PATCH) ** 2, d]);
  return g.toModel();
}

/** Seeded values in [-1, 1): the search cost and the memory do not depend on them. */
function randomRows(rows: number, d: number, seed: number): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length: rows * d }, () => random() * 2 - 1);
}

/** `cells` random codes as coarse centroids, each code assigned to its nearest (one search pass),
 *  codes grouped by cell: enough of a coarse level to run IVF search for a memory measurement. */
async function coarseLevel(codes: Matrix, cells: number): Promise<{ order: Int32Array; centroids: Matrix; assign: Int32Array }> {
  const backend = await createCpuBackend();
  try {
    const centroids = takeRows(codes, sampleIndices(codes.rows, cells, seededRandom(4)));
    const handle = await backend.loadCodebook(centroids);
    const { ids } = await backend.nearest(handle, codes);
    handle.dispose();
    const order = Int32Array.from({ length: codes.rows }, (_, i) => i).sort((a, b) => ids[a]! - ids[b]! || a - b);
    return { order, centroids, assign: Int32Array.from(order, (i) => ids[i]!) };
  } finally {
    await backend.dispose();
  }
}

async function writeCodebookFile(file: string, k: number, d: number, frozen: Uint16Array, trainable: Uint16Array, coarse?: { centroids: Matrix; assign: Int32Array }): Promise<void> {
  const meta = {
    formatVersion: 1, encoder: { kind: 'onnx', id: 'external', patch: 0, inputSize: [0, 0], d }, k, d, lambda: 0, iterations: 0, seed: 0,
    corpusFingerprint: 'memory-bench', atlas: 'none', createdAt: new Date(0).toISOString(),
  };
  const tensors: Record<string, Tensor> = {
    frozen: { dtype: 'F16', shape: [k, d], data: frozen },
    trainable: { dtype: 'F16', shape: [k, d], data: trainable },
  };
  if (coarse) {
    tensors.coarse = { dtype: 'F16', shape: [coarse.centroids.rows, d], data: f32ToF16(coarse.centroids.data) };
    tensors.coarse_assign = { dtype: 'I64', shape: [k], data: BigInt64Array.from(coarse.assign, BigInt) };
  }
  await writeSafetensors(file, tensors, Object.fromEntries(Object.entries(meta).map(([key, v]) => [key, JSON.stringify(v)])));
}

interface Measured { command: string; peakMb: number; seconds: number; json: Record<string, unknown> }

/** Runs the CLI under /usr/bin/time -v; peak RSS from its report, the result from --json. */
function measure(label: string, args: string[]): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    execFile('/usr/bin/time', ['-v', process.execPath, CLI, ...args, '--json', '--quiet', '--device', 'cpu'], { maxBuffer: 1 << 28 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${label}: ${err.message}\n${stderr}`));
      const kb = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
      if (!kb) return reject(new Error(`${label}: no peak RSS in /usr/bin/time's report`));
      resolve({ command: label, peakMb: Number(kb[1]) / 1024, seconds: (performance.now() - t0) / 1000, json: JSON.parse(stdout) as Record<string, unknown> });
    });
  });
}

async function main(): Promise<void> {
  const quick = quickMode();
  const k = quick ? 20_000 : 500_000, d = 1152, cells = Math.round(Math.sqrt(k));
  const dir = path.join(benchDir(), 'memory');
  await fs.mkdir(dir, { recursive: true });
  try {
    const model = path.join(dir, 'encoder');
    await fs.mkdir(model);
    await fs.writeFile(path.join(model, 'model.onnx'), patchEmbedding(d));
    await fs.writeFile(path.join(model, 'preprocessor_config.json'), JSON.stringify({ size: { height: SIZE, width: SIZE } }));
    const queries = path.join(dir, 'queries.npy');
    await writeNpy(queries, { shape: [729, d], dtype: 'float32', data: randomRows(729, d, 2) });
    const sources = [...await listImages(path.join(ROOT, 'test/fixtures/images')), ...await listImages(path.join(ROOT, 'media/samples'))];
    const images = sources.slice(0, 16);

    let codes: Matrix | null = { rows: k, cols: d, data: randomRows(k, d, 1) };
    const coarse = await coarseLevel(codes, cells);
    const frozen = new Uint16Array(k * d); // grouped by cell, row by row (no second f32 table)
    coarse.order.forEach((i, p) => frozen.set(f32ToF16(rowsF32(codes!, i, 1)), p * d));
    const trainable = f32ToF16(codes.data);
    codes = null; // 2.3 GB of f32 no longer needed before the files are encoded
    const flat = path.join(dir, 'flat.safetensors'), ivf = path.join(dir, 'ivf.safetensors');
    await writeCodebookFile(flat, k, d, frozen, trainable);
    await writeCodebookFile(ivf, k, d, frozen, trainable, coarse);
    const fileGb = (await fs.stat(flat)).size / 1e9;

    const runs: Measured[] = [];
    const run = async (label: string, args: string[]) => {
      const m = await measure(label, args);
      runs.push(m);
      console.log(`${label}: peak RSS ${m.peakMb.toFixed(0)} MB, ${m.seconds.toFixed(1)} s`);
    };
    await run('search, exact (no coarse level)', ['search', '--codebook', flat, '--queries', queries, '--out', path.join(dir, 'a.npy')]);
    await run(`search, IVF (${cells} cells, nprobe default)`, ['search', '--codebook', ivf, '--queries', queries, '--out', path.join(dir, 'b.npy')]);
    await run('tokenize 16 images, exact', ['tokenize', '--codebook', flat, '--encoder', model, ...images, '--out', path.join(dir, 'a.json')]);
    await run(`tokenize 16 images, IVF (${cells} cells, nprobe default)`, ['tokenize', '--codebook', ivf, '--encoder', model, ...images, '--out', path.join(dir, 'b.json')]);

    const table = [
      '| command | peak RSS | wall s |',
      '|---|---:|---:|',
      ...runs.map((r) => `| ${r.command} | ${(r.peakMb / 1024).toFixed(2)} GB | ${r.seconds.toFixed(1)} |`),
    ].join('\n');
    const section = [
      `## Memory at the paper's scale: K = ${k.toLocaleString('en')}, d = ${d}, f16`,
      '',
      `A codebook file with frozen and trainable both ${k.toLocaleString('en')} x ${d} f16 (${fileGb.toFixed(2)} GB, as PyTorch writes it), ` +
        `and the same with a coarse level of ${cells} cells; each CLI command in its own process on the CPU backend, peak RSS from \`/usr/bin/time -v\`. ` +
        'search: 729 queries; tokenize: 16 photos with a SigLIP-shaped ONNX encoder of d = 1152 (14 x 14 patches, 256 tokens per image).',
      '',
      table,
    ].join('\n');
    console.log(`\n${section}\n`);
    if (!quick && !process.env.BENCH_NO_WRITE) await updateSection('memory', section);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

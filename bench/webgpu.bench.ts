// WebGPU nearest-code search and k-means step: GFLOP/s on the adapter in use, the ratio to the
// CPU backend in the same run, and on a hardware GPU the share of its FP32 peak and a comparison
// of distance-GEMM tile variants. Full sizes on hardware, small ones on a software adapter (which
// runs at a few GFLOP/s). Prints a table and one line "BENCH_JSON {...}".
import type { ComputeBackend, Matrix } from '../native-gpu/backend.js';
import { createCpuBackend } from '../native-gpu/cpu/index.js';
import { createWebGpuBackend, type NearestTile, type WebGpuBackend, type WebGpuTuning } from '../native-gpu/webgpu/index.js';
import { HARDWARE_TILE, tileName } from '../native-gpu/webgpu/kernels/nearest.js';

interface Row {
  op: 'nearest' | 'kmeans-step';
  q: number;
  d: number;
  k: number;
  tile: string;
  gpuSeconds: number;
  gpuGflops: number;
  cpuSeconds?: number;
  speedup?: number;
  peakShare?: number;
  idMismatches?: number;
}

// FP32 (non-tensor) peaks in TFLOP/s from NVIDIA datasheets, keyed by adapter name; override with
// UNICODE2_FP32_PEAK_TFLOPS. H200 and H100 *SXM* are both listed at 67 TFLOP/s (66.9 = 132 SMs x
// 128 FP32 lanes x 2 x 1.98 GHz boost); the NVL/PCIe parts are lower, so this overstates their share.
const FP32_PEAK_TFLOPS: [RegExp, number, string][] = [
  [/H200/i, 66.9, 'H200 SXM datasheet'],
  [/H100/i, 66.9, 'H100 SXM datasheet'],
  [/A100/i, 19.5, 'A100 datasheet'],
];

function fp32Peak(device: string): { tflops: number; source: string } | null {
  const env = Number(process.env.UNICODE2_FP32_PEAK_TFLOPS);
  if (env > 0) return { tflops: env, source: 'UNICODE2_FP32_PEAK_TFLOPS' };
  const hit = FP32_PEAK_TFLOPS.find(([re]) => re.test(device));
  return hit ? { tflops: hit[1], source: hit[2] } : null;
}

/** Uniform values in [-1, 1) from xorshift32: fast enough for 576M floats. */
function randomMatrix(rows: number, cols: number, seed: number): Matrix {
  const data = new Float32Array(rows * cols);
  let s = seed | 1;
  for (let i = 0; i < data.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    data[i] = (s >>> 0) / 2147483648 - 1;
  }
  return { rows, cols, data };
}

async function seconds(fn: () => Promise<unknown>, repeats: number): Promise<number> {
  await fn(); // warm-up: pipeline compilation, buffer pool, onnxruntime arena
  let best = Infinity;
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    await fn();
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return best;
}

async function openGpu(tuning?: WebGpuTuning): Promise<WebGpuBackend | string> {
  try {
    return await createWebGpuBackend({ allowSoftware: true, tuning });
  } catch (err) {
    return (err as Error).message;
  }
}

async function benchNearest(gpu: ComputeBackend, cpu: ComputeBackend | null, q: number, d: number, k: number, tile: string, repeats: number): Promise<Row> {
  const codes = randomMatrix(k, d, 1);
  const queries = randomMatrix(q, d, 2);
  const flops = 2 * q * d * k;
  const g = await gpu.loadCodebook(codes);
  const gpuSeconds = await seconds(() => gpu.nearest(g, queries), repeats);
  const row: Row = { op: 'nearest', q, d, k, tile, gpuSeconds, gpuGflops: flops / gpuSeconds / 1e9 };
  if (cpu) {
    const c = await cpu.loadCodebook(codes);
    row.cpuSeconds = await seconds(() => cpu.nearest(c, queries), 1);
    row.speedup = row.cpuSeconds / gpuSeconds;
    const [a, b] = [await gpu.nearest(g, queries), await cpu.nearest(c, queries)];
    row.idMismatches = a.ids.reduce((n, id, i) => n + (id === b.ids[i] ? 0 : 1), 0);
    c.dispose();
  }
  g.dispose();
  return row;
}

async function benchKmeans(gpu: ComputeBackend, cpu: ComputeBackend, n: number, d: number, k: number, tile: string): Promise<Row> {
  const codes = randomMatrix(k, d, 3);
  const points = randomMatrix(n, d, 4);
  const [g, c] = [await gpu.loadCodebook(codes), await cpu.loadCodebook(codes)];
  const gpuSeconds = await seconds(() => gpu.kmeansStep(g, points), 2);
  const cpuSeconds = await seconds(() => cpu.kmeansStep(c, points), 1);
  g.dispose();
  c.dispose();
  return { op: 'kmeans-step', q: n, d, k, tile, gpuSeconds, gpuGflops: (2 * n * d * k) / gpuSeconds / 1e9, cpuSeconds, speedup: cpuSeconds / gpuSeconds };
}

function printTable(device: string, rows: Row[], peak: { tflops: number; source: string } | null): void {
  const header = ['op', 'Q', 'd', 'K', 'tile', 'gpu s', 'GFLOP/s', 'cpu s', 'gpu/cpu', '% FP32 peak', 'id diffs'];
  const cells = rows.map((r) => [r.op, r.q, r.d, r.k, r.tile, r.gpuSeconds.toFixed(4), r.gpuGflops.toFixed(0), r.cpuSeconds?.toFixed(3) ?? '-',
    r.speedup ? `${r.speedup.toFixed(1)}x` : '-', r.peakShare !== undefined ? (100 * r.peakShare).toFixed(1) : '-', r.idMismatches ?? '-'].map(String));
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]): string => c.map((v, i) => v.padStart(widths[i])).join('  ');
  console.log(`webgpu bench on ${device}${peak ? ` (FP32 peak ${peak.tflops} TFLOP/s, ${peak.source})` : ''}`);
  console.log(line(header));
  for (const c of cells) console.log(line(c));
}

async function main(): Promise<void> {
  const gpu = await openGpu();
  if (typeof gpu === 'string') {
    console.log(`webgpu bench: skipped, ${gpu}`);
    console.log(`BENCH_JSON ${JSON.stringify({ bench: 'webgpu', skipped: gpu })}`);
    return;
  }
  const cpu = await createCpuBackend();
  const software = /software/.test(gpu.device);
  const peak = software ? null : fp32Peak(gpu.device);
  const defaultTile = software ? 'default (software)' : tileName(HARDWARE_TILE);
  const rows: Row[] = [];
  try {
    if (software) {
      rows.push(await benchNearest(gpu, cpu, 64, 768, 4096, defaultTile, 2));
      rows.push(await benchKmeans(gpu, cpu, 2048, 64, 256, defaultTile));
    } else {
      rows.push(await benchNearest(gpu, cpu, 729, 1152, 500_000, defaultTile, 3));
      rows.push(await benchNearest(gpu, cpu, 729, 768, 16_384, defaultTile, 5));
      rows.push(await benchNearest(gpu, cpu, 729, 768, 131_072, defaultTile, 5));
      rows.push(await benchKmeans(gpu, cpu, 100_000, 768, 16_384, defaultTile));
    }
  } finally {
    await gpu.dispose();
  }
  if (!software) {
    // Tile variants on the headline size (GPU only; ids were checked against the CPU above).
    const variants: NearestTile[] = [
      { wgX: 16, wgY: 16, tm: 8, tn: 8, tk: 32 },
      { wgX: 16, wgY: 16, tm: 4, tn: 4, tk: 16 },
      { wgX: 8, wgY: 32, tm: 4, tn: 8, tk: 16 },
      { wgX: 16, wgY: 8, tm: 8, tn: 8, tk: 16 },
    ];
    for (const tile of variants) {
      const variant = await openGpu({ tile });
      if (typeof variant === 'string') throw new Error(variant);
      try {
        rows.push(await benchNearest(variant, null, 729, 1152, 500_000, tileName(tile), 3));
      } catch (err) {
        console.log(`tile ${tileName(tile)}: ${(err as Error).message}`);
      } finally {
        await variant.dispose();
      }
    }
  }
  await cpu.dispose();
  if (peak) for (const r of rows) r.peakShare = (r.gpuGflops / 1000) / peak.tflops;
  printTable(gpu.device, rows, peak);
  console.log(`BENCH_JSON ${JSON.stringify({ bench: 'webgpu', device: gpu.device, cpu: cpu.device, fp32PeakTflops: peak?.tflops ?? null, peakSource: peak?.source ?? null, rows })}`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exitCode = 1;
});

// Sharded local tokenization: `unicode2 tokenize SHARDS --out DIR/` as one process against two
// `--shard I/2` processes at once on the same webdataset shards (this machine's cores shared), in
// images per second of wall time, each the best of ROUNDS runs alternating between the two. The
// shards are the fixture photos (JPEG and PNG, 300 x 300 to 640 x 480) written into tars by
// Python's tarfile; the codebook is built from them by the CLI. The parts' outputs are checked
// to be the single run's, byte for byte. Run: npx tsx bench/shard-parts.ts [--shards 8 --per 100] (not part of `npm run bench`: it writes no section)
import { execFileSync, spawn } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeTar, type TarEntry } from '../test/helpers/shards.js';

const ROOT = path.join(__dirname, '..');
const CLI = path.join(ROOT, 'dist/cli.js');
const IMAGES = path.join(ROOT, 'test/fixtures/images');
const ROUNDS = 5;

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};

function run(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args, '--device', 'cpu', '--quiet'], { cwd, stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`unicode2 ${args.join(' ')}: exit ${code}`))));
  });
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await work();
  return (performance.now() - start) / 1000;
}

async function main(): Promise<void> {
  const shards = arg('shards', 8);
  const per = arg('per', 100);
  execFileSync(process.execPath, ['scripts/build.mjs', '--quiet'], { cwd: ROOT, stdio: 'inherit' });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-bench-shards-'));
  const photos = (await fs.readdir(IMAGES)).filter((n) => /\.(jpg|png)$/.test(n)).sort();
  for (let s = 0; s < shards; s++) {
    const entries: TarEntry[] = Array.from({ length: per }, (_, i) => {
      const name = photos[(s * per + i) % photos.length]!;
      return { name: `${String(s * per + i).padStart(8, '0')}${path.extname(name)}`, data: new Uint8Array(readFileSync(path.join(IMAGES, name))) };
    });
    writeTar(path.join(dir, `${String(s).padStart(5, '0')}.tar`), entries);
  }
  await run(['build', '--images', IMAGES, '--k', '512', '--iters', '5', '--out', 'cb.safetensors'], dir);
  const list = `{00000..${String(shards - 1).padStart(5, '0')}}.tar`;
  const tokenize = (out: string, extra: string[] = []) => run(['tokenize', '--codebook', 'cb.safetensors', list, '--out', out, ...extra], dir);
  const single: number[] = [];
  const parts: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    await fs.rm(path.join(dir, 'single'), { recursive: true, force: true });
    await fs.rm(path.join(dir, 'parts'), { recursive: true, force: true });
    single.push(await timed(() => tokenize('single/')));
    parts.push(await timed(() => Promise.all([tokenize('parts/', ['--shard', '1/2']), tokenize('parts/', ['--shard', '2/2'])])));
  }
  for (let s = 0; s < shards; s++) {
    const name = `${String(s).padStart(5, '0')}.tokens.npy`;
    const [a, b] = await Promise.all([fs.readFile(path.join(dir, 'single', name)), fs.readFile(path.join(dir, 'parts', name))]);
    if (!a.equals(b)) throw new Error(`${name}: the parts' output differs from the single run's`);
  }
  const images = shards * per;
  const rate = (seconds: number[]) => images / Math.min(...seconds);
  console.log(`${images} images in ${shards} shards, ${os.availableParallelism()} cores (${os.cpus()[0]?.model})`);
  console.log(`one process:        ${rate(single).toFixed(1)} images/s (runs: ${single.map((s) => s.toFixed(2)).join(', ')} s)`);
  console.log(`two --shard parts:  ${rate(parts).toFixed(1)} images/s (runs: ${parts.map((s) => s.toFixed(2)).join(', ')} s)`);
  console.log(`parts / single:     ${(rate(parts) / rate(single)).toFixed(3)}`);
  await fs.rm(dir, { recursive: true, force: true });
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

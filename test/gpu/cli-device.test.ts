// The built CLI gives the same token ids with --device webgpu as with --device cpu, on real photos.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from './harness.js';

const ROOT = path.join(__dirname, '../..');
const CLI = process.env.UNICODE2_CLI ?? path.join(ROOT, 'dist/cli.js');
const IMAGES = ['astronaut.jpg', 'coffee.jpg', 'chelsea.png'].map((f) => path.join(ROOT, 'test/fixtures/images', f));

interface Grid {
  image: string;
  ids: number[];
  distances?: number[];
}

function cli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, UNICODE2_ALLOW_SOFTWARE_GPU: '1' }, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`unicode2 ${args.join(' ')} failed: ${stderr.trim().split('\n').pop()}`));
      else resolve(stdout);
    });
  });
}

let dir: string;
let codebook: string;
before(async () => {
  assert.ok(existsSync(CLI), `${CLI} is missing: build it with "node scripts/build.mjs"`);
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-cli-device-'));
  codebook = path.join(dir, 'cb.safetensors');
  await cli(['build', '--images', path.join(ROOT, 'test/fixtures/images'), '--k', '64', '--iters', '3', '--out', codebook, '--device', 'cpu', '--json']);
});
after(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

test('unicode2 tokenize --device webgpu gives the ids of --device cpu', async () => {
  const run = async (device: string): Promise<{ results: Grid[]; device: string }> =>
    JSON.parse(await cli(['tokenize', ...IMAGES, '--codebook', codebook, '--device', device, '--json']));
  const gpu = await run('webgpu');
  const cpu = await run('cpu');
  assert.match(gpu.device, /^webgpu: /);
  assert.match(cpu.device, /^cpu/);
  assert.equal(gpu.results.length, IMAGES.length);
  for (let i = 0; i < IMAGES.length; i++) {
    const [g, c] = [gpu.results[i], cpu.results[i]];
    assert.equal(g.image, c.image);
    assert.ok(g.ids.length > 0);
    for (let j = 0; j < g.ids.length; j++) {
      if (g.ids[j] === c.ids[j]) continue;
      // Only an exact tie may differ: both codes equally near this patch.
      assert.ok(g.distances && c.distances, `${path.basename(g.image)} patch ${j}: code ${g.ids[j]} vs ${c.ids[j]}`);
      assert.ok(Math.abs(g.distances[j] - c.distances[j]) <= 1e-5 * Math.max(c.distances[j], 1e-12), `${path.basename(g.image)} patch ${j}: code ${g.ids[j]} vs ${c.ids[j]}`);
    }
  }
});

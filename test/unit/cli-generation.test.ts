// `unicode2 prior fit | eval | sample` and `unicode2 generate`, run as a user would on the fixture
// photos' tokens: the JSON they print, the files they write, reproducibility, bad input, Ctrl-C.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { writeNpy } from '../../extension/engine/io/formats/npy.js';
import { readPrior } from '../../extension/engine/generate/prior/index.js';
import { readTokenGrids } from '../../extension/engine/codebook/token-files.js';
import { seededNormals } from '../../extension/engine/core/sampling.js';
import { cliRunner } from '../helpers/cli.js';
import { denoiserModel, sdSchedulerConfig, vaeDecoderModel, writeDiffusionFolder } from '../helpers/diffusion-model.js';

const ROOT = path.join(__dirname, '../..');
const IMAGES = path.join(ROOT, 'test/fixtures/images');
let dir: string;
let codebook: string;
let tokens: string;
let prior: string;
let diffusion: string;
const { cli, cliJson, assertUserError } = cliRunner(() => dir);

before(async () => {
  execFileSync(process.execPath, ['scripts/build.mjs', '--quiet'], { cwd: ROOT, stdio: 'inherit' });
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-cli-gen-'));
  codebook = path.join(dir, 'cb.safetensors');
  tokens = path.join(dir, 'tokens.npy');
  prior = path.join(dir, 'prior.safetensors');
  await cliJson(['build', '--images', IMAGES, '--k', '32', '--iters', '3', '--out', codebook]);
  await cliJson(['tokenize', '--codebook', codebook, IMAGES, '--out', tokens]);
  // the DCT codebook's trainable rows are 768 wide: a decoder taking 768-wide conditioning
  diffusion = await writeDiffusionFolder(path.join(dir, 'decoder'), {
    denoiser: denoiserModel({ context: 768, timestep: 'int64' }),
    vae: vaeDecoderModel().model,
    scheduler: sdSchedulerConfig(),
  });
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

test('prior fit, eval and sample print their documents and write what they say', async () => {
  const fit = await cliJson(['prior', 'fit', '--tokens', tokens, '--codebook', codebook, '--out', prior, '--order', '3']);
  assert.equal(fit.out, prior);
  assert.equal(fit.k, 32);
  assert.equal(fit.order, 3);
  // fitted on a ragged data set (the fixture photos keep their shapes): every token counted, the
  // most common grid (3:2 photos at short side 224) the default for sampling
  const grids = await readTokenGrids(tokens);
  assert.ok(new Set(grids.map((g) => g.grid.join('x'))).size > 1);
  assert.deepEqual(fit.grid, [14, 21]);
  assert.equal(fit.tokens, grids.reduce((n, g) => n + g.ids.length, 0));
  const p = await readPrior(prior);
  assert.equal(p.tokens, fit.tokens);

  const score = await cliJson(['prior', 'eval', '--prior', prior, '--tokens', tokens]);
  assert.deepEqual(Object.keys(score).sort(), ['nll', 'perplexity', 'tokens', 'unigramPerplexity']);
  assert.equal(score.tokens, fit.tokens);
  assert.ok(Math.abs(score.perplexity - Math.exp(score.nll)) < 1e-9);
  assert.ok(score.perplexity < score.unigramPerplexity);

  const out = path.join(dir, 'sampled.json');
  const s = await cliJson(['prior', 'sample', '--prior', prior, '--grid', '5x9', '--seed', '4', '--out', out]);
  assert.deepEqual(s.grid, [5, 9]);
  assert.equal(s.ids.length, 45);
  const file = JSON.parse(await fs.readFile(out, 'utf8'));
  assert.deepEqual(file.ids, s.ids);
  assert.equal(file.codebook, p.codebook);

  const edited = path.join(dir, 'edited.json');
  const e = await cliJson(['prior', 'sample', '--prior', prior, '--tokens', tokens, '--index', '1', '--region', '2,3,6,9', '--seed', '1', '--out', edited]);
  assert.equal(e.redrawn, 4 * 6);
  const source = (await cliJson(['generate', '--codebook', codebook, '--tokens', tokens, '--index', '1', '--out', path.join(dir, 'src.png')])).ids as number[];
  e.ids.forEach((id: number, i: number) => {
    const [y, x] = [Math.floor(i / 14), i % 14];
    if (!(y >= 2 && y < 6 && x >= 3 && x < 9)) assert.equal(id, source[i], `cell ${i} is outside the region`);
  });
  const v = await cliJson(['prior', 'sample', '--prior', prior, '--tokens', tokens, '--variations', '0.5', '--out', edited]);
  assert.equal(v.redrawn, 98);
});

test('generate --prior through the atlas: the documented JSON, a PNG of the grid, byte-identical for the same seed', async () => {
  const a = path.join(dir, 'a.png');
  const r = await cliJson(['generate', '--codebook', codebook, '--prior', prior, '--grid', '6x10', '--seed', '3', '--temperature', '0.8', '--top-k', '8', '--out', a]);
  assert.deepEqual(Object.keys(r).sort(), ['decoder', 'device', 'grid', 'ids', 'out', 'scheduler', 'seconds', 'seed', 'steps']);
  assert.deepEqual(r.grid, [6, 10]);
  assert.equal(r.ids.length, 60);
  assert.equal(r.decoder, 'atlas');
  assert.equal(r.scheduler, null);
  assert.equal(r.seed, 3);
  assert.match(r.device, /^cpu/);
  const meta = await sharp(a).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['png', 160, 96]);
  const b = path.join(dir, 'b.png');
  await cliJson(['generate', '--codebook', codebook, '--prior', prior, '--grid', '6x10', '--seed', '3', '--temperature', '0.8', '--top-k', '8', '--out', b]);
  assert.deepEqual(await fs.readFile(b), await fs.readFile(a));
  const c = await cliJson(['generate', '--codebook', codebook, '--prior', prior, '--grid', '6x10', '--seed', '4', '--out', b]);
  assert.notDeepEqual(c.ids, r.ids);
});

test('generate through a diffusion decoder folder: sampler and steps reported, byte-identical reruns, --init-noise sets the size', async () => {
  const a = path.join(dir, 'd1.png');
  const args = ['generate', '--codebook', codebook, '--tokens', tokens, '--decoder', diffusion, '--scheduler', 'euler', '--steps', '4', '--guidance', '2', '--seed', '9'];
  const r = await cliJson([...args, '--out', a]);
  assert.equal(r.decoder, diffusion);
  assert.equal(r.scheduler, 'euler');
  assert.equal(r.steps, 4);
  assert.deepEqual(r.grid, [14, 14]);
  assert.match(r.device, /^cpu \(onnxruntime/);
  assert.deepEqual([(await sharp(a).metadata()).width, (await sharp(a).metadata()).height], [512, 512]);
  const b = path.join(dir, 'd2.png');
  await cliJson([...args, '--out', b]);
  assert.deepEqual(await fs.readFile(b), await fs.readFile(a));

  const noise = path.join(dir, 'noise.npy');
  await writeNpy(noise, { shape: [1, 4, 5, 7], dtype: 'float32', data: seededNormals(140, 1) });
  const n = path.join(dir, 'n.png');
  await cliJson([...args, '--init-noise', noise, '--out', n]);
  assert.deepEqual([(await sharp(n).metadata()).width, (await sharp(n).metadata()).height], [56, 40]);
  await writeNpy(noise, { shape: [1, 3, 5, 7], dtype: 'float32', data: seededNormals(105, 1) });
  await assertUserError([...args, '--init-noise', noise, '--out', n], /the initial noise is \[1, 3, 5, 7\] but the model takes latents \[1, 4, h, w\]/);
});

test('bad input: one line, exit 2, nothing written', async () => {
  const out = path.join(dir, 'never.png');
  await assertUserError(['generate', '--codebook', codebook, '--prior', prior, '--steps', '3', '--out', out], /--steps is for a diffusion decoder/);
  await assertUserError(['generate', '--codebook', codebook, '--out', out], /needs --tokens or --prior/);
  await assertUserError(['generate', '--codebook', codebook, '--tokens', tokens, '--prior', prior, '--out', out], /give only one of --tokens or --prior/);
  await assertUserError(['generate', '--codebook', codebook, '--prior', prior, '--grid', '0x4', '--out', out], /--grid must be HxW/);
  await assertUserError(['generate', '--codebook', codebook, '--prior', prior, '--out', path.join(dir, 'x.jpg')], /--out must end in \.png/);
  await assertUserError(['generate', '--codebook', codebook, '--tokens', tokens, '--decoder', path.join(dir, 'nowhere'), '--out', out], /decoder '.*nowhere': no such folder/);
  await assertUserError(['generate', '--codebook', codebook, '--tokens', tokens, '--decoder', diffusion, '--scheduler', 'pndm', '--out', out], /--scheduler must be one of ddim, euler/);
  await assertUserError(['generate', '--codebook', codebook, '--tokens', tokens, '--decoder', diffusion, '--steps', '1001', '--out', out], /steps must be a whole number from 1 to 1000/);
  const other = path.join(dir, 'other.safetensors');
  await cliJson(['build', '--images', IMAGES, '--k', '16', '--iters', '2', '--out', other]);
  await assertUserError(['generate', '--codebook', other, '--prior', prior, '--out', out], /was fitted for K = 32 codes but the codebook has K = 16/);
  await assertUserError(['prior', 'fit', '--tokens', tokens, '--codebook', other, '--out', path.join(dir, 'p.safetensors')], /was made with codebook \w+, not with/);
  await assertUserError(['prior', 'fit', '--tokens', tokens, '--order', '9', '--out', path.join(dir, 'p.safetensors')], /prior order 9 is not supported/);
  await assertUserError(['prior', 'eval', '--prior', codebook, '--tokens', tokens], /not a UniCode² token prior/);
  await assertUserError(['prior', 'sample', '--prior', prior, '--tokens', tokens, '--region', '0,0,20,3', '--out', path.join(dir, 'r.json')], /--region must be y0,x0,y1,x1 with 0 <= y0 < y1 <= 14/);
  await assertUserError(['prior', 'sample', '--prior', prior, '--region', '0,0,2,2', '--out', path.join(dir, 'r.json')], /--region needs --tokens/);
  await assertUserError(['prior', 'frobnicate'], /unknown subcommand 'prior frobnicate' \(subcommands: fit, eval, sample\)/);
  await assert.rejects(fs.access(out));
});

test('help: the prior group lists its subcommands; each subcommand and generate list their options', async () => {
  const group = await cli(['prior', '--help']);
  assert.equal(group.code, 0);
  assert.match(group.stdout, /^usage: unicode2 prior <subcommand>/);
  for (const sub of ['fit', 'eval', 'sample']) assert.match(group.stdout, new RegExp(`^  ${sub} `, 'm'));
  const bare = await cli(['prior']);
  assert.equal(bare.code, 2);
  for (const [command, option] of [[['prior', 'fit'], '--order'], [['prior', 'eval'], '--prior'], [['prior', 'sample'], '--region'], [['generate'], '--init-noise']] as const) {
    const r = await cli([...command, '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, new RegExp(`^usage: unicode2 ${command.join(' ')}`));
    assert.ok(r.stdout.includes(option) && r.stdout.includes('--json'), r.stdout);
  }
  const top = await cli(['--help']);
  assert.match(top.stdout, /^  prior +Token priors/m);
  assert.match(top.stdout, /^  generate +Tokens/m);
});

test('Ctrl-C during a diffusion run exits 130 and writes no image', async () => {
  const out = path.join(dir, 'interrupted.png');
  let sent = false;
  const r = await cli(['generate', '--codebook', codebook, '--tokens', tokens, '--decoder', diffusion, '--steps', '900', '--out', out], (stderr, child) => {
    if (!sent && /^denoise /m.test(stderr)) {
      sent = true;
      child.kill('SIGINT');
    }
  });
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /unicode2: cancelled/);
  assert.ok(!(await fs.readdir(dir)).some((f) => f.startsWith('interrupted') || f.startsWith('.interrupted')));
});

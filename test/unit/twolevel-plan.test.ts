// The two-level build as a plan of tasks (engine/build/twolevel.ts): its stages run one by one as
// separate calls against the build's checkpoint folder, as a cluster's tasks run them (in parts:
// groups of input files, ranges of cells), then the build itself, give the codebook of the
// one-call local build bit for bit, with the same calibration; a task whose inputs are not there
// is refused; a stage done already is not redone.
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import type { ComputeBackend } from '../../native-gpu/backend.js';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import { buildCodebook, checkpointFolder, runBuildStage, type BuildRequest } from '../../extension/engine/build/build.js';
import { parseStage, formatStage, type TwoLevelStage } from '../../extension/engine/build/twolevel.js';
import { writeNpy } from '../../extension/engine/io/formats/npy.js';
import { readSafetensors } from '../../extension/engine/io/formats/safetensors.js';
import { f32ToF16 } from '../../common/half.js';
import { UserError } from '../../common/errors.js';
import { EmbeddingMixture } from '../../bench/embedding-data.js';
import { cliRunner } from '../helpers/cli.js';

let backend: ComputeBackend;
let dir: string;
let embeddings: string;
const { cliJson, assertUserError } = cliRunner(() => dir);

before(async () => {
  execFileSync(process.execPath, ['scripts/build.mjs', '--quiet'], { cwd: path.join(__dirname, '../..'), stdio: 'inherit' });
  backend = await createCpuBackend();
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-plan-'));
  // three input files of unequal sizes: three groups
  embeddings = path.join(dir, 'emb');
  await fs.mkdir(embeddings);
  const mixture = new EmbeddingMixture({ d: 32, components: 120, seed: 5 });
  for (const [i, [start, n]] of [[0, 5000], [5000, 3000], [8000, 4500]].entries()) {
    await writeNpy(path.join(embeddings, `part-${i}.npy`), { shape: [n, 32], dtype: 'float16', data: f32ToF16(mixture.rows(start, n)) });
  }
});
after(async () => {
  await backend.dispose();
  await fs.rm(dir, { recursive: true, force: true });
});

const request = (out: string): BuildRequest => ({ embeddings, encoder: 'external', k: 200, iterations: 5, seed: 3, method: 'two-level', refine: 2, memoryMB: 64, out: path.join(dir, out) });

async function tensors(file: string): Promise<Record<string, Buffer>> {
  const { tensors: all } = await readSafetensors(file);
  return Object.fromEntries(Object.entries(all).map(([name, t]) => [name, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)]));
}

test('the plan run stage by stage, as separate calls in parts, equals the one-call local build bit for bit', async () => {
  const local = await buildCodebook(request('local.safetensors'), backend);
  const req = request('staged.safetensors');
  const stages: TwoLevelStage[] = [
    { stage: 'coarse' },
    // two parts over three groups: part 1 takes groups 1 and 3
    { stage: 'partition', part: 2, parts: 2 }, { stage: 'partition', part: 1, parts: 2 },
    { stage: 'cells', part: 3, parts: 3 }, { stage: 'cells', part: 1, parts: 3 }, { stage: 'cells', part: 2, parts: 3 },
    { stage: 'map', pass: 1, part: 1, parts: 3 }, { stage: 'map', pass: 1, part: 3, parts: 3 }, { stage: 'map', pass: 1, part: 2, parts: 3 },
    { stage: 'reduce', pass: 1 },
    { stage: 'map', pass: 2, part: 1, parts: 1 },
    { stage: 'reduce', pass: 2 },
  ];
  // a task before its inputs are there is refused, and leaves nothing
  await assert.rejects(runBuildStage(req, { stage: 'partition', part: 1, parts: 1 }, backend), (e: Error) => e instanceof UserError && /holds no work of this build/.test(e.message));
  for (const [i, stage] of stages.entries()) {
    assert.deepEqual(parseStage(formatStage(stage)), stage);
    if (stage.stage === 'reduce' && stage.pass === 1) {
      // the reduce before every map of its pass is refused
      await assert.rejects(runBuildStage(req, { stage: 'reduce', pass: 2 }, backend), (e: Error) => e instanceof UserError && /pass 2 needs pass 1/.test(e.message), `before stage ${i}`);
    }
    await runBuildStage(req, stage, backend);
  }
  // a stage done already does nothing (its outputs are gone with the next stage's: it must not redo them)
  await runBuildStage(req, { stage: 'cells', part: 1, parts: 1 }, backend);
  await assert.rejects(fs.access(path.join(checkpointFolder(req.out), 'fine')));
  const staged = await buildCodebook(req, backend);
  assert.equal(staged.resumedAt, 'the end (all phases done)', 'the build found every stage done');
  assert.deepEqual(await tensors(staged.out), await tensors(local.out));
  assert.deepEqual(staged.calibration, local.calibration);
  assert.deepEqual([staged.fingerprint, staged.inertia, staged.mse], [local.fingerprint, local.inertia, local.mse]);
  await assert.rejects(fs.access(checkpointFolder(req.out)), 'the work folder goes with the codebook written');
});

test('stage names: parsed, and anything else refused in one line', () => {
  assert.deepEqual(parseStage('map:2:3/8'), { stage: 'map', pass: 2, part: 3, parts: 8 });
  for (const bad of ['', 'partition', 'partition:0/2', 'partition:3/2', 'cells:1/2:x', 'map:1/2', 'reduce:0', 'final']) {
    assert.throws(() => parseStage(bad), (e: Error) => e instanceof UserError && /is not a stage of the two-level plan/.test(e.message), bad);
  }
});

test('build --slurm plans only what is missing: tasks run by hand with --stage are not submitted again', async () => {
  const args = ['build', '--embeddings', embeddings, '--k', '200', '--iters', '5', '--seed', '3', '--method', 'two-level', '--refine', '2', '--memory', '64', '--out', 'cli.safetensors'];
  const plan = async () => (await cliJson([...args, '--slurm', '--dry-run', '--tasks', '2'])).stages.map((s: { stage: string; array: number[] | null }) => [s.stage, s.array]);
  const rest = [['map-1', [1, 2]], ['reduce-1', null], ['map-2', [1, 2]], ['reduce-2', null], ['final', null]];
  assert.deepEqual(await plan(), [['coarse', null], ['partition', [1, 2]], ['cells', [1, 2]], ...rest]);
  await assertUserError([...args, '--stage', 'cells:1/2'], /holds no work of this build/);
  await cliJson([...args, '--stage', 'coarse']);
  await cliJson([...args, '--stage', 'partition:1/2']); // input files 1 and 3 of 3
  assert.deepEqual(await plan(), [['partition', [2]], ['cells', [1, 2]], ...rest]);
  await cliJson([...args, '--stage', 'partition:2/2']);
  await cliJson([...args, '--stage', 'cells:2/2']);
  assert.deepEqual(await plan(), [['cells', [1]], ...rest]);
  await assertUserError([...args, '--stage', 'map:1:1/2'], /refinement pass 1 needs every cell's codes, not all done/);
  await assertUserError([...args, '--stage', 'merge:1/2'], /'merge:1\/2' is not a stage of the two-level plan/);
  // another argument is another build: the whole plan again
  assert.deepEqual((await cliJson([...args, '--lambda', '0.5', '--slurm', '--dry-run', '--tasks', '2'])).stages.length, 8);
});

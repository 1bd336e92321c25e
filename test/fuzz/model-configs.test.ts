// A vision model folder's configurations, hostile (issue 19): config.json and
// preprocessor_config.json of a tiny SigLIP, CLIP and DINOv2-with-registers export
// (test/helpers/siglip-model.ts), mutated by seed (test/helpers/mutate.ts). Each mutated folder is
// either refused by openEncoder with a one-line UserError, or opens into an encoder that encodes a
// real photo to embeddings consistent with what it reports (the grid over its input, the model's
// d, finite values). Then the real CLI on hand-made hostile configs, and on a thin strip a
// {shortest_edge} processor would blow up: exit 2, one line, nothing written, in bounded memory
// and time.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { openBackend } from '../../native-gpu/index.js';
import type { ComputeBackend } from '../../native-gpu/backend.js';
import { openEncoder } from '../../extension/engine/embed/encoders/index.js';
import { FAMILY_CONFIGS, writeExportFolder, type TestModelOptions } from '../helpers/siglip-model.js';
import { Mutator, type Json } from '../helpers/mutate.js';
import { assertRefused, IMAGES, largestPeak, parsedOrRefused, ROOT, runCli, tempDir } from './harness.js';

const SEED = 19_0_19;
const PHOTO = path.join(IMAGES, 'chelsea.png');
/** Mutants per family; three families. */
const MUTANTS = 150;

interface Family {
  name: string;
  model: TestModelOptions;
  files: { config: Record<string, unknown>; preprocessor: Record<string, unknown> };
}
/** Patch 16 for CLIP too (its usual 32 would make a 37 MB DCT tower, hashed at every open). */
const FAMILIES: Family[] = [
  { name: 'siglip', model: { patch: 16, size: 224 }, files: FAMILY_CONFIGS.siglip(16, 224) },
  { name: 'clip', model: { patch: 16, size: 224, extraTokens: 1 }, files: FAMILY_CONFIGS.clip(16, 224) },
  { name: 'dinov2-registers', model: { patch: 14, size: 224, extraTokens: 5, dynamicSize: true }, files: FAMILY_CONFIGS.dinov2(14, 224, 4) },
];

let dir: string;
let backend: ComputeBackend;
const counts = { tried: 0, refused: 0, opened: 0 };

before(async () => {
  execFileSync(process.execPath, ['scripts/build.mjs', '--quiet'], { cwd: ROOT, stdio: 'inherit' });
  dir = await tempDir('model-configs');
  backend = await openBackend('cpu');
});
after(async () => {
  console.log(`mutants tried ${counts.tried}, refused ${counts.refused}, opened and encoded ${counts.opened}`);
  console.log(`largest peak RSS of a run: ${largestPeak.mb.toFixed(0)} MB (${largestPeak.label})`);
  await backend?.dispose();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

/** One mutant of a config file's text: structural JSON mutations mostly, sometimes text-level. */
function mutateConfig(m: Mutator, original: Record<string, unknown>): string {
  if (m.chance(0.15)) return m.text(JSON.stringify(original, null, 2));
  let doc = original as unknown as Json;
  for (let n = 1 + m.int(3); n > 0; n--) doc = m.json(doc);
  return JSON.stringify(doc);
}

/** Opens the folder (refused in one line, or opened) and encodes the photo with what opened,
 *  checking the embeddings against the encoder's own report. */
async function openAndEncode(folder: string, modelD: number, label: string): Promise<boolean> {
  // the model is sound: a config that makes it give NaN must be refused as the config's fault
  const blamesConfig = (err: unknown): never => {
    assert.doesNotMatch((err as Error).message, /must give finite numbers/, `${label}: the config's fault blamed on the model`);
    throw err;
  };
  const encoder = await parsedOrRefused(() => openEncoder(folder, backend).catch(blamesConfig), label);
  if (!encoder) return false;
  try {
    const [h, w] = encoder.inputSize;
    const grid = Math.floor(h / encoder.patch) * Math.floor(w / encoder.patch); // whole patches, as the model's Conv takes them
    assert.equal(encoder.d, modelD, `${label}: d`);
    assert.equal(encoder.tokensPerImage.max, grid, `${label}: tokens per image`);
    const image = await encoder.load(PHOTO);
    assert.deepEqual([image.height, image.width], [h, w], `${label}: the photo loaded at another size`);
    const out = await encoder.encode([image]);
    assert.deepEqual([out.rows, out.cols], [grid, modelD], `${label}: embeddings shape`);
    assert.equal(out.data.length, grid * modelD, label);
    assert.ok(out.data.every(Number.isFinite), `${label}: a non-finite embedding value`);
    return true;
  } finally {
    await encoder.dispose();
  }
}

for (const [f, family] of FAMILIES.entries()) {
  test(`mutated config.json / preprocessor_config.json of a ${family.name} folder: refused in one line, or embeddings consistent with the encoder (${MUTANTS})`, async () => {
    const folder = await writeExportFolder(path.join(dir, family.name), family.model, family.files);
    const modelD = 3 * family.model.patch! ** 2;
    // the unmutated folder opens: what the mutants are measured against
    assert.ok(await openAndEncode(folder, modelD, `${family.name} as exported`));
    const m = new Mutator(SEED + f);
    let opened = 0;
    for (let i = 0; i < MUTANTS; i++) {
      const which = m.int(3); // 0: config.json, 1: preprocessor_config.json, 2: both
      const config = which !== 1 ? mutateConfig(m, family.files.config) : JSON.stringify(family.files.config);
      const preprocessor = which !== 0 ? mutateConfig(m, family.files.preprocessor) : JSON.stringify(family.files.preprocessor);
      await fs.writeFile(path.join(folder, 'config.json'), config);
      await fs.writeFile(path.join(folder, 'preprocessor_config.json'), preprocessor);
      const label = `${family.name} seed ${SEED + f} case ${i}: config.json ${config.slice(0, 300)} preprocessor_config.json ${preprocessor.slice(0, 400)}`;
      counts.tried++;
      if (await openAndEncode(folder, modelD, label)) opened++;
      else counts.refused++;
    }
    counts.opened += opened;
    // mutants that still open prove the checks are not simply refusing everything
    assert.ok(opened >= MUTANTS / 10, `${family.name}: only ${opened} of ${MUTANTS} mutants opened: the mutations are too destructive to test acceptance`);
  });
}

/** Hand-made hostile configs, each a one-field change of a family's files, and what the one line
 *  must name. */
const HOSTILE: { name: string; family: number; config?: (c: any) => void; preprocessor?: (p: any) => void; pattern: RegExp }[] = [
  { name: 'image size 10^9', family: 0, config: (c) => (c.vision_config.image_size = 1e9), pattern: /made for 1000000000x1000000000 inputs but preprocessor_config.json gives 224x224/ },
  { name: 'preprocessor size 10^9', family: 0, preprocessor: (p) => (p.size = { height: 1e9, width: 1e9 }), pattern: /1000000000x1000000000 exceeds the limit/ },
  { name: 'patch size 0', family: 1, config: (c) => (c.vision_config.patch_size = 0), pattern: /'patch_size' must be a whole number/ },
  { name: 'num_register_tokens -1', family: 2, config: (c) => (c.num_register_tokens = -1), pattern: /'num_register_tokens' must be a whole number from 0 to 64, found -1/ },
  { name: 'image_mean of the wrong length', family: 1, preprocessor: (p) => (p.image_mean = [0.5, 0.5]), pattern: /'image_mean' must be 3 numbers/ },
  { name: 'image_std 1e-300', family: 1, preprocessor: (p) => (p.image_std = [1e-300, 0.26, 0.27]), pattern: /normalize pixels to values up to 5.18\d*e\+299 in magnitude, beyond the 65504/ },
  { name: 'resample 99', family: 0, preprocessor: (p) => (p.resample = 99), pattern: /'resample' must be a PIL filter number 0-3.*found 99/ },
  { name: 'size {shortest_edge: 1e12}', family: 2, preprocessor: (p) => (p.size = { shortest_edge: 1e12 }), pattern: /1000000000000x1000000000000 exceeds the limit/ },
];

for (const h of HOSTILE) {
  test(`unicode2 build --encoder on a folder with ${h.name}: exit 2, one line, nothing written`, async () => {
    const family = FAMILIES[h.family]!;
    const files = structuredClone(family.files);
    h.config?.(files.config);
    h.preprocessor?.(files.preprocessor);
    const folder = await writeExportFolder(path.join(dir, `hostile-${h.name.replace(/\W+/g, '-')}`), family.model, files);
    const out = path.join(dir, `hostile-${h.name.replace(/\W+/g, '-')}.u2cb`);
    const args = ['build', '--images', IMAGES, '--encoder', folder, '--k', '4', '--iters', '2', '--out', out];
    assertRefused(await runCli([...args, '--quiet']), h.pattern, h.name);
    assert.ok(!existsSync(out), `${h.name}: ${out} was written`);
    const left = (await fs.readdir(dir)).filter((n) => n.startsWith(path.basename(out)));
    assert.deepEqual(left, [], `${h.name}: files left beside the output`);
  });
}

// A {shortest_edge} resize lets the long side follow the photo: a thin strip (2,000,000 x 1 pixels,
// well under the image limit) would become 448,000,000 x 224 before the crop, 1.3 GB of bytes.
test('unicode2 build --encoder with a shortest-edge processor on a 2,000,000 x 1 strip: refused in one line before the resize allocates, nothing written', async () => {
  const family = FAMILIES[1]!;
  const folder = await writeExportFolder(path.join(dir, 'strip-clip'), family.model, family.files);
  const images = path.join(dir, 'strip-images');
  await fs.mkdir(images, { recursive: true });
  await sharp({ create: { width: 2_000_000, height: 1, channels: 3, background: '#808080' } }).png().toFile(path.join(images, 'strip.png'));
  const out = path.join(dir, 'strip.u2cb');
  const args = ['build', '--images', images, '--encoder', folder, '--k', '1', '--iters', '1', '--out', out, '--quiet'];
  assertRefused(await runCli(args), /would resize this 2000000x1 photo to 448000000x224 before its centre crop, over the limit of 4194304 pixels/, 'strip');
  assert.ok(!existsSync(out), `${out} was written`);
});

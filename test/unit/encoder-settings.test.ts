// The precision and layer a model is opened at when a codebook does not say (VS Code's
// unicode2.encoderPrecision / unicode2.encoderLayer reach the engine this way, through
// openCodebookEncoder's fallback): a codebook built from external embeddings takes them; a
// codebook that records its own keeps its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ComputeBackend } from '../../native-gpu/backend.js';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import { EXTERNAL_ENCODER, openCodebookEncoder, openEncoder, type EncoderDescriptor } from '../../extension/engine/embed/encoders/index.js';
import { DEFAULT_PRECISION } from '../../extension/engine/embed/encoders/model-files.js';
import { DEFAULTS } from '../../extension/engine/core/defaults.js';
import { dctVisionTower, FAMILY_CONFIGS, writeExportFolder } from '../helpers/siglip-model.js';

let backend: ComputeBackend;
let tmp: string;
test.before(async () => {
  backend = await createCpuBackend();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'encoder-settings-'));
});
test.after(async () => {
  await backend.dispose();
  await fs.rm(tmp, { recursive: true, force: true });
});

test('a model chosen for a codebook that records none opens at the fallback precision and layer; a recorded one wins', async () => {
  assert.equal(DEFAULT_PRECISION, DEFAULTS.encoderPrecision);
  const dir = path.join(tmp, 'community');
  await writeExportFolder(dir, { size: 32, patch: 16, hiddenStates: 2 }, { modelPath: 'onnx/vision_model.onnx', ...FAMILY_CONFIGS.siglip(16, 32) });
  await fs.writeFile(path.join(dir, 'onnx/vision_model_fp16.onnx'), dctVisionTower({ size: 32, patch: 16, f16Io: true, hiddenStates: 2 }));
  const external: { meta: { encoder: EncoderDescriptor } } = { meta: { encoder: { kind: 'onnx', id: EXTERNAL_ENCODER, patch: 0, inputSize: [0, 0], d: 768, resize: 'stretch' } } };
  const chosen = await openCodebookEncoder(external, dir, backend, undefined, { precision: 'fp16', layer: -2 });
  try {
    assert.equal(chosen.descriptor.model!.file, 'onnx/vision_model_fp16.onnx');
    assert.equal(chosen.descriptor.model!.layer, -2);
  } finally {
    await chosen.dispose();
  }
  // a codebook that records fp32 and no layer: the fallback is not applied
  const own = await openEncoder(dir, backend);
  const recorded = { meta: { encoder: own.descriptor } };
  await own.dispose();
  const again = await openCodebookEncoder(recorded, dir, backend, undefined, { precision: 'fp16', layer: -2 });
  try {
    assert.deepEqual([again.descriptor.model!.file, again.descriptor.model!.layer], ['onnx/vision_model.onnx', null]);
  } finally {
    await again.dispose();
  }
});

// A small real codebook built by the engine from the fixture photos (DCT encoder, K = 256), and a
// real image tokenized with it: test data for the token-grid and generation panels; and the same
// codebook after a training run, its trainable half imported as `codebook import-trainable` does.
import * as path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import {
  buildCodebook, listImages, openEncoderFromDescriptor, readCodebook, readTrainableCheckpoint, tokenizeImages, withTrainable, writeCodebook,
  type Codebook, type Encoder, type TokenGrid,
} from '../../extension/engine/index.js';
import { writeSafetensors } from '../../extension/engine/io/formats/safetensors.js';
import { seededRandom } from '../../extension/engine/core/sampling.js';
import { rowsF32 } from '../../native-gpu/tables.js';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import type { ComputeBackend } from '../../native-gpu/backend.js';
import { photoDataUri, reconstruct } from '../../extension/panels/images.js';
import type { Reconstruction } from '../../common/protocol/tokengrid.js';

export const fixtureImages = path.resolve(__dirname, '../fixtures/images');

export interface Fixture {
  backend: ComputeBackend;
  cb: Codebook;
  encoder: Encoder;
  /** chelsea.png's tokens */
  grid: TokenGrid;
  /** every fixture photo's tokens */
  grids: TokenGrid[];
  /** chelsea.png's grid with these ids, decoded as the Token Grid panel's host does it */
  decode(ids: number[]): Promise<Reconstruction>;
  /** chelsea.png (256 x 170) as the panels show a photo */
  photoUri: string;
}

let fixture: Promise<Fixture> | null = null;

export function realFixture(): Promise<Fixture> {
  fixture ??= (async () => {
    const backend = await createCpuBackend();
    const dir = mkdtempSync(path.join(tmpdir(), 'unicode2-webview-'));
    const out = path.join(dir, 'codebook.safetensors');
    await buildCodebook({ images: fixtureImages, encoder: 'dct', k: 256, iterations: 10, seed: 0, lambda: 0.1, out }, backend);
    const cb = await readCodebook(out);
    await cb.trainable.load(); // read lazily otherwise: load it before its file goes
    rmSync(dir, { recursive: true, force: true }); // everything needed is in memory now
    const encoder = await openEncoderFromDescriptor(cb.meta.encoder, backend);
    const image = path.join(fixtureImages, 'chelsea.png');
    const { results: grids } = await tokenizeImages(cb, encoder, await listImages(fixtureImages), backend, { withDistances: true });
    const grid = grids.find((g) => g.image === image)!;
    const decode = async (ids: number[]): Promise<Reconstruction> => (await reconstruct(cb, encoder, backend, image, ids, grid.grid))!;
    return { backend, cb, encoder, grid, grids, decode, photoUri: await photoDataUri(image, grid.grid) };
  })();
  return fixture;
}

export async function disposeFixture(): Promise<void> {
  if (!fixture) return;
  const f = await fixture;
  await f.encoder.dispose();
  await f.backend.dispose();
  fixture = null;
}

/**
 * The fixture codebook after a (simulated) training run: each trainable row moved from its frozen
 * row along a seeded direction by 0.05 x log(1 + its use) x a seeded factor in [0.5, 1.5), so used
 * codes adapt and dead ones stay put, saved under a PyTorch name in a checkpoint and imported through the engine.
 */
export async function trainedFixture(): Promise<Codebook> {
  const { cb } = await realFixture();
  const { rows: k, cols: d } = cb.frozen;
  const random = seededRandom(11);
  const trained = Float32Array.from(rowsF32(cb.frozen, 0, k));
  for (let code = 0; code < k; code++) {
    const direction = Array.from({ length: d }, () => random() - 0.5);
    const norm = Math.hypot(...direction);
    const step = 0.05 * Math.log1p(cb.counts![code]!) * (0.5 + random());
    for (let j = 0; j < d; j++) trained[code * d + j]! += (step * direction[j]!) / norm;
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'unicode2-trained-'));
  try {
    const from = path.join(dir, 'ckpt.safetensors');
    await writeSafetensors(from, { 'model.vq.trainable.weight': { dtype: 'F32', shape: [k, d], data: trained } });
    const opts = { from, tensor: 'model.vq.trainable.weight' };
    const out = path.join(dir, 'trained.safetensors');
    await writeCodebook(out, withTrainable(cb, await readTrainableCheckpoint(opts, k), opts));
    const read = await readCodebook(out);
    await read.trainable.load();
    return read;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

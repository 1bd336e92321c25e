// A small real codebook built by the engine from the fixture photos (DCT encoder, K = 256), and a
// real image tokenized with it: test data for the token-grid and generation panels.
import * as path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import {
  buildCodebook, listImages, openEncoderFromDescriptor, readCodebook, tokenizeImages, type Codebook, type Encoder, type TokenGrid,
} from '../../extension/engine/index.js';
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

// Token grid -> image through a decoder: the atlas (each code's pixel patch; no model needed) or a
// diffusion decoder folder (diffusion/decoder.ts). One interface for the CLI's `generate` and the
// Generation panel, which keeps a decoder open across runs (opening a large ONNX model takes
// seconds).
import type { ComputeBackend } from '../../../native-gpu/backend.js';
import { UserError } from '../../../common/errors.js';
import { decodeTokens } from './atlas.js';
import type { Codebook } from '../codebook/codebook.js';
import { DEFAULTS } from '../core/defaults.js';
import { openDiffusionDecoder, type DiffusionControl, type DiffusionDecoder } from './diffusion/decoder.js';
import { readDiffusionFolder } from './diffusion/folder.js';
import type { SchedulerKind } from './diffusion/schedulers.js';
import type { RgbImage } from '../embed/image.js';
import { checkGridSize } from '../core/limits.js';

export const ATLAS_DECODER = 'atlas';

export interface DiffusionSettings {
  scheduler: SchedulerKind;
  steps: number;
  guidance: number;
  eta: number;
  seed: number;
  /** N(0, 1) starting latents [1, C, h, w] instead of seeded noise */
  initNoise?: { shape: number[]; data: Float32Array };
  /** decode a preview every this many steps (0 = none) */
  previewEvery?: number;
}

export interface Decoded {
  image: RgbImage;
  /** what computed it */
  device: string;
  /** the diffusion settings used, or null for the atlas */
  diffusion: { scheduler: SchedulerKind; steps: number; timesteps: number[] } | null;
}

export interface TokenDecoder {
  /** 'atlas' or the diffusion folder */
  readonly name: string;
  readonly kind: 'atlas' | 'diffusion';
  decode(cb: Codebook, ids: Int32Array, grid: [number, number], settings: DiffusionSettings, control?: DiffusionControl): Promise<Decoded>;
  dispose(): Promise<void>;
}

/** The diffusion settings with the defaults filled in. */
export function diffusionSettings(over: Partial<DiffusionSettings> = {}): DiffusionSettings {
  const g = DEFAULTS.generation;
  return { scheduler: g.scheduler, steps: g.steps, guidance: g.guidance, eta: g.eta, seed: DEFAULTS.seed, ...over };
}

/** Checks a decoder spec's files and configurations without loading anything (no backend, no
 *  model): a run can refuse a bad folder at once, before it opens the rest. */
export async function checkTokenDecoder(spec: string): Promise<void> {
  if (spec !== ATLAS_DECODER) await readDiffusionFolder(spec);
}

/** 'atlas' or a diffusers ONNX export folder. ONNX models run on the backend's device. */
export async function openTokenDecoder(spec: string, backend: ComputeBackend, onWarning?: (m: string) => void): Promise<TokenDecoder> {
  if (spec === ATLAS_DECODER) {
    return {
      name: ATLAS_DECODER,
      kind: 'atlas',
      async decode(cb, ids, grid) {
        return { image: await decodeTokens(cb, ids, grid, backend), device: backend.device, diffusion: null };
      },
      async dispose() {},
    };
  }
  const diffusion: DiffusionDecoder = await openDiffusionDecoder(spec, { device: backend.name, onWarning });
  return {
    name: spec,
    kind: 'diffusion',
    async decode(cb, ids, grid, settings, control) {
      checkGridSize(grid, 'token grid');
      if (ids.length !== grid[0] * grid[1]) throw new UserError(`${ids.length} token ids do not fill a ${grid[0]}x${grid[1]} grid`);
      const conditioning = await diffusion.conditionOn(cb, ids);
      const result = await diffusion.generate({ conditioning, ...settings }, control);
      return { image: result.image, device: result.device, diffusion: { scheduler: settings.scheduler, steps: settings.steps, timesteps: result.timesteps } };
    },
    dispose: () => diffusion.dispose(),
  };
}

// A diffusers ONNX export folder (the layout decoder.ts describes): its files found and its JSON
// configurations read and checked, before any model is opened.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../../../common/errors.js';
import { readNpy, type NpyArray } from '../../io/formats/npy.js';
import { readJsonFile } from '../../io/files.js';
import { checkWholeNumber, MAX_CONFIG_BYTES, MAX_LATENT_SIDE } from '../../core/limits.js';
import { checkSchedule } from './schedulers.js';

const DENOISER_CANDIDATES = ['unet/model.onnx', 'transformer/model.onnx'];
const VAE_DECODER = 'vae_decoder/model.onnx';
const SCHEDULER_CONFIG = 'scheduler/scheduler_config.json';
const PROJECTOR = 'projector/model.onnx';
const UNCONDITIONAL = 'unconditional.npy';
/** Stable Diffusion 1.x's VAE scaling, used when vae_decoder/config.json does not say */
const DEFAULT_SCALING_FACTOR = 0.18215;
/** latent side when neither the model nor unet/config.json fixes it (512 px for an 8x VAE) */
const DEFAULT_LATENT_SIZE = 64;
/** scaling_factor values that make sense (diffusers' VAEs: 0.13 to 1.6); outside, latents /
 *  scaling_factor overflow or vanish in f32 */
const SCALING_RANGE = [1e-3, 1e3] as const;

export interface DiffusionFolder {
  folder: string;
  denoiser: string;
  vae: string;
  /** the optional files, null when absent */
  projector: string | null;
  unconditional: string | null;
  schedulerFile: string;
  /** scheduler_config.json as read: schedulers.ts checks it for the sampler a run asks for */
  scheduler: Record<string, unknown>;
  /** the VAE's scaling_factor */
  scaling: number;
  /** the latent side for a model that leaves it open */
  sampleSize: number;
}

export async function isFile(file: string): Promise<boolean> {
  return fs.stat(file).then((s) => s.isFile(), () => false);
}

export async function readJson(file: string): Promise<Record<string, unknown>> {
  const doc = await readJsonFile(file, 'a model configuration', MAX_CONFIG_BYTES);
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new UserError(`${file}: expected a JSON object`);
  return doc as Record<string, unknown>;
}

export async function readDiffusionFolder(folder: string): Promise<DiffusionFolder> {
  const stat = await fs.stat(folder).catch(() => null);
  if (!stat?.isDirectory()) throw new UserError(`decoder '${folder}': no such folder (expected 'atlas' or a diffusers ONNX export folder)`);
  const at = (rel: string) => path.join(folder, rel);
  let denoiser: string | null = null;
  for (const candidate of DENOISER_CANDIDATES) if (await isFile(at(candidate))) { denoiser = at(candidate); break; }
  const missing = [
    denoiser ? null : DENOISER_CANDIDATES.join(' or '),
    (await isFile(at(VAE_DECODER))) ? null : VAE_DECODER,
    (await isFile(at(SCHEDULER_CONFIG))) ? null : SCHEDULER_CONFIG,
  ].filter(Boolean);
  if (missing.length || !denoiser) throw new UserError(`${folder}: not a diffusers ONNX export: ${missing.join(', ')} missing`);

  // Every number that sizes a loop or an allocation is checked here, before any model loads.
  const scheduler = await readJson(at(SCHEDULER_CONFIG));
  checkSchedule(scheduler, at(SCHEDULER_CONFIG));
  const vaeConfig = (await isFile(at('vae_decoder/config.json'))) ? await readJson(at('vae_decoder/config.json')) : {};
  const scaling = vaeConfig.scaling_factor ?? DEFAULT_SCALING_FACTOR;
  if (typeof scaling !== 'number' || !(scaling >= SCALING_RANGE[0] && scaling <= SCALING_RANGE[1])) {
    throw new UserError(`${at('vae_decoder/config.json')}: "scaling_factor" must be a number from ${SCALING_RANGE[0]} to ${SCALING_RANGE[1]}, found ${typeof scaling === 'number' ? scaling : JSON.stringify(scaling)}`);
  }
  const denoiserConfigFile = path.join(path.dirname(denoiser), 'config.json');
  const denoiserConfig = (await isFile(denoiserConfigFile)) ? await readJson(denoiserConfigFile) : {};
  const sampleSize = denoiserConfig.sample_size ?? DEFAULT_LATENT_SIZE;
  checkWholeNumber(sampleSize, 1, MAX_LATENT_SIDE, `${denoiserConfigFile}: "sample_size"`);
  return {
    folder,
    denoiser,
    vae: at(VAE_DECODER),
    projector: (await isFile(at(PROJECTOR))) ? at(PROJECTOR) : null,
    unconditional: (await isFile(at(UNCONDITIONAL))) ? at(UNCONDITIONAL) : null,
    schedulerFile: at(SCHEDULER_CONFIG),
    scheduler,
    scaling,
    sampleSize,
  };
}

/** The unconditional embedding [L, c] or [c]: checked to hold floats here, against the
 *  conditioning when a run asks for guidance. */
export async function readUnconditional(file: string): Promise<NpyArray> {
  const unconditional = await readNpy(file);
  if (unconditional.dtype !== 'float32' && unconditional.dtype !== 'float16') {
    throw new UserError(`${file}: expected float32 or float16, found ${unconditional.dtype}`);
  }
  return unconditional;
}

// The extension's settings (contributes.configuration in package.json), read in one place.
import * as vscode from 'vscode';
import * as path from 'node:path';
import { existsSync } from 'node:fs';
import { DEFAULTS, encoderKindOf, type BuildMethod, type DeviceChoice, type EncoderOptions, type Precision, type SchedulerKind, type SearchChoice } from '../engine/index.js';
import type { SlurmSettings } from './slurm-jobs.js';

export interface Settings {
  device: DeviceChoice;
  encoder: string;
  /** which of the encoder model's files, and which hidden state (null: last_hidden_state) */
  encoderPrecision: Precision;
  encoderLayer: number | null;
  codebook: string;
  k: number;
  lambda: number;
  iterations: number;
  tolerance: number;
  method: BuildMethod;
  seed: number;
  allowSoftwareGpu: boolean;
  search: SearchChoice;
  nprobe: number;
  /** the Generation panel's defaults (unicode2.generation.*) */
  generation: {
    decoder: string;
    scheduler: SchedulerKind;
    steps: number;
    guidance: number;
    eta: number;
    temperature: number;
    topK: number;
    topP: number;
    priorOrder: number;
    variations: number;
  };
  /** runs on Slurm (unicode2.slurm.*): the CLI's --sbatch, --tasks, --setup */
  slurm: SlurmSettings;
}

export function readSettings(): Settings {
  const c = vscode.workspace.getConfiguration('unicode2');
  return {
    device: c.get<DeviceChoice>('device', DEFAULTS.device),
    encoder: c.get<string>('encoder', DEFAULTS.encoder),
    encoderPrecision: c.get<Precision>('encoderPrecision', DEFAULTS.encoderPrecision),
    encoderLayer: c.get<number | null>('encoderLayer', DEFAULTS.encoderLayer),
    codebook: c.get<string>('codebook', ''),
    k: c.get<number>('k', DEFAULTS.k),
    lambda: c.get<number>('lambda', DEFAULTS.lambda),
    iterations: c.get<number>('iterations', DEFAULTS.iterations),
    tolerance: c.get<number>('tolerance', DEFAULTS.tolerance),
    method: c.get<BuildMethod>('method', DEFAULTS.method),
    seed: c.get<number>('seed', DEFAULTS.seed),
    allowSoftwareGpu: c.get<boolean>('allowSoftwareGpu', DEFAULTS.allowSoftwareGpu),
    search: c.get<SearchChoice>('search', DEFAULTS.search),
    nprobe: c.get<number>('nprobe', DEFAULTS.nprobe),
    generation: Object.fromEntries(Object.entries(DEFAULTS.generation).map(([key, value]) => [key, c.get(`generation.${key}`, value)])) as Settings['generation'],
    slurm: { sbatch: c.get<string>('slurm.sbatch', ''), tasks: c.get<number>('slurm.tasks', 0), setup: c.get<string>('slurm.setup', '') },
  };
}

/** `<workspace>/.unicode2`, where builds and token sets go; null without an open folder. */
export function workspaceDataDir(): string | null {
  const folder = vscode.workspace.workspaceFolders?.[0];
  return folder ? path.join(folder.uri.fsPath, '.unicode2') : null;
}

export function defaultCodebookPath(): string | null {
  const dir = workspaceDataDir();
  return dir ? path.join(dir, 'codebook.safetensors') : null;
}

/** The setting when given (relative paths are taken from the workspace), else the default file if it exists. */
export function configuredCodebook(settings: Settings): string | null {
  if (settings.codebook) {
    const folder = vscode.workspace.workspaceFolders?.[0];
    return path.isAbsolute(settings.codebook) || !folder ? settings.codebook : path.join(folder.uri.fsPath, settings.codebook);
  }
  const fallback = defaultCodebookPath();
  return fallback && existsSync(fallback) ? fallback : null;
}

/** The precision and layer settings as encoder options for the encoder `spec` names: a model's
 *  (the built-in DCT has neither, and the defaults are left unsaid). */
export function encoderSettings(spec: string, settings: Pick<Settings, 'encoderPrecision' | 'encoderLayer'>): Pick<EncoderOptions, 'precision' | 'layer'> {
  if (encoderKindOf(spec) !== 'onnx') return {};
  const { encoderPrecision: precision, encoderLayer: layer } = settings;
  return { ...(precision !== DEFAULTS.encoderPrecision && { precision }), ...(layer !== null && Number.isSafeInteger(layer) && { layer }) };
}

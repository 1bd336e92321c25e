// The diffusion folder's ONNX models, each checked when it opens against what the pipeline feeds
// it and reads from it (inputs' names, shapes and types from onnxruntime's session metadata), and
// what they fix: latent channels and size, conditioning length and width, batch.
import type { Matrix } from '../../../../native-gpu/backend.js';
import { describeTensors, type ModelSession, type TensorInfo } from '../../../../native-gpu/onnx-session.js';
import { UserError } from '../../../../common/errors.js';
import { MAX_LATENT_CHANNELS, MAX_LATENT_SIDE } from '../../core/limits.js';
import type { RgbImage } from '../../embed/image.js';
import type { DiffusionFolder } from './folder.js';
import { FLOAT_TYPES, fixed, floatTensor, floats } from '../../../../native-gpu/onnx-tensors.js';
import { TIMESTEP_TYPES } from './tensors.js';

export interface Denoiser {
  session: ModelSession;
  file: string;
  latent: TensorInfo;
  timestep: TensorInfo;
  context: TensorInfo;
  output: string;
}

/** A model with one input and the one output read from it. */
export interface OneToOne {
  file: string;
  session: ModelSession;
  input: TensorInfo;
  output: string;
}

export interface DiffusionModels {
  denoiser: Denoiser;
  vae: OneToOne;
  projector: OneToOne | null;
  /** latent channels (the denoiser must fix them), and the latent size when a run gives none */
  channels: number;
  defaultLatentSize: [number, number];
  /** conditioning length and width the denoiser fixes (null = open) */
  contextTokens: number | null;
  contextWidth: number | null;
  /** the batch the denoiser fixes (1: guidance runs it twice), null = open */
  fixedBatch: number | null;
}

function checkDenoiser(file: string, session: ModelSession): Denoiser {
  const find = (names: string[]) => session.inputs.find((i) => names.includes(i.name));
  const latent = find(['sample', 'hidden_states']);
  const timestep = find(['timestep']);
  const context = find(['encoder_hidden_states']);
  const expected = "expected inputs 'sample' [B,C,h,w] float, 'timestep' [] or [1] float or int64, 'encoder_hidden_states' [B,L,c] float";
  const ok = latent && timestep && context &&
    FLOAT_TYPES.includes(latent.type) && latent.shape.length === 4 &&
    TIMESTEP_TYPES.includes(timestep.type) && timestep.shape.length <= 1 &&
    FLOAT_TYPES.includes(context.type) && context.shape.length === 3;
  if (!ok) throw new UserError(`${file}: ${expected}; found ${describeTensors(session.inputs)}`);
  const extra = session.inputs.filter((i) => i !== latent && i !== timestep && i !== context);
  if (extra.length) {
    throw new UserError(`${file}: the noise predictor also needs ${describeTensors(extra)}, which token conditioning does not provide (${expected})`);
  }
  const output = session.outputs.find((o) => o.name === 'out_sample') ?? session.outputs[0];
  if (!output || !FLOAT_TYPES.includes(output.type) || output.shape.length !== 4) {
    throw new UserError(`${file}: expected output 'out_sample' [B,C,h,w] float, found ${describeTensors(session.outputs)}`);
  }
  return { session, file, latent, timestep, context, output: output.name };
}

function checkVae(file: string, session: ModelSession, channels: number): OneToOne {
  const input = session.inputs.find((i) => i.name === 'latent_sample') ?? (session.inputs.length === 1 ? session.inputs[0] : undefined);
  const output = session.outputs.find((o) => o.name === 'sample') ?? session.outputs[0];
  const inChannels = fixed(input?.shape[1]);
  if (!input || session.inputs.length !== 1 || !FLOAT_TYPES.includes(input.type) || input.shape.length !== 4 || (inChannels !== null && inChannels !== channels)) {
    throw new UserError(`${file}: expected input 'latent_sample' [B,${channels},h,w] float (the noise predictor's ${channels} latent channels), found ${describeTensors(session.inputs)}`);
  }
  if (!output || !FLOAT_TYPES.includes(output.type) || output.shape.length !== 4 || (fixed(output.shape[1]) ?? 3) !== 3) {
    throw new UserError(`${file}: expected output 'sample' [B,3,H,W] float, found ${describeTensors(session.outputs)}`);
  }
  return { file, session, input, output: output.name };
}

function checkProjector(file: string, session: ModelSession): OneToOne {
  const input = session.inputs[0];
  const output = session.outputs[0];
  if (session.inputs.length !== 1 || !input || !FLOAT_TYPES.includes(input.type) || (input.shape.length !== 2 && input.shape.length !== 3) ||
      !output || !FLOAT_TYPES.includes(output.type) || output.shape.length !== input.shape.length) {
    throw new UserError(`${file}: expected one input [L,d'] or [1,L,d'] float and an output [L,c] or [1,L,c] float, found inputs ${describeTensors(session.inputs)}, outputs ${describeTensors(session.outputs)}`);
  }
  return { file, session, input, output: output.name };
}

/** The latent sizes a model fixes, within the limits: they size every latent allocated for it. */
function checkLatentShape(file: string, latent: TensorInfo): void {
  const [, channels, h, w] = latent.shape.map(fixed);
  if (channels! > MAX_LATENT_CHANNELS) throw new UserError(`${file}: the latent input '${latent.name}' fixes ${channels} channels; the limit is ${MAX_LATENT_CHANNELS}`);
  if ((h ?? 0) > MAX_LATENT_SIDE || (w ?? 0) > MAX_LATENT_SIDE) {
    throw new UserError(`${file}: the latent input '${latent.name}' is [${latent.shape.join(',')}]; the limit is ${MAX_LATENT_SIDE} x ${MAX_LATENT_SIDE} latents`);
  }
}

/** Opens the denoiser, the VAE and the projector (when the folder has one) in that order, each
 *  checked as it opens. `open` keeps every session it opened, for the caller to release also
 *  when a later one fails. */
export async function openModels(files: DiffusionFolder, open: (file: string) => Promise<ModelSession>): Promise<DiffusionModels> {
  const denoiser = checkDenoiser(files.denoiser, await open(files.denoiser));
  const channels = fixed(denoiser.latent.shape[1]);
  if (channels === null) throw new UserError(`${files.denoiser}: the latent input '${denoiser.latent.name}' must fix its channel count, found [${denoiser.latent.shape.join(',')}]`);
  checkLatentShape(files.denoiser, denoiser.latent);
  const vae = checkVae(files.vae, await open(files.vae), channels);
  const projector = files.projector ? checkProjector(files.projector, await open(files.projector)) : null;
  return {
    denoiser,
    vae,
    projector,
    channels,
    defaultLatentSize: [fixed(denoiser.latent.shape[2]) ?? files.sampleSize, fixed(denoiser.latent.shape[3]) ?? files.sampleSize],
    contextTokens: fixed(denoiser.context.shape[1]),
    contextWidth: fixed(denoiser.context.shape[2]),
    fixedBatch: fixed(denoiser.latent.shape[0]) ?? fixed(denoiser.context.shape[0]),
  };
}

/** `m` when it fits the conditioning the denoiser takes; `label` says where it came from. */
export function checkConditioning(models: DiffusionModels, label: string, m: Matrix): Matrix {
  const { contextTokens, contextWidth, denoiser } = models;
  if (contextWidth !== null && m.cols !== contextWidth) {
    throw new UserError(`${label} gives ${m.cols} values per token but ${denoiser.file} takes encoder_hidden_states of width ${contextWidth}`);
  }
  if (contextTokens !== null && m.rows !== contextTokens) {
    throw new UserError(`the token grid has ${m.rows} tokens but ${denoiser.file} takes encoder_hidden_states of ${contextTokens} tokens`);
  }
  const bad = m.data.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new UserError(`${label} gives ${m.data[bad]} at token ${Math.floor(bad / m.cols)}; the conditioning must be finite numbers`);
  return m;
}

/** Latents through the VAE: image = clip(sample / 2 + 0.5, 0, 1) of latents / scaling_factor.
 *  `at` names the step in messages. */
export async function decodeLatents(vae: OneToOne, scaling: number, latents: Float32Array, shape: number[], at: string): Promise<RgbImage> {
  const scaled = latents.map((v) => v / scaling);
  const out = (await vae.session.run({ [vae.input.name]: floatTensor(vae.input.type, scaled, shape) }, [vae.output], at))[vae.output]!;
  const [, c, h, w] = out.dims as number[];
  if (out.dims.length !== 4 || c !== 3) throw new UserError(`${vae.file}: output '${vae.output}' is [${out.dims.join(',')}], expected [1,3,H,W]`);
  const data = floats(out).map((v) => Math.min(1, Math.max(0, v / 2 + 0.5)));
  return { data: data.slice(0, 3 * h! * w!), width: w!, height: h! };
}

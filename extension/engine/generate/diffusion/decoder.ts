// The diffusion decoder: a pretrained latent diffusion model exported the way diffusers / optimum
// lay out ONNX pipelines, conditioned on visual tokens instead of text. A token grid's rows of the
// codebook's trainable table (through a projector when there is one) are the cross-attention
// input `encoder_hidden_states` [1, L, c], where a text encoder's output would go.
//
//   <folder>/unet/model.onnx  or  transformer/model.onnx   noise predictor (external weight files
//                                                           beside it are loaded by onnxruntime)
//   <folder>/vae_decoder/model.onnx                         latent_sample -> sample
//   <folder>/scheduler/scheduler_config.json                betas, prediction type, spacing...
//   <folder>/vae_decoder/config.json       (optional)       scaling_factor (default 0.18215)
//   <folder>/unet/config.json              (optional)       sample_size: latent size when the
//                                                           model leaves it open (default 64)
//   <folder>/projector/model.onnx          (optional)       trainable rows [.., d'] -> [.., c]
//   <folder>/unconditional.npy             (optional)       the unconditional embedding [L, c] or
//                                                           [c] (repeated over L) for guidance;
//                                                           zeros when absent
//
// Every input's name, shape and type is read from the model (onnxruntime's session metadata) and
// checked when the folder is opened: a model that does not fit fails then, with one line naming
// what was found and what was expected. f16 models get f16 tensors. folder.ts reads the folder,
// models.ts opens and checks the models, denoise.ts runs the sampling loop.
import type { BackendName, Matrix } from '../../../../native-gpu/backend.js';
import { openModelSession, type ModelSession } from '../../../../native-gpu/onnx-session.js';
import { UserError } from '../../../../common/errors.js';
import type { Codebook } from '../../codebook/codebook.js';
import { checkTokenIds } from '../../../../native-gpu/token-ids.js';
import { rowsF32 } from '../../../../native-gpu/tables.js';
import { denoise, type DiffusionControl, type DiffusionRequest, type DiffusionResult } from './denoise.js';
import { readDiffusionFolder, readUnconditional } from './folder.js';
import { checkConditioning, openModels, type DiffusionModels } from './models.js';
import { fixed, floatTensor, floats } from '../../../../native-gpu/onnx-tensors.js';

export type { DiffusionControl, DiffusionRequest, DiffusionResult, DiffusionStep } from './denoise.js';

export interface DiffusionDecoder {
  readonly folder: string;
  /** where the noise predictor runs (the VAE and projector run on the same kind of device) */
  readonly device: string;
  /** latent channels, and the latent size the model fixes (null = open) */
  readonly latentChannels: number;
  readonly defaultLatentSize: [number, number];
  /** conditioning length and width the model fixes (null = open) */
  readonly contextTokens: number | null;
  readonly contextWidth: number | null;
  readonly hasProjector: boolean;
  /** [L x c]: the token ids' trainable rows, projected when the codebook or the folder has a projector */
  conditionOn(cb: Codebook, ids: Int32Array): Promise<Matrix>;
  generate(req: DiffusionRequest, control?: DiffusionControl): Promise<DiffusionResult>;
  dispose(): Promise<void>;
}

function matmul(a: Matrix, b: Matrix): Matrix {
  const out = new Float32Array(a.rows * b.cols);
  for (let i = 0; i < a.rows; i++) {
    for (let k = 0; k < a.cols; k++) {
      const v = a.data[i * a.cols + k]!;
      if (v === 0) continue;
      for (let j = 0; j < b.cols; j++) out[i * b.cols + j] += v * b.data[k * b.cols + j]!;
    }
  }
  return { rows: a.rows, cols: b.cols, data: out };
}

/** DiffusionDecoder.conditionOn over the opened models. */
async function conditionOn(models: DiffusionModels, cb: Codebook, ids: Int32Array): Promise<Matrix> {
  const { projector } = models;
  const d = cb.trainable.cols;
  const rows = new Float32Array(ids.length * d);
  checkTokenIds(ids, cb.trainable.rows);
  const table = await cb.trainable.load();
  ids.forEach((id, i) => rows.set(rowsF32(table, id, 1), i * d));
  const trainable: Matrix = { rows: ids.length, cols: d, data: rows };
  if (cb.projector && projector) throw new UserError(`both the codebook and ${projector.file} hold a projector: keep one`);
  if (cb.projector) return checkConditioning(models, "the codebook's projector", matmul(trainable, cb.projector));
  if (!projector) return checkConditioning(models, "the codebook's trainable rows (no projector)", trainable);
  const dims = projector.input.shape.length === 3 ? [1, ids.length, d] : [ids.length, d];
  const inWidth = fixed(projector.input.shape[projector.input.shape.length - 1]);
  if (inWidth !== null && inWidth !== d) throw new UserError(`${projector.file} takes rows of ${inWidth} values but the codebook's trainable rows have ${d}`);
  const out = (await projector.session.run({ [projector.input.name]: floatTensor(projector.input.type, rows, dims) }, [projector.output], `the projection of ${ids.length} token rows`))[projector.output]!;
  const width = out.dims[out.dims.length - 1]!;
  return checkConditioning(models, projector.file, { rows: ids.length, cols: width, data: floats(out).slice(0, ids.length * width) });
}

export async function openDiffusionDecoder(folder: string, opts: { device: BackendName; onWarning?: (m: string) => void }): Promise<DiffusionDecoder> {
  const files = await readDiffusionFolder(folder);
  const sessions: ModelSession[] = [];
  const open = async (file: string) => {
    const s = await openModelSession(file, file, opts);
    sessions.push(s);
    return s;
  };
  try {
    const models = await openModels(files, open);
    const unconditional = files.unconditional ? await readUnconditional(files.unconditional) : null;
    const device = () => [...new Set(sessions.map((s) => s.device))].join(' + ');
    return {
      folder,
      get device() {
        return device();
      },
      latentChannels: models.channels,
      defaultLatentSize: models.defaultLatentSize,
      contextTokens: models.contextTokens,
      contextWidth: models.contextWidth,
      hasProjector: models.projector !== null,
      conditionOn: (cb, ids) => conditionOn(models, cb, ids),
      generate: (req, control = {}) => denoise({ files, models, unconditional, device }, req, control),
      async dispose() {
        await Promise.all(sessions.map((s) => s.release()));
      },
    };
  } catch (err) {
    await Promise.all(sessions.map((s) => s.release().catch(() => undefined)));
    throw err;
  }
}

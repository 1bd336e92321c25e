// The trained half of the cascade: the training run that made the AR model also trained the
// trainable codebook T [K, d'] (and maybe a projector [d', c]) and saved them in a PyTorch
// safetensors checkpoint under its own names ('model.vq.trainable.weight'). They replace the
// codebook's trainable half (and projector); frozen is never touched, so the fingerprint (of frozen)
// stays and every token set, prior and AR sidecar made with the codebook stays valid.
import type { Matrix } from '../../../native-gpu/backend.js';
import { isHalf } from '../../../native-gpu/tables.js';
import { bf16ToF32, f16ToF32 } from '../../../common/half.js';
import { UserError } from '../../../common/errors.js';
import { MAX_EMBEDDING_DIM } from '../core/limits.js';
import { readSafetensorsIndex, readTensors, type SafetensorsIndex, type Tensor, type TensorInfo } from '../io/formats/safetensors.js';
import { checkFinite, inMemory, type Codebook } from './codebook.js';

export interface TrainableImport {
  /** the checkpoint (.safetensors) */
  from: string;
  /** the trainable codebook's tensor name, as the checkpoint spells it */
  tensor: string;
  /** the projector's tensor name, [d', c] */
  projector?: string;
}

export interface ImportedTrainable {
  trainable: Matrix;
  projector: Matrix | null;
  /** each tensor's dtype in the checkpoint */
  dtypes: { trainable: string; projector?: string };
}

const FLOAT_DTYPES = ['F32', 'F16', 'BF16'];
/** Names listed when a tensor is missing (checkpoints hold hundreds). */
const LISTED_NAMES = 30;
/** The largest finite f16: values beyond it cannot be stored in an f16 codebook. */
const F16_MAX = 65504;

function missing(index: SafetensorsIndex, name: string, role: string): never {
  const names = [...index.tensors.keys()];
  const listed = names.slice(0, LISTED_NAMES).join(', ') + (names.length > LISTED_NAMES ? `, … (${names.length} in all)` : '');
  throw new UserError(`${index.file}: no tensor '${name}' (the ${role}); it holds ${names.length ? listed : 'no tensors'}`);
}

/** A 2-D float tensor of the checkpoint, by name, its shape checked. */
function tableInfo(index: SafetensorsIndex, name: string, role: string): TensorInfo {
  const info = index.tensors.get(name) ?? missing(index, name, role);
  const at = `${index.file}: tensor '${name}' (the ${role})`;
  if (!FLOAT_DTYPES.includes(info.dtype)) throw new UserError(`${at} has dtype ${info.dtype}; expected ${FLOAT_DTYPES.join(', ')}`);
  if (info.shape.length !== 2) throw new UserError(`${at} must be 2-D, found shape [${info.shape.join(', ')}]`);
  const [rows, cols] = info.shape as [number, number];
  if (rows < 1 || cols < 1 || cols > MAX_EMBEDDING_DIM) throw new UserError(`${at} is [${rows}, ${cols}]: rows of 1 to ${MAX_EMBEDDING_DIM} values expected`);
  return info;
}

function asF32(file: string, name: string, t: Tensor): Matrix {
  const [rows, cols] = t.shape as [number, number];
  const data = t.dtype === 'F32' ? (t.data as Float32Array) : t.dtype === 'BF16' ? bf16ToF32(t.data as Uint16Array) : f16ToF32(t.data as Uint16Array);
  const table = { rows, cols, data };
  checkFinite(file, name, table);
  return table;
}

/** Reads the trainable codebook (and projector) of a checkpoint for a codebook of `k` codes:
 *  K rows, a projector taking the trainable's rows, every value finite. Reads only those tensors. */
export async function readTrainableCheckpoint(opts: TrainableImport, k: number): Promise<ImportedTrainable> {
  const index = await readSafetensorsIndex(opts.from);
  const t = tableInfo(index, opts.tensor, 'trainable codebook');
  const [rows, width] = t.shape as [number, number];
  if (rows !== k) throw new UserError(`${opts.from}: tensor '${opts.tensor}' has ${rows} rows but the codebook has K = ${k} codes`);
  const p = opts.projector === undefined ? null : tableInfo(index, opts.projector, 'projector');
  if (p && p.shape[0] !== width) {
    throw new UserError(`${opts.from}: projector '${opts.projector}' is [${p.shape.join(', ')}] but the trainable rows have ${width} values (expected [${width}, c]; a PyTorch nn.Linear's weight is [c, ${width}]: save its transpose)`);
  }
  const names = p ? [opts.tensor, opts.projector!] : [opts.tensor];
  const read = await readTensors(index, names);
  return {
    trainable: asF32(opts.from, opts.tensor, read[opts.tensor]!),
    projector: p ? asF32(opts.from, opts.projector!, read[opts.projector!]!) : null,
    dtypes: { trainable: t.dtype, ...(p && { projector: p.dtype }) },
  };
}

function checkFitsF16(file: string, name: string, table: Matrix): void {
  const i = table.data.findIndex((x) => Math.abs(x) > F16_MAX);
  if (i >= 0) throw new UserError(`${file}: tensor '${name}' row ${Math.floor(i / table.cols)} holds ${table.data[i]}, beyond the f16 range of this f16 codebook (±${F16_MAX})`);
}

/** The codebook with the imported trainable half (and projector): frozen, counts and the coarse
 *  level as they were, atlas 'trained'. A projector kept from the codebook must take the new rows. */
export function withTrainable(cb: Codebook, imported: ImportedTrainable, opts: TrainableImport): Omit<Codebook, 'fingerprint'> {
  const { trainable } = imported;
  const projector = imported.projector ?? cb.projector;
  if (projector && projector.rows !== trainable.cols) {
    throw new UserError(`the codebook's projector takes rows of ${projector.rows} values but '${opts.tensor}' has ${trainable.cols}`, { cli: "name the checkpoint's projector with --projector", vscode: "import the checkpoint's projector too" });
  }
  // an f16 codebook stores the imported tables as f16 too
  if (isHalf(cb.frozen)) {
    checkFitsF16(opts.from, opts.tensor, trainable);
    if (imported.projector) checkFitsF16(opts.from, opts.projector!, imported.projector);
  }
  const { fingerprint: _frozen, ...rest } = cb;
  return { ...rest, trainable: inMemory(trainable), projector, meta: { ...cb.meta, atlas: 'trained' } };
}

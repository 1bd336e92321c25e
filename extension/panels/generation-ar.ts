// The Generation panel's autoregressive priors, apart from VS Code so that tests run them: a model
// folder read and described for the prior list, its ONNX session opened once on the current device
// (again after a device change), and a run that samples a grid or redraws an edit's masked cells,
// reporting each token as it is drawn and stopping between tokens when cancelled.
import * as path from 'node:path';
import {
  UserError, checkArMatchesCodebook, inpaintArGrid, openArModel, readArFolder, sampleArGrid, type ArFolder, type ArModel, type BackendName, type SampleOptions,
} from '../engine/index.js';
import type { PriorInfo } from '../../common/protocol/generation.js';

const AR_PRIOR_PREFIX = 'ar:';

/** The panel's description of an AR prior folder. */
export function arPriorInfo(f: ArFolder): PriorInfo {
  const s = f.sidecar;
  const c = s.condition;
  const conditioning = c.type === 'class' ? `${c.numClasses.toLocaleString('en-US')} classes` : 'unconditional';
  return {
    id: `${AR_PRIOR_PREFIX}${f.folder}`,
    label: `${path.basename(f.folder)} · autoregressive, ${conditioning}`,
    k: s.numImageTokens,
    grid: s.grid,
    kind: 'ar',
    ...(c.type === 'class' ? { classes: { count: c.numClasses, names: s.classNames ?? [] } } : {}),
  };
}

/** What one AR run takes besides the model. */
export interface ArRun {
  grid: [number, number];
  /** an edit: the source's ids and the cells to redraw (null: a new grid) */
  edit: { ids: ArrayLike<number>; mask: Uint8Array } | null;
  sampling: SampleOptions;
  classId: number | null;
  guidance: number;
  signal: AbortSignal;
  /** before the first token: the ids so far and the cells to be drawn, in raster order */
  onStart?: (ids: Int32Array, cells: number[]) => void;
  /** each drawn cell, the `done`th of `total` */
  onToken?: (cell: number, code: number, done: number, total: number) => void;
}

/** Samples (or redraws the masked cells of) a grid with `model` (checked against the codebook
 *  before: ArPriors.check). */
export async function drawArGrid(model: ArModel, run: ArRun): Promise<Int32Array> {
  const cells = run.grid[0] * run.grid[1];
  const mask = run.edit?.mask ?? new Uint8Array(cells).fill(1);
  const order = Array.from(mask.keys()).filter((i) => mask[i]);
  run.onStart?.(run.edit ? Int32Array.from(run.edit.ids) : new Int32Array(cells), order);
  let done = 0;
  const opts = {
    ...run.sampling,
    classId: run.classId,
    guidance: run.guidance,
    signal: run.signal,
    onToken: (cell: number, code: number) => run.onToken?.(cell, code, ++done, order.length),
  };
  return run.edit ? inpaintArGrid(model, run.edit.ids, run.grid, mask, opts) : sampleArGrid(model, run.grid, opts);
}

/** The AR prior folders a panel has opened, each model's session opened once per device. */
export class ArPriors {
  private readonly folders = new Map<string, ArFolder>();
  private readonly models = new Map<string, Promise<ArModel>>();

  constructor(
    private readonly device: () => Promise<BackendName>,
    private readonly warn: (message: string) => void,
  ) {}

  /** Reads a folder (again, when it was opened before) and opens its model, so that a wrong layout
   *  is refused when the folder is chosen, not when it first runs: its prior-list entry. */
  async add(folder: string): Promise<PriorInfo> {
    const f = await readArFolder(folder);
    this.forget(folder); // a folder read again may hold another model
    this.folders.set(folder, f);
    try {
      await this.model(folder);
    } catch (err) {
      this.folders.delete(folder);
      throw err;
    }
    return arPriorInfo(f);
  }

  /** Throws unless the folder's image tokens are this codebook's codes (its K, its fingerprint). */
  check(folder: string, codebook: { k: number; fingerprint: string; name: string }): void {
    const f = this.folders.get(folder);
    if (!f) throw new UserError(`the autoregressive prior ${folder} is not open: open its folder again`);
    checkArMatchesCodebook(f, codebook, codebook.name);
  }

  /** The folder's model, opened on the current device the first time it is asked for. */
  model(folder: string): Promise<ArModel> {
    let model = this.models.get(folder);
    if (!model) {
      const f = this.folders.get(folder);
      if (!f) return Promise.reject(new UserError(`the autoregressive prior ${folder} is not open: open its folder again`));
      model = this.device().then((device) => openArModel(f, { device, onWarning: this.warn }));
      this.models.set(folder, model);
      model.catch(() => this.models.delete(folder));
    }
    return model;
  }

  /** Releases every open session (the device changed, or the panel closed); folders stay listed. */
  close(): void {
    for (const folder of [...this.models.keys()]) this.forget(folder);
  }

  private forget(folder: string): void {
    const open = this.models.get(folder);
    this.models.delete(folder);
    void open?.then((m) => m.session.release()).catch(() => undefined);
  }
}

// Sampling token grids from an AR prior (session.ts): raster order, restricted to the image tokens,
// classifier-free guidance as one batch of two rows (class prefix, null prefix) mixed as
// uncond + G * (cond - uncond), then temperature, top-k and top-p; and the held-out perplexity.
import { UserError, throwIfCancelled } from '../../../../common/errors.js';
import { checkGridSize } from '../../core/limits.js';
import { seededRandom } from '../../core/sampling.js';
import { sampleOptions, type SampleOptions } from '../prior/sample.js';
import { promptRows, type ArSidecar } from './folder.js';
import { ArRunner, checkSequenceLength, type ArModel, type StepLogits } from './session.js';

export interface ArSampleOptions extends SampleOptions {
  /** class index (null or absent: the null token, i.e. unconditional) */
  classId?: number | null;
  /** classifier-free guidance scale G (1 = the class row alone, no second row) */
  guidance?: number;
  /** each drawn cell as it is drawn (raster order) */
  onToken?: (cell: number, code: number) => void;
  /** checked between tokens */
  signal?: AbortSignal;
}

type Filters = Required<Omit<SampleOptions, 'seed'>>;

/** Known tokens fed at once with a cache (bounds the logits one run returns). */
const FEED_CHUNK = 256;

/** The image-token logits of one row at one returned position, checked to be finite. */
function imageLogits(l: StepLogits, row: number, pos: number, model: ArModel, step: string): Float32Array {
  const s = model.folder.sidecar;
  if (l.vocab < s.imageTokenOffset + s.numImageTokens) {
    throw new UserError(`${model.folder.model}: 'logits' has ${l.vocab} entries, fewer than the image tokens ${s.imageTokenOffset}..${s.imageTokenOffset + s.numImageTokens - 1}`);
  }
  const from = (row * l.n + pos) * l.vocab + s.imageTokenOffset;
  const out = l.data.subarray(from, from + s.numImageTokens);
  for (let i = 0; i < out.length; i++) {
    if (!Number.isFinite(out[i]!)) throw new UserError(`${model.folder.model}: the logits at ${step} hold ${out[i]} (image token ${i}); the model's output is not finite`);
  }
  return out;
}

/** The logits one cell is drawn from: the single row's, or the guided mix of the two rows'. */
function cellLogits(l: StepLogits, model: ArModel, guidance: number, cell: number): Float32Array {
  const step = `cell ${cell}`;
  const cond = imageLogits(l, 0, l.n - 1, model, step);
  if (l.rows === 1) return cond;
  const uncond = imageLogits(l, 1, l.n - 1, model, step);
  return cond.map((c, i) => uncond[i]! + guidance * (c - uncond[i]!));
}

/** One code from logits: greedy for top-k 1, else temperature, top-k, top-p, then a draw. */
export function pickCode(logits: Float32Array, o: Filters, random: () => number): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  if (o.topK === 1) return best;
  const top = logits[best]!;
  const truncated = (o.topK > 0 && o.topK < logits.length) || o.topP < 1;
  let order: number[] | Int32Array = Int32Array.from({ length: logits.length }, (_, i) => i);
  if (truncated) {
    order = Array.from(order).sort((a, b) => logits[b]! - logits[a]! || a - b);
    if (o.topK > 0) order = order.slice(0, o.topK);
  }
  const weights = Float64Array.from(order, (i) => Math.exp((logits[i]! - top) / o.temperature));
  let count = weights.length;
  let total = weights.reduce((s, v) => s + v, 0);
  if (o.topP < 1) {
    // the smallest head of the sorted codes whose probability reaches p
    let cumulative = 0;
    for (count = 0; count < weights.length && cumulative < o.topP * total - 1e-12 * total; count++) cumulative += weights[count]!;
    total = cumulative;
  }
  let u = random() * total;
  for (let j = 0; j < count; j++) {
    if (u < weights[j]!) return order[j]!;
    u -= weights[j]!;
  }
  return order[count - 1]!;
}

function guidanceOf(opts: ArSampleOptions): number {
  const g = opts.guidance ?? 1;
  if (!Number.isFinite(g) || g < 0 || g > 100) throw new UserError(`prior guidance must be a number in 0..100 (1 = none), got ${g}`);
  return g;
}

/** Draws the masked cells in raster order, each given the prompt and every cell before it; cells
 *  after the last masked one are never fed. */
async function drawCells(model: ArModel, ids: Int32Array, mask: Uint8Array, opts: ArSampleOptions): Promise<Int32Array> {
  const filters = sampleOptions(opts);
  const guidance = guidanceOf(opts);
  const s: ArSidecar = model.folder.sidecar;
  const rows = promptRows(s, opts.classId ?? null, guidance !== 1);
  const random = seededRandom(opts.seed);
  const first = mask.indexOf(1);
  const last = mask.lastIndexOf(1);
  if (first < 0) return ids;
  checkSequenceLength(model, rows[0]!.length + last);
  const token = (i: number) => s.imageTokenOffset + ids[i]!;
  // the prompt and the cells before the first masked one, in chunks with a cache (each run's
  // logits are [rows, chunk, vocab]), at once without
  const known = Array.from({ length: first }, (_, i) => token(i));
  const runner = new ArRunner(model, rows.length);
  const fed = rows.map((r) => [...r, ...known]);
  const chunk = model.layout.cache ? FEED_CHUNK : fed[0]!.length;
  let logits = await runner.step(fed.map((f) => f.slice(0, chunk)));
  for (let a = chunk; a < fed[0]!.length; a += chunk) logits = await runner.step(fed.map((f) => f.slice(a, a + chunk)));
  for (let i = first; i <= last; i++) {
    throwIfCancelled(opts.signal);
    if (mask[i]) {
      ids[i] = pickCode(cellLogits(logits, model, guidance, i), filters, random);
      opts.onToken?.(i, ids[i]!);
    }
    if (i < last) logits = await runner.step(rows.map(() => [token(i)]));
  }
  return ids;
}

/** A new grid drawn token by token in raster order. */
export async function sampleArGrid(model: ArModel, grid: [number, number], opts: ArSampleOptions): Promise<Int32Array> {
  checkGridSize(grid, 'sampled grid');
  const cells = grid[0] * grid[1];
  return drawCells(model, new Int32Array(cells), new Uint8Array(cells).fill(1), opts);
}

function checkCodes(model: ArModel, ids: ArrayLike<number>): void {
  const k = model.folder.sidecar.numImageTokens;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= k) throw new UserError(`token id ${id} is outside the model's image tokens 0..${k - 1}`);
  }
}

/** Inpainting: the masked cells redrawn in raster order given the prompt and every cell before
 *  each (causal: cells after a masked cell do not inform it). Unmasked cells are kept. */
export async function inpaintArGrid(model: ArModel, ids: ArrayLike<number>, grid: [number, number], mask: Uint8Array, opts: ArSampleOptions): Promise<Int32Array> {
  checkGridSize(grid, 'token grid');
  if (ids.length !== grid[0] * grid[1] || mask.length !== ids.length) {
    throw new UserError(`a ${grid[0]}x${grid[1]} grid needs ${grid[0] * grid[1]} ids and mask cells, got ${ids.length} and ${mask.length}`);
  }
  checkCodes(model, ids);
  return drawCells(model, Int32Array.from(ids), mask, opts);
}

export interface ArScore {
  tokens: number;
  /** mean negative log-likelihood per token (nats), over the image tokens only */
  nll: number;
  perplexity: number;
}

/** Held-out likelihood of token grids under the model, unconditional (the null class prefix), with
 *  the softmax taken over the image tokens (the distribution sampling draws from). */
export async function scoreArGrids(model: ArModel, grids: { ids: ArrayLike<number> }[], signal?: AbortSignal): Promise<ArScore> {
  const s = model.folder.sidecar;
  const prompt = promptRows(s, null, false)[0]!;
  let nll = 0;
  let tokens = 0;
  for (const g of grids) {
    checkCodes(model, g.ids);
    if (g.ids.length === 0) continue;
    // position prompt.length - 1 + j predicts cell j; the last cell is never fed
    const seq = [...prompt, ...Array.from(g.ids, (id) => s.imageTokenOffset + id).slice(0, -1)];
    checkSequenceLength(model, seq.length);
    const runner = new ArRunner(model, 1);
    const chunk = model.layout.cache ? FEED_CHUNK : seq.length;
    for (let a = 0; a < seq.length; a += chunk) {
      throwIfCancelled(signal);
      const l = await runner.step([seq.slice(a, a + chunk)]);
      for (let p = Math.max(a, prompt.length - 1); p < a + l.n; p++) {
        const cell = p - prompt.length + 1;
        const row = imageLogits(l, 0, p - a, model, `cell ${cell}`);
        const max = row.reduce((m, v) => Math.max(m, v), -Infinity);
        const sum = row.reduce((t, v) => t + Math.exp(v - max), 0);
        nll -= row[g.ids[cell]!]! - max - Math.log(sum);
        tokens++;
      }
    }
  }
  if (tokens === 0) throw new UserError('no tokens to score');
  return { tokens, nll: nll / tokens, perplexity: Math.exp(nll / tokens) };
}

// Shared by both backends: the winners' squared distances recomputed directly from the vectors,
// and the check that query vectors are finite.
// The search itself ranks by ||c||^2 - 2 q.c; adding ||q||^2 back cancels badly in f32 when a
// query sits close to its code, and inertia and the token grid's per-cell distances are read
// from these. O(Q*d): cheap next to the O(Q*K*d) search.
import type { Matrix } from './backend.js';
import { UserError } from '../common/errors.js';

/** `codeRow(id)` returns code `id` as a d-long Float32Array (a view or a decoded copy). */
export function exactDistances(queries: Matrix, ids: Int32Array, codeRow: (id: number) => Float32Array): Float32Array {
  const d = queries.cols, q = queries.data;
  const out = new Float32Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const c = codeRow(ids[i]);
    let s = 0;
    for (let j = 0, qo = i * d; j < d; j++) {
      const diff = q[qo + j] - c[j];
      s += diff * diff;
    }
    out[i] = s;
  }
  return out;
}

/** NaN or an infinity in a query makes every distance meaningless: rows [from, to) must be finite. */
export function checkFinite(queries: Matrix, from: number, to: number): void {
  const x = queries.data, d = queries.cols;
  for (let i = from * d; i < to * d; i++) {
    if (!Number.isFinite(x[i])) {
      throw new UserError(`the vectors have a non-finite value (${x[i]}) at row ${Math.floor(i / d)}, column ${i % d}; expected finite numbers`);
    }
  }
}

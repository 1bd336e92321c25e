// The one range check for token ids, used wherever ids index a codebook (histograms, mosaics,
// the atlas decoder): an id outside [0, k) is bad input, never an out-of-bounds read.
import { UserError } from '../common/errors.js';

export function checkTokenIds(ids: ArrayLike<number>, k: number, source?: string): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!(id >= 0 && id < k)) {
      throw new UserError(`${source ? `${source}: ` : ''}token id ${id} at position ${i} is outside the codebook (ids run from 0 to ${k - 1})`);
    }
  }
}

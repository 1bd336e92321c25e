// "UniCode²: Show Active Codebook": the active codebook in its editor (the walkthrough's "open the
// codebook" step).
import type { Studio } from '../state/studio.js';
import { showCodebook } from '../panels/codebook-panel.js';
import { activeCodebookOrOffer } from './prompts.js';

export const id = 'unicode2.showActiveCodebook';

export async function prompt(studio: Studio): Promise<void> {
  const file = await activeCodebookOrOffer(studio);
  if (file) await showCodebook(file);
}

// "UniCode²: Open Codebook…": a codebook file becomes the active one and opens in its editor.
import type { Studio } from '../state/studio.js';
import { showCodebook } from '../panels/codebook-panel.js';
import { pick } from './prompts.js';

export const id = 'unicode2.openCodebook';

export async function prompt(studio: Studio, file?: string): Promise<void> {
  file ??= await pick('codebook', 'Open a UniCode² codebook');
  if (!file) return;
  await studio.codebook(file); // a bad file fails here, before it becomes the active one
  studio.setActiveCodebook(file);
  await showCodebook(file);
}

// "UniCode²: Open Generation Panel": generation runs in its panel, whose settings are the panel's;
// a Lab re-run hands the cell to the panel, which replays it there.
import type { LabCell } from '../../common/protocol/lab.js';
import type { Studio } from '../state/studio.js';
import { GenerationPanel } from '../panels/generation-panel.js';

export const id = 'unicode2.openGeneration';

export async function prompt(studio: Studio): Promise<void> {
  GenerationPanel.show(studio);
}

export function rerun(studio: Studio, cell: LabCell): Promise<void> {
  return GenerationPanel.rerun(studio, cell);
}

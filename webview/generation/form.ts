// The form's values: the settings a run takes, read from the fields (a field that does not read as
// a number keeps the value it had) and written back into them when the panel is restored.
import type { GenerationSettings } from '../../common/protocol/generation.js';
import { byId, h } from '../common/dom.js';

export type Field = HTMLElement & { value: string };

export const fieldValue = (id: string): string => byId<Field>(id).value;

export function setField(id: string, value: string | number): void {
  byId<Field>(id).value = String(value);
}

function numberOf(id: string, fallback: number): number {
  const v = Number(fieldValue(id));
  return Number.isFinite(v) ? v : fallback;
}

/** The settings in the form, `d` where a field holds nothing usable. */
export function readSettings(d: GenerationSettings): GenerationSettings {
  return {
    decoder: fieldValue('decoder') || d.decoder,
    scheduler: fieldValue('scheduler') === 'euler' ? 'euler' : 'ddim',
    steps: Math.max(1, Math.round(numberOf('steps', d.steps))),
    guidance: numberOf('guidance', d.guidance),
    temperature: numberOf('temperature', d.temperature),
    topK: Math.max(0, Math.round(numberOf('top-k', d.topK))),
    topP: numberOf('top-p', d.topP),
    seed: Math.max(0, Math.round(numberOf('seed-value', d.seed))),
    variations: numberOf('variations-share', 100 * d.variations) / 100,
    upscale: Number(fieldValue('upscale')) || d.upscale,
    // '' (the null class) or a class number; an n-gram prior leaves the list empty
    classId: fieldValue('class') === '' ? null : Math.max(0, Math.round(numberOf('class', 0))),
    priorGuidance: numberOf('prior-guidance', d.priorGuidance),
  };
}

/** The size a sampled grid gets, or null while rows or columns is not a positive number. */
export function readGrid(): [number, number] | null {
  const rows = Math.round(numberOf('rows', 0));
  const cols = Math.round(numberOf('cols', 0));
  return rows > 0 && cols > 0 ? [rows, cols] : null;
}

export function fillGrid([rows, cols]: readonly [number, number]): void {
  setField('rows', rows);
  setField('cols', cols);
}

export function fillForm(s: GenerationSettings, grid: [number, number] | null): void {
  setField('scheduler', s.scheduler);
  setField('steps', s.steps);
  setField('guidance', s.guidance);
  setField('temperature', s.temperature);
  setField('top-k', s.topK);
  setField('top-p', s.topP);
  setField('seed-value', s.seed);
  setField('variations-share', Math.round(100 * s.variations));
  setField('upscale', s.upscale);
  setField('prior-guidance', s.priorGuidance);
  if (grid) fillGrid(grid);
}

/** Fills a select with `items`, choosing `selected` while it is among them and enabled (else the
 *  first enabled one); returns the choice. A disabled item is listed with why it is. */
export function fillOptions<T extends { id: string; label: string; disabled?: string }>(id: string, items: T[], selected: string | null, describe: (t: T) => string): string | null {
  const select = byId<Field>(id);
  const usable = items.filter((t) => t.disabled === undefined);
  const chosen = usable.some((t) => t.id === selected) ? selected : (usable[0]?.id ?? null);
  select.replaceChildren(...items.map((t) => h('vscode-option', {
    value: t.id, selected: t.id === chosen, disabled: t.disabled !== undefined, description: t.disabled ?? describe(t),
  }, t.disabled ? `${t.label} (${t.disabled})` : t.label)));
  if (chosen) select.value = chosen;
  return chosen;
}

// Fitting an n-gram prior for the Generation panel: the user picks the token sets it learns from
// (this session's sets of the codebook; held-out ones unticked), and the fit is a Lab cell that
// names them, so a re-run fits the same files again and the prior's lineage is on record.
import * as vscode from 'vscode';
import * as path from 'node:path';
import { checkTokensMatchCodebook, fitPrior, readTokenGrids, writePrior, UserError } from '../engine/index.js';
import type { LabCell } from '../../common/protocol/lab.js';
import type { Studio, TokenSet } from '../state/studio.js';
import { workspaceDataDir } from '../state/config.js';
import { codebookName, isHeldOut, madeFile } from '../state/codebook-names.js';

/** The token sets to fit on, asked in a multi-select quick pick of this session's sets made with
 *  the codebook, held-out sets unticked; undefined when dismissed. */
export async function pickFitSets(studio: Studio, codebook: string): Promise<TokenSet[] | undefined> {
  const cb = await studio.codebook(codebook);
  const sets = studio.allTokenSets().filter((s) => !studio.otherCodebookOf(s.grids, cb));
  if (sets.length === 0) throw new UserError(`no token sets of ${codebookName(codebook)} in this session: tokenize images or open a tokens file first`);
  const items = sets.map((set) => {
    const held = isHeldOut(set);
    const grids = `${set.grids.length.toLocaleString('en-US')} grid${set.grids.length === 1 ? '' : 's'}`;
    return { label: set.label, description: held ? `${grids} · held out` : grids, detail: set.file, picked: !held, set };
  });
  const picked = await vscode.window.showQuickPick(items, {
    canPickMany: true,
    title: `Fit a prior for ${codebookName(codebook)} on…`,
    placeHolder: 'held-out sets (test, val, held-out in their names) stay out unless ticked',
  });
  if (!picked) return undefined;
  if (picked.length === 0) throw new UserError('no token set was ticked: the prior needs at least one to learn from');
  return picked.map((p) => p.set);
}

/** Fits a prior of `order` on `sets` as a Lab cell, saved as `.unicode2/priors/prior-order<o>[-n].<codebook>.safetensors`
 *  (never over an earlier fit, which generations may name); the file, or undefined when it failed (reported). */
export async function fitOnSets(studio: Studio, codebook: string, sets: TokenSet[], order: number): Promise<string | undefined> {
  const dir = workspaceDataDir();
  if (!dir) throw new UserError('open a folder first: the fitted prior is saved in <workspace>/.unicode2/');
  const grids = sets.flatMap((s) => s.grids);
  const files = sets.flatMap((s) => (s.file ? [s.file] : []));
  const inputs: Record<string, string> = { codebook, ...Object.fromEntries(files.map((f, i) => [i ? `tokens ${i + 1}` : 'tokens', f])) };
  const memoryOnly = sets.filter((s) => !s.file).map((s) => s.label);
  const result = await studio.jobs.run(
    {
      kind: 'fit',
      title: `Fit prior on ${sets.length === 1 ? sets[0]!.label : `${sets.length} token sets`}`,
      inputs,
      params: { order, ...(memoryOnly.length ? { unsaved: memoryOnly.join(', ') } : {}) },
    },
    async () => {
      const cb = await studio.codebook(codebook);
      checkTokensMatchCodebook(cb, grids, 'the token sets');
      const prior = fitPrior(grids, cb.frozen.rows, order, cb.fingerprint);
      const file = madeFile(path.join(dir, 'priors'), `prior-order${prior.order}`, codebook, '.safetensors', true);
      await writePrior(file, prior);
      return { metrics: { grids: grids.length, tokens: prior.tokens }, files: [file] };
    },
  );
  return result?.files?.[0];
}

/** A fit cell's token sets read again from their files (a set that was never saved cannot be). */
export async function recordedFitSets(studio: Studio, cell: LabCell): Promise<TokenSet[]> {
  if (cell.params.unsaved) throw new UserError(`this fit used token sets that were never saved to a file (${cell.params.unsaved}): fit again from the Generation panel`);
  const files = Object.entries(cell.inputs).filter(([k]) => k === 'tokens' || k.startsWith('tokens ')).map(([, f]) => f);
  if (files.length === 0) throw new UserError('this Lab cell does not record its token sets (it was made by an earlier version); fit again from the Generation panel');
  const sets: TokenSet[] = [];
  for (const file of files) {
    const known = studio.allTokenSets().find((s) => s.file === file);
    sets.push(known ?? studio.addTokenSet(path.basename(file), await readTokenGrids(file), file));
  }
  return sets;
}

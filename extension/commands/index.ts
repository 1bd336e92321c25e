// Registers the palette / Explorer commands (one module each, as cli/commands/ for the CLI) and
// the Lab's actions, which reach a cell's command through LAB.
import * as vscode from 'vscode';
import { readTokenGrids } from '../engine/index.js';
import type { LabKind } from '../../common/protocol/lab.js';
import type { Studio } from '../state/studio.js';
import { showError } from '../state/errors.js';
import type { LabActions } from '../panels/lab-view.js';
import { showCodebook, type TokenizeFolderWith } from '../panels/codebook-panel.js';
import { encoderSpec, searchSettings } from './prompts.js';
import { TokenGridPanel } from '../panels/token-grid-panel.js';
import { GenerationPanel } from '../panels/generation-panel.js';
import type { LabCommand, StudioCommand } from './command.js';
import * as buildCodebook from './build-codebook.js';
import * as openCodebook from './open-codebook.js';
import * as showActiveCodebook from './show-active-codebook.js';
import * as chooseCodebook from './choose-codebook.js';
import * as tokenizeImage from './tokenize-image.js';
import * as tokenizeFolder from './tokenize-folder.js';
import { reattach as reattachTokenize } from './tokenize-shards.js';
import * as decodeTokens from './decode-tokens.js';
import * as refineCodebook from './refine-codebook.js';
import * as selectDevice from './select-device.js';
import * as runDemo from './run-demo.js';
import * as generate from './generate.js';

const COMMANDS: StudioCommand[] = [
  buildCodebook, openCodebook, showActiveCodebook, chooseCodebook, tokenizeImage, tokenizeFolder, decodeTokens, refineCodebook, selectDevice, runDemo, generate,
];

/** The command of each kind of Lab cell: its new run and its re-run. */
const LAB: Record<LabKind, LabCommand> = {
  build: buildCodebook,
  // one kind, two commands: a cell names the image or the folder it tokenized; a new run asks for an image
  tokenize: { prompt: tokenizeImage.prompt, rerun: (studio, cell) => (cell.inputs.image !== undefined ? tokenizeImage : tokenizeFolder).rerun(studio, cell), reattach: reattachTokenize },
  decode: decodeTokens,
  refine: refineCodebook,
  demo: runDemo,
  generate,
  fit: { prompt: (studio) => GenerationPanel.fit(studio), rerun: (studio, cell) => GenerationPanel.refit(studio, cell) },
};

/** A command's optional Uri argument (Explorer context menu, or a caller passing one) as a path. */
const fsPath = (arg: unknown): string | undefined => (arg instanceof vscode.Uri ? arg.fsPath : typeof arg === 'string' ? arg : undefined);

/** Reports an error thrown before a job started (e.g. while asking or checking inputs); a job
 *  reports its own. */
async function reportErrors(studio: Studio, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (err) {
    showError(err, studio.log);
  }
}

export function registerCommands(studio: Studio): { disposables: vscode.Disposable[]; lab: LabActions; tokenizeFolderWith: TokenizeFolderWith } {
  const disposables = COMMANDS.map((c) => vscode.commands.registerCommand(c.id, (arg?: unknown) => reportErrors(studio, () => c.prompt(studio, fsPath(arg)))));

  const lab: LabActions = {
    run: (kind) => reportErrors(studio, () => LAB[kind].prompt(studio)),
    rerun: (cell) => reportErrors(studio, () => LAB[cell.kind].rerun(studio, cell)),
    open: async (cell) => {
      const codebook = cell.inputs.codebook ?? cell.files?.find((f) => f.endsWith('.safetensors'));
      const tokensFile = cell.files?.find((f) => f.endsWith('.tokens.json'));
      if (cell.kind === 'tokenize' && cell.inputs.image && codebook && tokensFile) {
        const [grid] = await readTokenGrids(tokensFile);
        if (grid) return TokenGridPanel.show(studio, codebook, grid);
      }
      if (cell.kind === 'decode' || cell.kind === 'generate') return GenerationPanel.showCell(studio, cell);
      if (codebook) {
        await showCodebook(codebook);
        return;
      }
      void vscode.window.showInformationMessage('UniCode²: this run has no output to open');
    },
  };
  reattachSlurmRuns(studio);
  // the Codebook editor's "tokenize the build corpus", with that editor's codebook
  const tokenizeFolderWith: TokenizeFolderWith = async (folder, codebook) => {
    const encoder = await encoderSpec(studio, codebook);
    if (encoder) await tokenizeFolder.run(studio, { folder, codebook, encoder, search: searchSettings(), open: false });
  };
  return { disposables, lab, tokenizeFolderWith };
}

/** A window (re)started while runs it submitted to Slurm go on: their cells follow them again. */
function reattachSlurmRuns(studio: Studio): void {
  for (const cell of studio.lab.all()) {
    if (cell.status !== 'running' || !cell.slurm) continue;
    const reattach = LAB[cell.kind].reattach;
    if (reattach) void reportErrors(studio, () => reattach(studio, cell));
    else studio.lab.update(cell.id, { status: 'cancelled', error: `interrupted: the window was reloaded; its jobs on Slurm are in ${cell.slurm.folder}` });
  }
}

// Registers the palette / Explorer commands and the Lab's actions over one Operations object.
import * as vscode from 'vscode';
import type { Studio } from '../state/studio.js';
import { Operations } from './operations.js';
import type { LabActions } from '../panels/lab-view.js';
import { showCodebook } from '../panels/codebook-panel.js';
import { TokenGridPanel } from '../panels/token-grid-panel.js';
import { GenerationPanel } from '../panels/generation-panel.js';
import { readTokenGrids } from '../engine/index.js';

/** A command's optional Uri argument (Explorer context menu, or a caller passing one) as a path. */
const fsPath = (arg: unknown): string | undefined => (arg instanceof vscode.Uri ? arg.fsPath : typeof arg === 'string' ? arg : undefined);

export function registerCommands(studio: Studio): { disposables: vscode.Disposable[]; lab: LabActions } {
  const ops = new Operations(studio);
  const commands: Record<string, (arg?: unknown) => unknown> = {
    'unicode2.buildCodebook': (arg) => ops.build(fsPath(arg)),
    'unicode2.openCodebook': (arg) => ops.openCodebook(fsPath(arg)),
    'unicode2.showActiveCodebook': () => ops.showActiveCodebook(),
    'unicode2.tokenizeImage': (arg) => ops.tokenizeImage(fsPath(arg)),
    'unicode2.tokenizeFolder': (arg) => ops.tokenizeFolder(fsPath(arg)),
    'unicode2.decodeTokens': (arg) => ops.decode(fsPath(arg)),
    'unicode2.refineCodebook': (arg) => ops.refine(fsPath(arg)),
    'unicode2.selectDevice': () => ops.selectDevice(),
    'unicode2.runDemo': () => ops.demo(),
    'unicode2.openGeneration': () => ops.openGeneration(),
  };
  const disposables = Object.entries(commands).map(([id, run]) => vscode.commands.registerCommand(id, run));

  const lab: LabActions = {
    run: async (kind) => {
      const id = { build: 'buildCodebook', tokenize: 'tokenizeImage', decode: 'decodeTokens', refine: 'refineCodebook', demo: 'runDemo', generate: 'openGeneration' }[kind];
      await vscode.commands.executeCommand(`unicode2.${id}`);
    },
    // a generation re-runs in its panel (its settings are the panel's); every other kind in Operations
    rerun: (cell) => (cell.kind === 'generate' ? GenerationPanel.rerun(studio, cell) : ops.rerun(cell)),
    open: async (cell) => {
      const codebook = cell.inputs.codebook ?? cell.files?.find((f) => f.endsWith('.safetensors'));
      const tokensFile = cell.files?.find((f) => f.endsWith('.tokens.json'));
      if (cell.kind === 'tokenize' && cell.inputs.image && codebook && tokensFile) {
        const [grid] = await readTokenGrids(tokensFile);
        if (grid) return TokenGridPanel.show(studio, codebook, grid);
      }
      if (cell.kind === 'decode' || cell.kind === 'generate') return void GenerationPanel.show(studio);
      if (codebook) {
        await showCodebook(codebook);
        return;
      }
      void vscode.window.showInformationMessage('UniCode²: this run has no output to open');
    },
  };
  return { disposables, lab };
}

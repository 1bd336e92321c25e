// The questions several commands ask: a file or folder, the active codebook (or an offer to get
// one), the encoder to use with a codebook, and today's search settings. Each returns undefined
// when the user dismisses it, and the command then stops without a message.
import * as vscode from 'vscode';
import * as path from 'node:path';
import { checkEncoderMatches, encoderKindOf, ENCODER_KINDS, ENCODER_SPEC_HELP, IMAGE_EXTENSIONS, type Codebook, type SearchOptions } from '../engine/index.js';
import type { Studio } from '../state/studio.js';
import { readSettings } from '../state/config.js';

const FILTERS: Record<'image' | 'tokens' | 'codebook', Record<string, string[]>> = {
  image: { Images: [...IMAGE_EXTENSIONS] },
  tokens: { 'UniCode² tokens': ['json', 'npy'] },
  codebook: { Codebook: ['safetensors'] },
};

export async function pick(kind: 'folder' | 'image' | 'tokens' | 'codebook', title: string): Promise<string | undefined> {
  const picked = await vscode.window.showOpenDialog({
    title, canSelectMany: false, canSelectFiles: kind !== 'folder', canSelectFolders: kind === 'folder',
    filters: kind === 'folder' ? undefined : FILTERS[kind],
    defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
  });
  return picked?.[0]?.fsPath;
}

/** The offers made when there is no active codebook, and the commands they run. */
const NO_CODEBOOK_OFFERS: Record<string, string> = { 'Build Codebook…': 'unicode2.buildCodebook', 'Open Codebook…': 'unicode2.openCodebook' };

/** The active codebook, or undefined after offering to build or open one. */
export async function activeCodebookOrOffer(studio: Studio): Promise<string | undefined> {
  const file = studio.codebookPath();
  if (file) return file;
  const choice = await vscode.window.showWarningMessage(
    'UniCode²: no active codebook. Build one from a folder of images, or open an existing one.',
    ...Object.keys(NO_CODEBOOK_OFFERS),
  );
  // through VS Code, not an import: those commands' modules ask this module their questions
  if (choice) await vscode.commands.executeCommand(NO_CODEBOOK_OFFERS[choice]!);
  return undefined;
}

/**
 * What a run on the active codebook asks, in order: the codebook (or an offer to get one), the
 * file or folder to work on, and, for a run that encodes images, the encoder for that codebook.
 */
export async function askCodebookRun(
  studio: Studio,
  target: () => Promise<string | undefined>,
  { encoder }: { encoder: boolean },
): Promise<{ codebook: string; target: string; encoder?: string } | undefined> {
  const codebook = await activeCodebookOrOffer(studio);
  if (!codebook) return undefined;
  const picked = await target();
  if (!picked) return undefined;
  if (!encoder) return { codebook, target: picked };
  const spec = await encoderSpec(studio, codebook);
  return spec ? { codebook, target: picked, encoder: spec } : undefined;
}

/** The search today's settings ask for. */
export function searchSettings(): Required<SearchOptions> {
  const { search, nprobe } = readSettings();
  return { search, nprobe };
}

/**
 * The encoder spec to use with a codebook: its own, or — for a codebook whose own cannot be
 * reopened here (built from external embeddings, or its model is not on this machine) — the one
 * chosen for it before, or asked for now and remembered for that codebook.
 */
export async function encoderSpec(studio: Studio, codebook: string): Promise<string | undefined> {
  const cb = await studio.codebook(codebook);
  const chosen = studio.encoderChoice(cb);
  if (chosen && isAvailable(chosen)) return chosen;
  const problem = studio.encoderProblem(cb);
  if (!problem) return cb.meta.encoder.id;
  const spec = await askEncoder(cb, codebook, problem);
  if (!spec) return undefined;
  // Remembered only once it opens and fits the codebook.
  checkEncoderMatches(cb, await studio.encoderFor(cb, spec));
  await studio.rememberEncoderChoice(cb, spec);
  studio.log.appendLine(`[encoder] ${codebook}: using ${spec} (${problem})`);
  return spec;
}

/** A remembered encoder spec still usable: one that needs no file, or whose file (or cached model) is here. */
function isAvailable(spec: string): boolean {
  return ENCODER_KINDS[encoderKindOf(spec)].available(spec);
}

/** Asks which encoder goes with a codebook that does not name a usable one. */
async function askEncoder(cb: Codebook, codebook: string, problem: string): Promise<string | undefined> {
  const d = cb.frozen.cols;
  type Item = vscode.QuickPickItem & { spec?: string; ask?: 'folder' | 'onnx' | 'type' };
  const items: Item[] = [
    ...(d === 768 ? [{ label: 'dct', spec: 'dct', description: 'the built-in DCT encoder, 224 × 224 input, d = 768' }] : []),
    { label: '$(folder) Model folder…', ask: 'folder', description: 'an ONNX export with its preprocessor_config.json' },
    { label: '$(file) .onnx file…', ask: 'onnx', description: 'a SigLIP-style vision tower' },
    { label: '$(edit) Type an encoder…', ask: 'type', description: "e.g. 'dct:256', or a Hugging Face id (org/name): from the local cache, else downloaded" },
  ];
  const item = await vscode.window.showQuickPick(items, {
    title: `UniCode²: which encoder goes with ${path.basename(codebook)}?`,
    placeHolder: `${problem}; its vectors have d = ${d}. The choice is remembered for this codebook.`,
    // a panel that finishes loading takes the focus: the question must not vanish with it
    ignoreFocusOut: true,
  });
  if (!item) return undefined;
  if (item.spec) return item.spec;
  if (item.ask === 'type') return vscode.window.showInputBox({ title: 'UniCode²: encoder', prompt: ENCODER_SPEC_HELP, ignoreFocusOut: true });
  const picked = await vscode.window.showOpenDialog({
    title: `The encoder of ${path.basename(codebook)}`, canSelectMany: false,
    canSelectFiles: item.ask === 'onnx', canSelectFolders: item.ask === 'folder',
    filters: item.ask === 'onnx' ? { 'ONNX model': ['onnx'] } : undefined,
  });
  return picked?.[0]?.fsPath;
}

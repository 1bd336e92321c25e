// What the commands and panels of one window share: the output channel, the compute backend,
// the job runner and Lab, the active codebook, and the token data sets tokenized in this session.
import * as vscode from 'vscode';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { readCodebook, openEncoderFromDescriptor, readTokenGrids, UserError, type Codebook, type Encoder, type TokenGrid } from '../engine/index.js';
import { BackendManager } from './backend.js';
import { Jobs } from './jobs.js';
import { configuredCodebook, readSettings } from './config.js';
import { LabStore } from './labStore.js';

export interface TokenSet {
  id: string;
  label: string;
  grids: TokenGrid[];
  /** where it was read from or written to */
  file?: string;
}

export class Studio implements vscode.Disposable {
  readonly log = vscode.window.createOutputChannel('UniCode²');
  readonly backend = new BackendManager(this.log);
  readonly lab: LabStore;
  readonly jobs: Jobs;
  /** set by Build / Open Codebook; otherwise the unicode2.codebook setting decides */
  private activeCodebook: string | null = null;
  private readonly codebooks = new Map<string, { mtimeMs: number; cb: Promise<Codebook> }>();
  private readonly encoders = new Map<string, Promise<Encoder>>();
  private readonly tokenSets: TokenSet[] = [];
  private readonly tokenSetsChanged = new vscode.EventEmitter<TokenSet[]>();
  readonly onDidChangeTokenSets = this.tokenSetsChanged.event;
  /** the grid last sent from a token-grid panel to the generation panel */
  editedGrid: TokenGrid | null = null;

  constructor(readonly context: vscode.ExtensionContext) {
    this.lab = new LabStore(context.workspaceState);
    this.jobs = new Jobs(this.lab, this.log, this.backend);
    this.backend.onDidReset(() => this.disposeEncoders());
  }

  /** Encoders hold resources of the backend they were opened on. */
  private disposeEncoders(): void {
    const open = [...this.encoders.values()];
    this.encoders.clear();
    for (const e of open) void e.then((enc) => enc.dispose()).catch(() => undefined);
  }

  get extensionUri(): vscode.Uri {
    return this.context.extensionUri;
  }

  codebookPath(): string | null {
    return this.activeCodebook ?? configuredCodebook(readSettings());
  }

  setActiveCodebook(file: string): void {
    this.activeCodebook = path.resolve(file);
  }

  /** The active codebook's path, or a UserError that says how to get one. */
  requireCodebookPath(): string {
    const file = this.codebookPath();
    if (!file) throw new UserError('no active codebook: run "UniCode²: Build Codebook from Folder…" or "Open Codebook…" first');
    return file;
  }

  /** Reads a codebook once per file version (a rebuilt file is read again). */
  async codebook(file: string): Promise<Codebook> {
    const stat = await fs.stat(file).catch(() => {
      throw new UserError(`codebook ${file} does not exist`);
    });
    const cached = this.codebooks.get(file);
    if (cached && cached.mtimeMs === stat.mtimeMs) return cached.cb;
    const cb = readCodebook(file);
    this.codebooks.set(file, { mtimeMs: stat.mtimeMs, cb });
    cb.catch(() => this.codebooks.delete(file));
    return cb;
  }

  /** The encoder a codebook was built with, reopened on this window's backend (cached). */
  async encoderFor(cb: Codebook): Promise<Encoder> {
    const key = JSON.stringify(cb.meta.encoder);
    let encoder = this.encoders.get(key);
    if (!encoder) {
      encoder = this.backend.get().then((b) => openEncoderFromDescriptor(cb.meta.encoder, b));
      this.encoders.set(key, encoder);
      encoder.catch(() => this.encoders.delete(key));
    }
    return encoder;
  }

  allTokenSets(): TokenSet[] {
    return this.tokenSets;
  }

  tokenSet(id: string): TokenSet | undefined {
    return this.tokenSets.find((s) => s.id === id);
  }

  addTokenSet(label: string, grids: TokenGrid[], file?: string): TokenSet {
    const set: TokenSet = { id: `tokens:${this.tokenSets.length + 1}`, label, grids, file };
    this.tokenSets.push(set);
    this.tokenSetsChanged.fire(this.tokenSets);
    return set;
  }

  /** Asks for a tokens file (.json or .npy data set) and adds it as a token set; undefined if dismissed. */
  async pickTokensFile(): Promise<TokenSet | undefined> {
    const picked = await vscode.window.showOpenDialog({
      canSelectMany: false,
      openLabel: 'Use tokens',
      filters: { 'UniCode² tokens': ['json', 'npy'] },
    });
    if (!picked?.[0]) return undefined;
    const file = picked[0].fsPath;
    const grids = await readTokenGrids(file);
    return this.addTokenSet(path.basename(file), grids, file);
  }

  async dispose(): Promise<void> {
    this.disposeEncoders();
    this.tokenSetsChanged.dispose();
    this.lab.dispose();
    await this.backend.dispose();
    this.log.dispose();
  }
}

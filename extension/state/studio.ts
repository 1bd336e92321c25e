// What the commands and panels of one window share: the output channel, the compute backend,
// the job runner and Lab, the active codebook, the encoders codebooks are used with, and the token
// data sets tokenized in this session.
import * as vscode from 'vscode';
import * as path from 'node:path';
import { existsSync, promises as fs } from 'node:fs';
import {
  readCodebook, openCodebookEncoder, readTokenGrids, SHARD_MANIFEST, ENCODER_KINDS, EXTERNAL_ENCODER, UserError, type Codebook, type Encoder, type TokenGrid,
} from '../engine/index.js';
import { BackendManager } from './backend.js';
import { Jobs } from './jobs.js';
import { configuredCodebook, encoderSettings, readSettings, workspaceDataDir } from './config.js';
import { LabStore } from './lab-store.js';
import { codebookLabels, codebookName, listCodebookFiles } from './codebook-names.js';
import { TrustGate } from './trust.js';
import { withDownloadNotification } from './downloads.js';

/** workspaceState key: codebook fingerprint -> the encoder the user chose for it */
const ENCODER_CHOICES = 'unicode2.encoderChoices';
/** workspaceState key: the codebook chosen last (Build, Open, the status bar), kept across reloads */
const ACTIVE_CODEBOOK = 'unicode2.activeCodebook';

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
  readonly trust = new TrustGate(this.log);
  private readonly codebooks = new Map<string, { mtimeMs: number; cb: Promise<Codebook> }>();
  /** the file each codebook was read from (for messages about it) */
  private readonly codebookFiles = new WeakMap<Codebook, string>();
  /** fingerprint -> the file last read with it: names the codebook a token set was made with */
  private readonly fingerprintFiles = new Map<string, string>();
  private readonly activeChanged = new vscode.EventEmitter<string | null>();
  /** the active codebook changed (Build, Open, the status bar, the setting) */
  readonly onDidChangeActiveCodebook = this.activeChanged.event;
  /** the active codebook's name; a click chooses another */
  private readonly status = vscode.window.createStatusBarItem('unicode2.codebook', vscode.StatusBarAlignment.Right, 101);
  private readonly encoders = new Map<string, Promise<Encoder>>();
  private readonly tokenSets: TokenSet[] = [];
  private readonly tokenSetsChanged = new vscode.EventEmitter<TokenSet[]>();
  readonly onDidChangeTokenSets = this.tokenSetsChanged.event;

  constructor(readonly context: vscode.ExtensionContext) {
    this.lab = new LabStore(context.workspaceState);
    this.jobs = new Jobs(this.lab, this.log, this.backend);
    this.backend.onDidReset(() => this.disposeEncoders());
    this.status.name = 'UniCode² active codebook';
    this.status.command = 'unicode2.chooseCodebook';
    this.showStatus(this.codebookPath());
    this.status.show();
    this.onDidChangeActiveCodebook((file) => this.showStatus(file));
    // a codebook named in the setting takes over from the one chosen last
    context.subscriptions.push(vscode.workspace.onDidChangeConfiguration((e) => {
      if (!e.affectsConfiguration('unicode2.codebook')) return;
      void context.workspaceState.update(ACTIVE_CODEBOOK, undefined);
      this.activeChanged.fire(this.codebookPath());
    }));
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

  /** The codebook chosen last in this workspace while its file exists, else the setting's (or the legacy default). */
  codebookPath(): string | null {
    const chosen = this.context.workspaceState.get<string>(ACTIVE_CODEBOOK);
    return chosen && existsSync(chosen) ? chosen : configuredCodebook(readSettings());
  }

  setActiveCodebook(file: string): void {
    void this.context.workspaceState.update(ACTIVE_CODEBOOK, path.resolve(file));
    this.activeChanged.fire(path.resolve(file));
  }

  /** The codebooks a name could be confused with: the workspace's, the active one, and those read in this window. */
  async knownCodebooks(): Promise<string[]> {
    const dataDir = workspaceDataDir();
    const active = this.codebookPath();
    return [...new Set([...(dataDir ? await listCodebookFiles(dataDir) : []), ...(active ? [active] : []), ...this.codebooks.keys()])];
  }

  /** Labels for `files` that tell apart codebooks of the same name (codebookLabels), among the known ones. */
  async codebookLabels(files: readonly string[]): Promise<Map<string, string>> {
    return codebookLabels([...files, ...(await this.knownCodebooks())]);
  }

  private showStatus(file: string | null): void {
    this.status.text = `$(database) ${file ? codebookName(file) : 'no codebook'}`;
    // then, where another codebook has the same name, with the folders that tell them apart
    if (file) {
      void this.codebookLabels([file]).then((labels) => {
        if (this.codebookPath() === file) this.status.text = `$(database) ${labels.get(file)}`;
      });
    }
    this.status.tooltip = file ? `UniCode² active codebook: ${file}\nClick to choose another` : 'UniCode²: no active codebook. Click to choose or open one';
  }

  /** The file of a codebook read in this window with that fingerprint, if any. */
  codebookFileOf(fingerprint: string): string | undefined {
    return this.fingerprintFiles.get(fingerprint);
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
    cb.then((read) => {
      this.codebookFiles.set(read, file);
      this.fingerprintFiles.set(read.fingerprint, file);
    }, () => this.codebooks.delete(file));
    return cb;
  }

  /**
   * Why the encoder recorded in a codebook cannot be reopened here, or null when it can: the
   * codebook was built from external embeddings (no encoder recorded), or its ONNX model is not at
   * the recorded path on this machine. Such a codebook needs the user to name its encoder.
   */
  encoderProblem(cb: Codebook): string | null {
    const { kind, id } = cb.meta.encoder;
    if (id === EXTERNAL_ENCODER) return 'it was built from external embeddings';
    if (!ENCODER_KINDS[kind].available(id)) return `its encoder ${id} is not on this machine`;
    return null;
  }

  /** The encoder the user chose for a codebook whose own cannot be reopened (kept with the workspace). */
  encoderChoice(cb: Codebook): string | undefined {
    return this.context.workspaceState.get<Record<string, string>>(ENCODER_CHOICES, {})[cb.fingerprint];
  }

  async rememberEncoderChoice(cb: Codebook, spec: string | undefined): Promise<void> {
    const { [cb.fingerprint]: _old, ...others } = this.context.workspaceState.get<Record<string, string>>(ENCODER_CHOICES, {});
    await this.context.workspaceState.update(ENCODER_CHOICES, spec === undefined ? others : { ...others, [cb.fingerprint]: spec });
  }

  /**
   * The encoder to use with `cb`, opened on this window's backend (cached): `spec` when given (what
   * a Lab cell recorded), else the one the user chose for this codebook, else the codebook's own.
   * A model named inside the codebook loads in Restricted Mode only with the user's consent.
   */
  async encoderFor(cb: Codebook, spec?: string): Promise<Encoder> {
    const chosen = spec ?? this.encoderChoice(cb);
    const own = chosen === undefined || chosen === cb.meta.encoder.id;
    // a model chosen for a codebook that records none opens at the precision and layer settings
    const settings = own ? {} : encoderSettings(chosen!, readSettings());
    const key = own ? JSON.stringify(cb.meta.encoder) : `spec:${chosen}:${JSON.stringify(settings)}`;
    let encoder = this.encoders.get(key);
    if (!encoder) {
      if (own && ENCODER_KINDS[cb.meta.encoder.kind].needsConsent && !this.encoderProblem(cb)) {
        await this.trust.allowCodebookModel(cb.meta.encoder.id, this.codebookFiles.get(cb) ?? 'this codebook');
      }
      // the codebook's own (a UserError that says how to name one when it cannot be reopened), or the chosen one
      const model = own ? cb.meta.encoder.id : chosen!;
      encoder = this.backend.get().then((b) => withDownloadNotification(`UniCode²: downloading ${model}`, (download) => openCodebookEncoder(cb, own ? undefined : chosen, b, download, settings)));
      this.encoders.set(key, encoder);
      encoder.catch(() => this.encoders.delete(key));
    }
    return encoder;
  }

  /** How grids made with another codebook than `cb` are described ("made with codebook k16-onnx"),
   *  or null when they fit it (grids of earlier versions name no codebook: they are not refused here). */
  otherCodebookOf(grids: readonly TokenGrid[], cb: Codebook): string | null {
    const other = grids.find((g) => g.codebook && g.codebook !== cb.fingerprint)?.codebook;
    if (!other) return null;
    const file = this.codebookFileOf(other);
    return `made with ${file ? `codebook ${codebookName(file)}` : `another codebook (fingerprint ${other})`}`;
  }

  allTokenSets(): TokenSet[] {
    return this.tokenSets;
  }

  tokenSet(id: string): TokenSet | undefined {
    return this.tokenSets.find((s) => s.id === id);
  }

  /** A set joins the session; one of a file already held (written again, or read again by a Lab
   *  re-run) takes that set's place under its id, so lists do not offer the same file twice. */
  addTokenSet(label: string, grids: TokenGrid[], file?: string): TokenSet {
    const held = file === undefined ? -1 : this.tokenSets.findIndex((s) => s.file === file);
    const set: TokenSet = { id: held >= 0 ? this.tokenSets[held]!.id : `tokens:${this.tokenSets.length + 1}`, label, grids, file };
    if (held >= 0) this.tokenSets[held] = set;
    else this.tokenSets.push(set);
    this.tokenSetsChanged.fire(this.tokenSets);
    return set;
  }

  /** Asks for a tokens file (.json, .npy data set, or the manifest.json of a sharded tokenize
   *  output, read as one data set) and adds it as a token set; undefined if dismissed. */
  async pickTokensFile(): Promise<TokenSet | undefined> {
    const picked = await vscode.window.showOpenDialog({
      canSelectMany: false,
      openLabel: 'Use tokens',
      filters: { 'UniCode² tokens': ['json', 'npy'] },
    });
    if (!picked?.[0]) return undefined;
    const file = picked[0].fsPath;
    const grids = await readTokenGrids(file);
    const label = path.basename(file) === SHARD_MANIFEST ? `${path.basename(path.dirname(file))}/` : path.basename(file);
    return this.addTokenSet(label, grids, file);
  }

  async dispose(): Promise<void> {
    this.disposeEncoders();
    this.tokenSetsChanged.dispose();
    this.activeChanged.dispose();
    this.status.dispose();
    this.lab.dispose();
    await this.backend.dispose();
    this.log.dispose();
  }
}

// `unicode2`: the engine from the command line, for servers, scripts and CI.
// Contract: stdout carries the result (exactly one JSON document with --json), stderr carries
// progress and errors. Exit 0 on success, 2 on bad input (one line: `unicode2: <message>`),
// 130 when interrupted (Ctrl-C aborts the run; atomic writes leave no partial file), 1 on a bug
// (message only; the stack with UNICODE2_DEBUG=1).
import * as path from 'node:path';
import type { ComputeBackend, DeviceChoice } from '../native-gpu/backend';
import { openBackend } from '../native-gpu/index';
import { commandHelp, parseArgs, wantsHelp, type CommandSpec, type OptionSpec, type ParsedArgs } from './cli/args';
import { ProgressReporter } from './cli/progress';
import {
  buildCodebook,
  codeStats,
  decodeTokens,
  embedImages,
  EXTERNAL_ENCODER,
  listImages,
  openEncoder,
  openEncoderFromDescriptor,
  readCodebook,
  readEmbeddings,
  readTokenGrids,
  refineAtlas,
  requireSomeImages,
  runDemo,
  tokenizeImages,
  writeCodebook,
  writeFileAtomic,
  writeNpy,
  writePng,
  writeTokenDataset,
  writeTokenJson,
  CancelledError,
  UserError,
  type Codebook,
  type Encoder,
  type SkippedImage,
} from './engine/index';

// ---------------------------------------------------------------------------------------------
// Options shared by the commands

const DEVICE: OptionSpec = {
  kind: 'string',
  choices: ['auto', 'cpu', 'webgpu'],
  help: "compute device: 'auto' (a hardware GPU if present, else cpu), 'cpu' or 'webgpu' (default auto)",
};
const COMMON: Record<string, OptionSpec> = {
  json: { kind: 'flag', help: 'print exactly one JSON document on stdout' },
  quiet: { kind: 'flag', help: 'no progress on stderr' },
  help: { kind: 'flag', help: 'show this help' },
};
const COMPUTE: Record<string, OptionSpec> = { device: DEVICE, ...COMMON };
const CODEBOOK: OptionSpec = { kind: 'string', value: 'CB', required: true, help: 'codebook (.safetensors)' };
const ENCODER_OVERRIDE: OptionSpec = {
  kind: 'string',
  value: 'E',
  help: "encoder to use instead of the one recorded in the codebook: 'dct', 'dct:<size>', a model folder or .onnx file",
};
const IMAGES_OPERANDS = { name: 'IMAGES', min: 1, max: Infinity };

/** What a command gets to work with; the backend is opened lazily so `--help` and input errors
 *  found before computing never start a GPU. */
interface Context {
  args: ParsedArgs;
  signal: AbortSignal;
  progress: ProgressReporter;
  backend(): Promise<ComputeBackend>;
}

interface Command {
  spec: CommandSpec;
  run(ctx: Context): Promise<{ json: unknown; text: string }>;
}

const str = (args: ParsedArgs, name: string) => args.options[name] as string | undefined;
const num = (args: ParsedArgs, name: string) => args.options[name] as number | undefined;

// ---------------------------------------------------------------------------------------------
// Helpers

async function listAll(operands: string[]): Promise<string[]> {
  const lists = await Promise.all(operands.map((o) => listImages(o)));
  const images = lists.flat();
  if (images.length === 0) throw new UserError(`no images found in ${operands.join(', ')}`);
  return images;
}

/** The encoder a codebook was built with, or the one the user names instead. */
async function encoderFor(cb: Codebook, override: string | undefined, backend: ComputeBackend): Promise<Encoder> {
  if (override) return openEncoder(override, backend);
  if (cb.meta.encoder.id === EXTERNAL_ENCODER) {
    throw new UserError('this codebook was built from external embeddings; name the encoder that made them with --encoder');
  }
  return openEncoderFromDescriptor(cb.meta.encoder, backend);
}

function reportSkipped(progress: ProgressReporter, skipped: SkippedImage[]): void {
  for (const s of skipped) progress.note(`unicode2: skipped ${s.path}: ${s.reason}`);
}

const imageProgress = (ctx: Context, phase: string) => (done: number, total: number) =>
  ctx.progress.report({ phase, done, total });

function fmt(x: number, digits = 4): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(digits);
}

/** a share in [0, 1] as a percentage, e.g. utilization 0.8734 -> "87.34%" */
function pct(x: number): string {
  return `${(100 * x).toFixed(2)}%`;
}

// ---------------------------------------------------------------------------------------------
// Commands

const embed: Command = {
  spec: {
    name: 'embed',
    summary: 'Encode images into patch embeddings: float32 [N*L, d] .npy plus <out>.index.json (images, grid, encoder).',
    operands: IMAGES_OPERANDS,
    options: {
      out: { kind: 'string', value: 'FILE', required: true, help: 'output .npy' },
      encoder: { kind: 'string', value: 'E', help: "encoder: 'dct' (default), 'dct:<size>', a model folder or .onnx file" },
      ...COMPUTE,
    },
  },
  async run(ctx) {
    const images = await listAll(ctx.args.operands);
    const out = str(ctx.args, 'out')!;
    const encoder = await openEncoder(str(ctx.args, 'encoder') ?? 'dct', await ctx.backend());
    try {
      const r = await embedImages(encoder, images, { signal: ctx.signal, onProgress: imageProgress(ctx, 'embed') });
      requireSomeImages(r.images.length, r.skipped);
      reportSkipped(ctx.progress, r.skipped);
      const shape = [r.embeddings.rows, r.embeddings.cols];
      const index = `${out}.index.json`;
      const indexDoc = { images: r.images, grid: encoder.grid, rowsPerImage: encoder.grid[0] * encoder.grid[1], encoder: encoder.descriptor };
      await writeFileAtomic(index, JSON.stringify(indexDoc, null, 2) + '\n');
      await writeNpy(out, { shape, dtype: 'float32', data: r.embeddings.data });
      return {
        json: { out, shape, index, images: r.images.length, skipped: r.skipped.length },
        text: `wrote ${out} [${shape.join(', ')}] and ${index}`,
      };
    } finally {
      await encoder.dispose();
    }
  },
};

const build: Command = {
  spec: {
    name: 'build',
    summary: 'Build a codebook by (utilization-regularized) k-means over patch embeddings.',
    options: {
      images: { kind: 'string', value: 'DIR', help: 'images to embed (a folder or one file)' },
      embeddings: { kind: 'string', value: 'FILE|DIR', help: 'precomputed embeddings: one .npy (f32/f16) or a folder of shards' },
      k: { kind: 'int', value: 'K', required: true, help: 'number of codes' },
      out: { kind: 'string', value: 'FILE', required: true, help: 'output codebook (.safetensors)' },
      encoder: {
        kind: 'string',
        value: 'E',
        help: `encoder of the images (default dct), or that made the embeddings (default '${EXTERNAL_ENCODER}': unknown)`,
      },
      iters: { kind: 'int', value: 'N', help: 'k-means iterations (default 20)' },
      lambda: { kind: 'number', value: 'X', help: 'utilization regularization: pull toward the mean codeword (default 0)' },
      seed: { kind: 'int', value: 'S', help: 'random seed (default 0)' },
      sample: { kind: 'int', value: 'N', help: 'train on a seeded uniform random subset of N vectors' },
      tolerance: { kind: 'number', value: 'X', help: 'stop when the relative inertia change is below X (0: run all iterations)' },
      ...COMPUTE,
    },
    exactlyOne: [['images', 'embeddings']],
  },
  async run(ctx) {
    const a = ctx.args;
    const images = str(a, 'images');
    const summary = await buildCodebook(
      {
        images,
        embeddings: str(a, 'embeddings'),
        encoder: str(a, 'encoder') ?? (images ? 'dct' : EXTERNAL_ENCODER),
        k: num(a, 'k')!,
        iterations: num(a, 'iters'),
        lambda: num(a, 'lambda'),
        seed: num(a, 'seed'),
        sample: num(a, 'sample'),
        tolerance: num(a, 'tolerance'),
        out: str(a, 'out')!,
      },
      await ctx.backend(),
      { signal: ctx.signal, onProgress: (e) => ctx.progress.report(e) },
    );
    reportSkipped(ctx.progress, summary.skipped);
    const s = summary;
    return {
      json: s,
      text:
        `wrote ${s.out} (K=${s.k}, d=${s.d}, fingerprint ${s.fingerprint})\n` +
        `iterations ${s.iterations}, inertia ${s.inertia.toPrecision(6)}, utilization ${pct(s.utilization)}, ` +
        `perplexity ${fmt(s.perplexity, 1)}, dead ${s.dead}, ${s.seconds.toFixed(2)} s on ${s.device}`,
    };
  },
};

const tokenize: Command = {
  spec: {
    name: 'tokenize',
    summary: 'Turn images into token grids (nearest frozen code of every patch).',
    operands: IMAGES_OPERANDS,
    options: {
      codebook: CODEBOOK,
      out: { kind: 'string', value: 'FILE', help: 'write .json (per-image grids) or .npy (int32 [N, L] data set + FILE.index.json); default: print' },
      encoder: ENCODER_OVERRIDE,
      ...COMPUTE,
    },
  },
  async run(ctx) {
    const out = str(ctx.args, 'out');
    if (out && !/\.(json|npy)$/i.test(out)) throw new UserError(`--out must end in .json or .npy, got ${out}`);
    const images = await listAll(ctx.args.operands);
    const cb = await readCodebook(str(ctx.args, 'codebook')!);
    const backend = await ctx.backend();
    const encoder = await encoderFor(cb, str(ctx.args, 'encoder'), backend);
    try {
      const { results, skipped } = await tokenizeImages(cb, encoder, images, backend, {
        signal: ctx.signal,
        onProgress: imageProgress(ctx, 'tokenize'),
      });
      requireSomeImages(results.length, skipped);
      reportSkipped(ctx.progress, skipped);
      if (!out) {
        const doc = { results, device: backend.device };
        return { json: doc, text: JSON.stringify(doc) };
      }
      const grid = results[0]!.grid;
      if (/\.npy$/i.test(out)) {
        const { shape } = await writeTokenDataset(out, results);
        return { json: { out, shape, grid, index: `${out}.index.json`, device: backend.device }, text: `wrote ${out} [${shape.join(', ')}]` };
      }
      await writeTokenJson(out, results);
      return { json: { out, images: results.length, grid, device: backend.device }, text: `wrote ${out} (${results.length} token grids, ${grid.join('x')})` };
    } finally {
      await encoder.dispose();
    }
  },
};

const search: Command = {
  spec: {
    name: 'search',
    summary: 'Exact nearest code (squared L2) for each query vector: int32 [Q] .npy of code ids.',
    options: {
      codebook: CODEBOOK,
      queries: { kind: 'string', value: 'FILE', required: true, help: 'queries: .npy [Q, d] (f32/f16/f64) or a folder of shards' },
      out: { kind: 'string', value: 'FILE', required: true, help: 'output .npy (int32 [Q])' },
      ...COMPUTE,
    },
  },
  async run(ctx) {
    const cb = await readCodebook(str(ctx.args, 'codebook')!);
    const queries = await readEmbeddings(str(ctx.args, 'queries')!);
    if (queries.cols !== cb.frozen.cols) {
      throw new UserError(`codebook has d=${cb.frozen.cols} but the queries have d=${queries.cols}`);
    }
    const backend = await ctx.backend();
    const handle = await backend.loadCodebook(cb.frozen);
    try {
      const { ids } = await backend.nearest(handle, queries, { signal: ctx.signal });
      const out = str(ctx.args, 'out')!;
      await writeNpy(out, { shape: [ids.length], dtype: 'int32', data: ids });
      return { json: { out, shape: [ids.length], device: backend.device }, text: `wrote ${out} [${ids.length}]` };
    } finally {
      handle.dispose();
    }
  },
};

const decode: Command = {
  spec: {
    name: 'decode',
    summary: "Token grid -> image through the codebook's atlas (each code's pixel patch).",
    options: {
      codebook: CODEBOOK,
      tokens: { kind: 'string', value: 'FILE', required: true, help: 'tokens as written by tokenize (.json, or .npy data set)' },
      out: { kind: 'string', value: 'FILE', required: true, help: 'output .png' },
      index: { kind: 'int', value: 'I', help: 'which grid of the tokens file (default 0)' },
      ...COMPUTE,
    },
  },
  async run(ctx) {
    const cb = await readCodebook(str(ctx.args, 'codebook')!);
    const tokensPath = str(ctx.args, 'tokens')!;
    const grids = await readTokenGrids(tokensPath, cb.frozen.rows);
    const index = num(ctx.args, 'index') ?? 0;
    const g = grids[index];
    if (!g) throw new UserError(`--index ${index} is out of range: ${tokensPath} holds ${grids.length} token grid(s)`);
    if (g.codebook && g.codebook !== cb.fingerprint) {
      throw new UserError(`these tokens were made with codebook ${g.codebook}, not with ${cb.fingerprint}`);
    }
    const backend = await ctx.backend();
    const img = await decodeTokens(cb, Int32Array.from(g.ids), g.grid, backend);
    const out = str(ctx.args, 'out')!;
    await writePng(out, img);
    return {
      json: { out, width: img.width, height: img.height, image: g.image, device: backend.device },
      text: `wrote ${out} (${img.width}x${img.height}) from the tokens of ${g.image}`,
    };
  },
};

const refine: Command = {
  spec: {
    name: 'refine',
    summary: "Refine the codebook's atlas (trainable half) to the mean pixel patch of each code over images.",
    options: {
      codebook: CODEBOOK,
      images: { kind: 'string', value: 'DIR', required: true, help: 'images to refine from' },
      out: { kind: 'string', value: 'FILE', help: 'output codebook (default: rewrite --codebook in place, atomically)' },
      encoder: ENCODER_OVERRIDE,
      ...COMPUTE,
    },
  },
  async run(ctx) {
    const cbPath = str(ctx.args, 'codebook')!;
    const cb = await readCodebook(cbPath);
    const images = await listAll([str(ctx.args, 'images')!]);
    const backend = await ctx.backend();
    const encoder = await encoderFor(cb, str(ctx.args, 'encoder'), backend);
    try {
      const refined = await refineAtlas(cb, encoder, images, backend, { signal: ctx.signal, onProgress: imageProgress(ctx, 'refine') });
      const out = str(ctx.args, 'out') ?? cbPath;
      const fingerprint = await writeCodebook(out, refined);
      return {
        json: { out, k: refined.frozen.rows, d: refined.frozen.cols, atlas: refined.meta.atlas, fingerprint, device: backend.device },
        text: `wrote ${out} (atlas ${refined.meta.atlas}, ${images.length} images)`,
      };
    } finally {
      await encoder.dispose();
    }
  },
};

const stats: Command = {
  spec: {
    name: 'stats',
    summary: 'Codebook usage over images or a tokens file: utilization, perplexity, dead codes.',
    options: {
      codebook: CODEBOOK,
      images: { kind: 'string', value: 'DIR', help: 'tokenize these images and count' },
      tokens: { kind: 'string', value: 'FILE', help: 'count the ids of a tokenize output (.json or .npy data set)' },
      encoder: ENCODER_OVERRIDE,
      ...COMPUTE,
    },
    exactlyOne: [['images', 'tokens']],
  },
  async run(ctx) {
    const cb = await readCodebook(str(ctx.args, 'codebook')!);
    const k = cb.frozen.rows;
    const tokensPath = str(ctx.args, 'tokens');
    const backend = await ctx.backend();
    let ids: number[];
    if (tokensPath) {
      ids = (await readTokenGrids(tokensPath, k)).flatMap((g) => g.ids);
    } else {
      const images = await listAll([str(ctx.args, 'images')!]);
      const encoder = await encoderFor(cb, str(ctx.args, 'encoder'), backend);
      try {
        const r = await tokenizeImages(cb, encoder, images, backend, { signal: ctx.signal, onProgress: imageProgress(ctx, 'tokenize') });
        requireSomeImages(r.results.length, r.skipped);
        reportSkipped(ctx.progress, r.skipped);
        ids = r.results.flatMap((g) => g.ids);
      } finally {
        await encoder.dispose();
      }
    }
    const s = codeStats(await backend.histogram(Int32Array.from(ids), k));
    return {
      json: { tokens: s.tokens, k: s.k, used: s.used, utilization: s.utilization, perplexity: s.perplexity, dead: s.dead, device: backend.device },
      text: `${s.tokens} tokens over K=${s.k}: used ${s.used}, utilization ${pct(s.utilization)}, perplexity ${fmt(s.perplexity, 1)}, dead ${s.dead}`,
    };
  },
};

const demo: Command = {
  spec: {
    name: 'demo',
    summary:
      'The whole pipeline on the bundled sample photos with the DCT encoder: build a codebook, tokenize, decode, ' +
      'measure PSNR, write report.html (self-contained), codebook.safetensors and tokens.json.',
    options: { out: { kind: 'string', value: 'DIR', help: 'output folder (default ./unicode2-demo)' }, ...COMPUTE },
  },
  async run(ctx) {
    const outDir = path.resolve(str(ctx.args, 'out') ?? 'unicode2-demo');
    const r = await runDemo(outDir, await ctx.backend(), { signal: ctx.signal, onProgress: (e) => ctx.progress.report(e) });
    const s = r.stats;
    const json = {
      report: r.report,
      codebook: r.codebook,
      tokens: r.tokens,
      k: r.summary.k,
      d: r.summary.d,
      iterations: r.summary.iterations,
      inertia: r.summary.inertia,
      utilization: s.utilization,
      perplexity: s.perplexity,
      used: s.used,
      dead: s.dead,
      meanPsnr: r.meanPsnr,
      samples: r.samples,
      seconds: r.summary.seconds,
      device: r.summary.device,
    };
    const lines = [
      `codebook  ${r.codebook} (K=${r.summary.k}, d=${r.summary.d}, ${r.summary.iterations} iterations, ${r.summary.seconds.toFixed(2)} s on ${r.summary.device})`,
      `usage     ${s.tokens} tokens: utilization ${pct(s.utilization)}, perplexity ${fmt(s.perplexity, 1)}, dead ${s.dead}`,
      ...r.samples.map((x) => `psnr      ${x.psnr.toFixed(2)} dB  ${path.basename(x.image)}`),
      `mean psnr ${r.meanPsnr.toFixed(2)} dB`,
      `report    ${r.report}`,
    ];
    return { json, text: lines.join('\n') };
  },
};

const COMMANDS: Record<string, Command> = { embed, build, tokenize, search, decode, refine, stats, demo };

function globalHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length)) + 2;
  return [
    'usage: unicode2 <command> [options]     (unicode2 <command> --help for its options)',
    '',
    'commands:',
    ...Object.values(COMMANDS).map((c) => `  ${c.spec.name.padEnd(width)}${c.spec.summary}`),
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Entry point

function write(stream: NodeJS.WriteStream, text: string): Promise<void> {
  return new Promise((resolve) => stream.write(text, () => resolve()));
}

/** Runs one command line; returns the exit code. */
async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    await write(name === undefined ? process.stderr : process.stdout, globalHelp());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) throw new UserError(`unknown command '${name}' (commands: ${Object.keys(COMMANDS).join(', ')})`);
  if (wantsHelp(rest)) {
    await write(process.stdout, commandHelp(command.spec));
    return 0;
  }
  const args = parseArgs(command.spec, rest);
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    // First Ctrl-C: cancel cleanly (atomic writes roll back). Second: the user insists.
    if (++interrupts > 1) process.exit(130);
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  const progress = new ProgressReporter(process.stderr, Boolean(args.options.quiet));
  let backend: Promise<ComputeBackend> | undefined;
  try {
    const result = await command.run({
      args,
      signal: controller.signal,
      progress,
      backend: () => (backend ??= openBackend(((args.options.device as string | undefined) ?? 'auto') as DeviceChoice)),
    });
    progress.end();
    await write(process.stdout, args.options.json ? JSON.stringify(result.json) + '\n' : result.text + '\n');
    return 0;
  } finally {
    progress.end();
    process.off('SIGINT', onSigint);
    if (backend) await (await backend.catch(() => undefined))?.dispose();
  }
}

async function exitCodeFor(err: unknown): Promise<number> {
  if (err instanceof CancelledError) {
    await write(process.stderr, 'unicode2: cancelled\n');
    return 130;
  }
  const message = err instanceof Error ? err.message : String(err);
  const oneLine = message.split('\n')[0];
  if (err instanceof UserError) {
    await write(process.stderr, `unicode2: ${oneLine}\n`);
    return 2;
  }
  const debug = process.env.UNICODE2_DEBUG === '1' && err instanceof Error && err.stack;
  await write(process.stderr, `unicode2: internal error: ${debug || oneLine}\n`);
  return 1;
}

main(process.argv.slice(2))
  .catch(exitCodeFor)
  // Exit explicitly: a native module (Dawn, onnxruntime) may keep the event loop alive after its
  // last use, and the CLI must return to the shell as soon as its work is done.
  .then((code) => process.exit(code));

// Tiny text towers and tokenizers for tests, in the layouts real exports write (no weights to
// download). The tokenizers are real tokenizer.json files with vocabularies and merges written
// here, so the ids each text gets can be derived by hand:
//   - CLIP_TOKENIZER: CLIP's pipeline (NFC + whitespace + lowercase normalizer, CLIP's split
//     regex + ByteLevel, BPE with '</w>' word ends, <|startoftext|> ... <|endoftext|>);
//   - SIGLIP_TOKENIZER: a SentencePiece-style Unigram with Metaspace ('▁') and '</s>' appended.
// The models are built with the same ONNX graph writer as the vision towers (siglip-model.ts):
// input_ids -> Gather(E) -> the sum over the text's tokens (masked by attention_mask where the
// model takes one) -> text_embeds / pooler_output [B, d]. Rows of E are what the test chooses
// (`rows`, by token), zero elsewhere, so a text's embedding is known by construction.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { GraphBuilder } from '../../native-gpu/cpu/onnx-graph.js';
import { FAMILY_CONFIGS, writeExportFolder } from './siglip-model.js';

/** The CLIP-style BPE vocabulary: single characters, word-final characters, merges' results. */
export const CLIP_VOCAB: Record<string, number> = {
  a: 0, b: 1, d: 2, e: 3, g: 4, i: 5, k: 6, l: 7, n: 8, r: 9, t: 10, u: 11,
  'a</w>': 12, 'd</w>': 13, 'e</w>': 14, 'n</w>': 15,
  re: 16, 'red</w>': 17, gre: 18, 'en</w>': 19, 'green</w>': 20, 'ue</w>': 21, bl: 22, 'blue</w>': 23, ki: 24, 'te</w>': 25, 'kite</w>': 26,
  '<|startoftext|>': 27, '<|endoftext|>': 28,
};
/** In rank order (the first applies first), as CLIP's merges.txt lists them. */
const CLIP_MERGES = ['r e', 're d</w>', 'g re', 'e n</w>', 'gre en</w>', 'u e</w>', 'b l', 'bl ue</w>', 'k i', 't e</w>', 'ki te</w>'];

const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });

export const CLIP_TOKENIZER = {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: [special(27, '<|startoftext|>'), special(28, '<|endoftext|>')],
  normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }] },
  pre_tokenizer: {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+" }, behavior: 'Removed', invert: true },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    ],
  },
  post_processor: { type: 'RobertaProcessing', sep: ['<|endoftext|>', 28], cls: ['<|startoftext|>', 27], trim_offsets: false, add_prefix_space: false },
  decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
  model: { type: 'BPE', dropout: null, unk_token: '<|endoftext|>', continuing_subword_prefix: '', end_of_word_suffix: '</w>', fuse_unk: false, vocab: CLIP_VOCAB, merges: CLIP_MERGES },
};

/** The Unigram vocabulary: [piece, log-probability], id = position. */
export const SIGLIP_PIECES: [string, number][] = [
  ['<pad>', 0], ['</s>', 0], ['<unk>', 0], ['▁a', -2], ['▁red', -3], ['▁green', -3], ['▁blue', -3], ['▁kite', -3],
  ['▁', -4], ['r', -5], ['e', -5], ['d', -5], ['▁re', -4],
];

export const SIGLIP_TOKENIZER = {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: [special(0, '<pad>'), special(1, '</s>'), special(2, '<unk>')],
  normalizer: { type: 'Lowercase' },
  pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
  post_processor: { type: 'TemplateProcessing', single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }], pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 0 } }], special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } } },
  decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
  model: { type: 'Unigram', unk_id: 2, vocab: SIGLIP_PIECES, byte_fallback: false },
};

export interface TextTowerOptions {
  vocab: number;
  d: number;
  /** E's rows, by token id; the others are zero */
  rows: Record<number, number[]>;
  /** 'text_embeds' (CLIP) or 'pooler_output' (SigLIP) */
  output: string;
  /** takes attention_mask (CLIP) */
  mask: boolean;
  /** a fixed sequence length (SigLIP's position embeddings), else symbolic */
  seq?: number;
  /** also takes pixel_values [B,3,H,W] and outputs image_embeds [B,3] (a combined model) */
  combined?: { size: number };
}

/** input_ids (+ attention_mask) -> sum over the text's tokens of E[id] -> the pooled output. */
export function textTower(opts: TextTowerOptions): Uint8Array {
  const E = new Float32Array(opts.vocab * opts.d);
  for (const [id, row] of Object.entries(opts.rows)) E.set(row, Number(id) * opts.d);
  const g = new GraphBuilder('test_text_tower');
  g.input('input_ids', 'int64', ['batch', opts.seq ?? 'sequence']);
  if (opts.mask) g.input('attention_mask', 'int64', ['batch', opts.seq ?? 'sequence']);
  g.initializer('token_embedding', { type: 'float32', dims: [opts.vocab, opts.d], data: E });
  g.initializer('sum_axes', { type: 'int64', dims: [1], data: BigInt64Array.of(1n) });
  g.node('Gather', ['token_embedding', 'input_ids'], ['last_hidden_state']);
  let summed = 'last_hidden_state';
  if (opts.mask) {
    g.initializer('mask_axes', { type: 'int64', dims: [1], data: BigInt64Array.of(2n) });
    g.node('Cast', ['attention_mask'], ['mask_f'], { to: 1 });
    g.node('Unsqueeze', ['mask_f', 'mask_axes'], ['mask_3d']);
    g.node('Mul', ['last_hidden_state', 'mask_3d'], ['masked']);
    summed = 'masked';
  }
  g.node('ReduceSum', [summed, 'sum_axes'], [opts.output], { keepdims: 0 });
  g.output(opts.output, 'float32', ['batch', opts.d]);
  g.output('last_hidden_state', 'float32', ['batch', opts.seq ?? 'sequence', opts.d]);
  if (opts.combined) {
    const s = opts.combined.size;
    g.input('pixel_values', 'float32', ['image_batch', 3, s, s]);
    g.node('ReduceMean', ['pixel_values'], ['image_embeds'], { axes: [2, 3], keepdims: 0 });
    g.output('image_embeds', 'float32', ['image_batch', 3]);
  }
  return g.toModel();
}

/** Writes the text side of an export into `dir`: the model at `modelPath`, tokenizer.json,
 *  tokenizer_config.json and (where given) special_tokens_map.json, and merges `textConfig` into
 *  config.json (kept: the vision side's). */
export async function writeTextSide(dir: string, model: Uint8Array, files: { modelPath: string; tokenizer: object; tokenizerConfig: object; specialTokens?: object; textConfig?: Record<string, unknown> }): Promise<void> {
  await fs.mkdir(path.dirname(path.join(dir, files.modelPath)), { recursive: true });
  await fs.writeFile(path.join(dir, files.modelPath), model);
  await fs.writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify(files.tokenizer));
  await fs.writeFile(path.join(dir, 'tokenizer_config.json'), JSON.stringify(files.tokenizerConfig));
  if (files.specialTokens) await fs.writeFile(path.join(dir, 'special_tokens_map.json'), JSON.stringify(files.specialTokens));
  if (files.textConfig) {
    const configPath = path.join(dir, 'config.json');
    const config = JSON.parse(await fs.readFile(configPath, 'utf8').catch(() => '{}')) as Record<string, unknown>;
    await fs.writeFile(configPath, JSON.stringify({ ...config, ...files.textConfig }, null, 2));
  }
}

/** One-hot-ish rows over d: +1 at `plus`, -1 at each of `minus`. */
export function signed(d: number, plus: number, minus: number[] = []): number[] {
  const row = new Array<number>(d).fill(0);
  row[plus] = 1;
  for (const m of minus) row[m] = -1;
  return row;
}

export const D = 48; // the pooled image embedding of a patch-4 DCT tower: 3 x 4 x 4
export const [RED, GREEN, BLUE] = [0, 16, 32]; // the DC coefficient of each channel in it
export const KITE = 1;

/** A SigLIP folder of both towers with d = 48: the vision tower's pooler_output is the mean of its
 *  DCT patch tokens (a solid colour's: 4 x its normalized value at the channel's DC coefficient),
 *  and the text tower's rows of E put '▁red', '▁green', '▁blue' on those same axes. */
export async function siglipFolder(dir: string): Promise<string> {
  const family = FAMILY_CONFIGS.siglip(4, 16);
  await writeExportFolder(dir, { size: 16, patch: 4, pooled: 'pooler_output' }, { modelPath: 'onnx/vision_model.onnx', ...family });
  const id = (piece: string) => SIGLIP_PIECES.findIndex(([p]) => p === piece);
  const model = textTower({
    vocab: SIGLIP_PIECES.length, d: D, output: 'pooler_output', mask: false, seq: 8,
    rows: { [id('▁red')]: signed(D, RED, [GREEN, BLUE]), [id('▁green')]: signed(D, GREEN, [RED, BLUE]), [id('▁blue')]: signed(D, BLUE, [RED, GREEN]), [id('▁kite')]: signed(D, KITE) },
  });
  await writeTextSide(dir, model, {
    modelPath: 'onnx/text_model.onnx', tokenizer: SIGLIP_TOKENIZER, tokenizerConfig: { model_max_length: 8, eos_token: '</s>', unk_token: '<unk>' }, specialTokens: { pad_token: '</s>' },
    textConfig: { ...family.config, text_config: { model_type: 'siglip_text_model', max_position_embeddings: 8 } },
  });
  return dir;
}


/** A 32 x 32 PNG of one colour. */
export async function solid(file: string, rgb: [number, number, number]): Promise<string> {
  await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toFile(file);
  return file;
}

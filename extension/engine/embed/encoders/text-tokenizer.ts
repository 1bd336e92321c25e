// A text tower's tokenizer: tokenizer.json run by Hugging Face's own JavaScript port of its
// tokenizers (@huggingface/tokenizers: normalizer, pre-tokenizer, BPE / WordPiece / Unigram model,
// post-processor, as the Rust library runs them), plus what transformers adds around it, read from
// the files and never guessed:
//   - truncation to `max_length` (tokenizer.json's `truncation`, else tokenizer_config.json's
//     `model_max_length`, else config.json's `max_position_embeddings`), keeping room for the
//     special tokens as transformers does (CLIP keeps its end-of-text token at position 76);
//   - padding: tokenizer.json's `padding` when it says (Fixed n, or BatchLongest); else SigLIP and
//     SigLIP2 (model_type 'siglip') pad to max_length, as they were trained and as their model
//     cards and Transformers.js do (padding="max_length"); else (CLIP) to the longest text of the
//     batch, with an attention mask marking the padding;
//   - the pad token: tokenizer.json's pad_id, else tokenizer_config.json's or
//     special_tokens_map.json's pad_token.
import { Tokenizer } from '@huggingface/tokenizers';
import { UserError } from '../../../../common/errors.js';
import { readJsonFile } from '../../io/files.js';
import { MAX_CONFIG_BYTES, MAX_JSON_BYTES } from '../../core/limits.js';

export interface TokenizerFiles {
  tokenizer: string;
  tokenizerConfig: string | null;
  specialTokens: string | null;
  config: string | null;
}

/** How texts are cut and padded. */
export interface TextTokenization {
  /** 'max_length': every text to maxLength; 'longest': to the longest of the batch */
  padding: 'max_length' | 'longest';
  /** texts are cut to this many tokens (special tokens included), or not at all (null) */
  maxLength: number | null;
  padId: number | null;
  /** the text config's model_type ('siglip', 'clip', ...), or null without a config.json */
  family: string | null;
}

/** Texts as token ids, every row of the same length, and 1 where a token is the text's, 0 where
 *  it is padding. */
export interface TokenizedTexts {
  ids: number[][];
  mask: number[][];
}

export interface TextTokenizer {
  readonly tokenization: TextTokenization;
  encode(texts: readonly string[]): TokenizedTexts;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const MAX_SENSIBLE_LENGTH = 1 << 16; // transformers writes a huge sentinel for "no limit"

async function readObject(file: string | null, what: string, max: number): Promise<Json> {
  if (!file) return {};
  const doc = await readJsonFile(file, what, max);
  if (!isObject(doc)) throw new UserError(`${file}: a ${what} must be a JSON object`);
  return doc;
}

const whole = (v: unknown): number | null => (Number.isSafeInteger(v) && (v as number) > 0 && (v as number) <= MAX_SENSIBLE_LENGTH ? (v as number) : null);
const tokenText = (v: unknown): string | null => (typeof v === 'string' ? v : isObject(v) && typeof v.content === 'string' ? v.content : null);

/** The text part of config.json: its text_config when it has one. */
function textConfig(config: Json): Json {
  const text = config.text_config;
  return isObject(text) ? { model_type: config.model_type, ...text } : config;
}

function familyOf(text: Json): string | null {
  const type = typeof text.model_type === 'string' ? text.model_type : null;
  return type?.replace(/_text_model$/, '') ?? null;
}

/** Truncation, padding and pad id from the three files (see the file comment). */
function tokenizationOf(files: TokenizerFiles, json: Json, tokenizerConfig: Json, special: Json, config: Json, idOf: (t: string) => number | undefined): TextTokenization {
  const text = textConfig(config);
  const family = familyOf(text);
  const truncation = isObject(json.truncation) ? json.truncation : {};
  const maxLength = whole(truncation.max_length) ?? whole(tokenizerConfig.model_max_length) ?? whole(text.max_position_embeddings);
  const pad = isObject(json.padding) ? json.padding : null;
  const strategy = pad?.strategy;
  const fixed = isObject(strategy) ? whole(strategy.Fixed) : null;
  let padding: TextTokenization['padding'] = fixed !== null || (!pad && family?.startsWith('siglip')) ? 'max_length' : 'longest';
  const length = fixed ?? maxLength;
  if (padding === 'max_length' && length === null) throw new UserError(`${files.tokenizer}: pads to a maximum length, but no file says what it is (tokenizer_config.json's model_max_length)`);
  if (length === null) padding = 'longest';
  const padToken = tokenText(tokenizerConfig.pad_token) ?? tokenText(special.pad_token) ?? (typeof pad?.pad_token === 'string' ? pad.pad_token : null);
  const padId = Number.isSafeInteger(pad?.pad_id) ? (pad!.pad_id as number) : padToken !== null ? (idOf(padToken) ?? null) : null;
  return { padding, maxLength: length, padId, family };
}

/** Opens the tokenizer of a text tower from its files. */
export async function openTextTokenizer(files: TokenizerFiles): Promise<TextTokenizer> {
  const [json, tokenizerConfig, special, config] = await Promise.all([
    readObject(files.tokenizer, 'tokenizer', MAX_JSON_BYTES),
    readObject(files.tokenizerConfig, 'tokenizer config', MAX_CONFIG_BYTES * 16),
    readObject(files.specialTokens, 'special tokens map', MAX_CONFIG_BYTES),
    readObject(files.config, 'model config', MAX_CONFIG_BYTES),
  ]);
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(json, tokenizerConfig);
  } catch (err) {
    throw new UserError(`${files.tokenizer}: not a tokenizer this product can run (${(err as Error).message})`);
  }
  const vocab = tokenizer.get_vocab(true);
  const tokenization = tokenizationOf(files, json, tokenizerConfig, special, config, (t) => vocab.get(t));
  // the special tokens the post-processor adds around one text (CLIP: 2, SigLIP: 1)
  const specials = tokenizer.post_processor ? tokenizer.post_processor.post_process([]).tokens.length : 0;
  const encodeOne = (text: string): number[] => {
    const ids = tokenizer.encode(text).ids;
    const max = tokenization.maxLength;
    if (max === null || ids.length <= max) return ids;
    // cut the text's own tokens, then add the special tokens back (transformers' truncation)
    const kept = tokenizer.tokenize(text, { add_special_tokens: false }).slice(0, Math.max(0, max - specials));
    const tokens = tokenizer.post_processor ? tokenizer.post_processor.post_process(kept).tokens : kept;
    // every token the model gives is in its vocabulary (an unknown piece is its unk token)
    return tokens.map((t: string) => vocab.get(t)!).slice(0, max);
  };
  return {
    tokenization,
    encode(texts) {
      const rows = texts.map(encodeOne);
      const longest = rows.reduce((n, r) => Math.max(n, r.length), 0);
      const width = tokenization.padding === 'max_length' ? tokenization.maxLength! : longest;
      if (rows.some((r) => r.length < width) && tokenization.padId === null) {
        throw new UserError(`${files.tokenizer}: texts of different lengths need a pad token, and neither tokenizer.json nor tokenizer_config.json names one`);
      }
      return {
        ids: rows.map((r) => [...r, ...new Array<number>(width - r.length).fill(tokenization.padId ?? 0)]),
        mask: rows.map((r) => [...new Array<number>(r.length).fill(1), ...new Array<number>(width - r.length).fill(0)]),
      };
    },
  };
}

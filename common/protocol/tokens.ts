// The token set editor's messages: a token data set (`.tokens.npy` + index, or a tokens `.json`)
// as a list of images, the grid of the one selected over its photo, and the set's code usage.
import * as v from 'valibot';
import { finite, gridShape, index, message, noParams, numbers, protocol, request, text } from './shared.js';

export const tokenSetImage = message({ label: text, path: text });

export const tokenSetUsage = message({
  tokens: index,
  /** codes used at least once */
  distinct: index,
  /** K of the matching codebook (the active one, when its fingerprint is the set's), else null */
  k: v.nullable(index),
  perplexity: finite,
  /** every used code, most used first, and its count */
  codes: numbers('index'),
  counts: numbers('finite'),
});

export const tokenSetView = message({
  file: text,
  /** 'npy' data set or 'json' tokenize output */
  format: v.picklist(['npy', 'json']),
  images: v.array(tokenSetImage),
  /** the codebook fingerprint and encoder the tokens were made with */
  codebook: text,
  encoder: text,
  /** the matching codebook's file name, '' when none is active */
  codebookFile: text,
  usage: tokenSetUsage,
});

export const tokenSetGrid = message({
  index,
  grid: gridShape,
  ids: numbers('index'),
  /** data: URI of the photo at its own aspect ratio; null when it cannot be read (then `missing` says why) */
  image: v.nullable(text),
  missing: v.optional(text),
});

export const tokenSetProtocol = protocol(
  'tokenSet',
  {
    init: request(noParams, tokenSetView),
    grid: request(message({ index }), tokenSetGrid),
  },
  {
    /** the file was rewritten (tokenized again): ask for the view again */
    fileChanged: noParams,
  },
);

export type TokenSetView = v.InferOutput<typeof tokenSetView>;
export type TokenSetUsage = v.InferOutput<typeof tokenSetUsage>;
export type TokenSetGrid = v.InferOutput<typeof tokenSetGrid>;

// The token set editor's messages: a token data set (`.tokens.npy` + index, a tokens `.json`, or a
// sharded tokenize output's manifest.json) as a list of images, the grid of the one selected over
// its photo, and the set's code usage.
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
  /** 'npy' data set, 'json' tokenize output, or 'manifest': a sharded tokenize output as one set */
  format: v.picklist(['npy', 'json', 'manifest']),
  images: v.array(tokenSetImage),
  /** the codebook fingerprint and encoder the tokens were made with */
  codebook: text,
  encoder: text,
  /** the matching codebook's file name, '' when none is active */
  codebookFile: text,
  usage: tokenSetUsage,
  /** a manifest's shards: how many, and the names of those not tokenized yet (their images are not in the set) */
  shards: v.optional(message({ total: index, missing: v.array(text) })),
  /** search by words: present when the set keeps its images' pooled embeddings (tokenize
   *  --pooled); the encoder's text tower is opened at the first search */
  textSearch: v.optional(message({ encoder: text, output: text, d: index })),
});

export const tokenSetGrid = message({
  index,
  grid: gridShape,
  ids: numbers('index'),
  /** data: URI of the photo at its own aspect ratio; null when it cannot be read (then `missing` says why) */
  image: v.nullable(text),
  missing: v.optional(text),
});

/** The images most similar to a text, by the cosine of their pooled image embedding and the
 *  text's embedding (the encoder's image-text score), each with its grid; and the codes most of
 *  them hold. */
export const tokenSetSearch = message({
  query: text,
  hits: v.array(message({ grid: tokenSetGrid, score: v.pipe(finite, v.minValue(-1.001), v.maxValue(1.001)) })),
  shared: v.array(message({ code: index, images: index, tokens: index })),
  /** the text tower that embedded the query, and its device */
  model: text,
});

export const tokenSetProtocol = protocol(
  'tokenSet',
  {
    init: request(noParams, tokenSetView),
    grid: request(message({ index }), tokenSetGrid),
    searchText: request(message({ query: v.pipe(text, v.minLength(1), v.maxLength(1000)) }), tokenSetSearch),
  },
  {
    /** the file was rewritten (tokenized again): ask for the view again */
    fileChanged: noParams,
  },
);

export type TokenSetView = v.InferOutput<typeof tokenSetView>;
export type TokenSetUsage = v.InferOutput<typeof tokenSetUsage>;
export type TokenSetGrid = v.InferOutput<typeof tokenSetGrid>;
export type TokenSetSearch = v.InferOutput<typeof tokenSetSearch>;

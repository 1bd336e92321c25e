// The Token Grid panel's messages: one tokenized image with its grid and reconstruction, and the
// edited grid sent back to be decoded again or handed to the Generation panel.
import * as v from 'valibot';
import { gridShape, index, message, noParams, numbers, protocol, request, text } from './shared.js';

/** What the panel serializer needs to reopen the panel after a reload (kept in webview state). */
export const tokenGridRestore = message({ codebook: text, image: text });

export const tokenGridView = message({
  imageLabel: text,
  /** data: URI of the image as the encoder saw it (resized to its input size) */
  image: text,
  grid: gridShape,
  ids: numbers('index'),
  distances: v.optional(numbers('finite')),
  /** data: URI of the atlas decoding, '' when the codebook has no pixel atlas */
  reconstruction: text,
  k: index,
  codebook: text,
  restore: tokenGridRestore,
});

const editedIds = message({ ids: numbers('index') });

export const tokenGridProtocol = protocol(
  'tokenGrid',
  {
    init: request(noParams, tokenGridView),
    decode: request(editedIds, message({ reconstruction: text })),
    openInGeneration: request(editedIds, v.null()),
  },
  {},
);

export type TokenGridView = v.InferOutput<typeof tokenGridView>;
export type TokenGridRestore = v.InferOutput<typeof tokenGridRestore>;

// The Token Grid panel's messages: one tokenized image with its grid and reconstruction, and the
// edited grid sent back to be decoded again or handed to the Generation panel.
import * as v from 'valibot';
import { finite, gridShape, index, message, noParams, numbers, positive, protocol, request, text } from './shared.js';

/** What the panel serializer needs to reopen the panel after a reload (kept in webview state). */
export const tokenGridRestore = message({ codebook: text, image: text });

/** The atlas decoding of a grid and how close it comes to what the encoder saw. */
export const reconstruction = message({
  /** data: URI of the decoded image (the encoder's input size) */
  image: text,
  /** PSNR in dB against the encoder's input; null when they are identical */
  psnr: v.nullable(finite),
});

/** What bounds the reconstruction: the codebook size, the encoder, the atlas decoder. */
export const reconstructionBounds = message({
  k: index,
  /** the encoder's descriptor id, e.g. dct:224 */
  encoder: text,
  /** the size it saw this photo at, [height, width] pixels (the grid times the patch: the DCT
   *  encoder follows the photo's shape, a model has one fixed input), and its patch side */
  input: gridShape,
  patch: positive,
  /** what the trainable codebook holds: dct (the codewords themselves), refined (mean pixel patches), none, trained (task embeddings) */
  atlas: text,
});

export const tokenGridView = message({
  imageLabel: text,
  /** data: URI of the photo at its own aspect ratio (scaled down to fit; cropped as the encoder
   *  cropped it when the grid follows the photo's shape), the grid is drawn over it */
  image: text,
  grid: gridShape,
  ids: numbers('index'),
  distances: v.optional(numbers('finite')),
  /** null when the codebook has no pixel atlas yet */
  reconstruction: v.nullable(reconstruction),
  bounds: reconstructionBounds,
  /** the codebook's fingerprint */
  codebook: text,
  restore: tokenGridRestore,
});

const editedIds = message({ ids: numbers('index') });

export const tokenGridProtocol = protocol(
  'tokenGrid',
  {
    init: request(noParams, tokenGridView),
    decode: request(editedIds, reconstruction),
    openInGeneration: request(editedIds, v.null()),
  },
  {},
);

/** The state the webview keeps (getState/setState): the serializer reads `restore` from it. */
export const tokenGridState = v.object({ restore: tokenGridRestore });

export type TokenGridView = v.InferOutput<typeof tokenGridView>;
export type TokenGridRestore = v.InferOutput<typeof tokenGridRestore>;
export type Reconstruction = v.InferOutput<typeof reconstruction>;
export type ReconstructionBounds = v.InferOutput<typeof reconstructionBounds>;

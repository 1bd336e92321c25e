// The Generation panel's messages: token sources, generating an image from one, saving a result.
import * as v from 'valibot';
import { finite, gridShape, index, message, noParams, positive, protocol, request, text } from './shared.js';

export const generationSource = message({ id: text, label: text, grid: gridShape });

export const generationResult = message({
  id: text,
  label: text,
  /** data: URI of the PNG */
  image: text,
  width: index,
  height: index,
});

export const generationProtocol = protocol(
  'generation',
  {
    init: request(noParams, message({ sources: v.array(generationSource), codebook: text, results: v.array(generationResult) })),
    /** asks for a tokens file; replies with the sources, which then include it */
    addTokensFile: request(noParams, v.array(generationSource)),
    generate: request(message({ source: text, upscale: positive }), generationResult),
    /** the saved file's path, null when the save dialog was dismissed */
    savePng: request(message({ result: text }), v.nullable(text)),
  },
  {
    sources: message({ sources: v.array(generationSource) }),
    progress: message({ done: finite, total: finite, message: v.optional(text) }),
  },
);

export type GenerationSource = v.InferOutput<typeof generationSource>;
export type GenerationResult = v.InferOutput<typeof generationResult>;

// The Generation panel's messages: token sources and priors, decoders, one generate request for
// the four ways of making a grid (decode a source, sample a prior, inpaint a painted mask,
// variations) with a fitted n-gram prior or an autoregressive model folder, live progress with
// diffusion previews and the AR prior's tokens as they are drawn, Cancel, and saving a result.
import * as v from 'valibot';
import { finite, gridShape, index, message, noParams, numbers, positive, protocol, request, text } from './shared.js';

/** a grid to decode or edit; `disabled` says why it cannot be (made with another codebook) */
export const generationSource = message({ id: text, label: text, grid: gridShape, disabled: v.optional(text) });

/** A fitted n-gram prior (its order) or an autoregressive model folder (its classes, when it is
 *  class-conditional: `count` of them, `names` for the first ones when unicode2.json has them). */
export const priorInfo = message({
  id: text,
  label: text,
  k: positive,
  grid: gridShape,
  kind: v.picklist(['ngram', 'ar']),
  order: v.optional(positive),
  classes: v.optional(message({ count: positive, names: v.array(text) })),
});

/** 'atlas' or a diffusion decoder folder (its path is the id) */
export const decoderInfo = message({ id: text, label: text, kind: v.picklist(['atlas', 'diffusion']) });

export const generationModes = ['decode', 'sample', 'inpaint', 'variations'] as const;

/** Everything a run takes besides its inputs (the panel's form; defaults from the settings). */
export const generationSettings = message({
  decoder: text,
  scheduler: v.picklist(['ddim', 'euler']),
  steps: positive,
  guidance: finite,
  temperature: finite,
  topK: index,
  topP: finite,
  seed: index,
  /** variations: the share of cells drawn again */
  variations: finite,
  /** atlas output: nearest-neighbour upscale 1, 2 or 4 */
  upscale: positive,
  /** an AR prior's class (null: the null class, unconditional) */
  classId: v.nullable(index),
  /** an AR prior's classifier-free guidance: uncond + G * (cond - uncond); 1 = none */
  priorGuidance: finite,
});

export const generateRequest = message({
  mode: v.picklist(generationModes),
  /** the grid to decode or edit (decode, inpaint, variations) */
  source: v.nullable(text),
  /** the prior to sample or edit with (sample, inpaint, variations) */
  prior: v.nullable(text),
  /** sample: the new grid's size */
  grid: v.nullable(gridShape),
  /** inpaint: the painted cells, as raster indices */
  mask: numbers('index'),
  settings: generationSettings,
});

export const generationResult = message({
  id: text,
  label: text,
  /** data: URI of the PNG */
  image: text,
  width: index,
  height: index,
  /** absent for an image read back from its file (a decode's second and later images) */
  grid: v.optional(gridShape),
  /** whether its token grid can be saved as a tokens file */
  tokens: v.optional(v.boolean()),
  /** the settings as shown under the result, e.g. {decoder: 'atlas', seed: 3} */
  settings: v.array(v.tuple([text, v.union([text, finite])])),
  device: text,
  seconds: finite,
});

/** A source's grid, for painting a mask over: its ids and the atlas decode of them. */
export const sourceView = message({ grid: gridShape, ids: numbers('index'), image: text });

export const generationProtocol = protocol(
  'generation',
  {
    init: request(noParams, message({
      sources: v.array(generationSource),
      priors: v.array(priorInfo),
      decoders: v.array(decoderInfo),
      /** the active codebook's name ('' when there is none) */
      codebook: text,
      results: v.array(generationResult),
      defaults: generationSettings,
    })),
    /** asks for a tokens file; replies with the sources, which then include it */
    addTokensFile: request(noParams, v.array(generationSource)),
    /** asks for a prior file (.safetensors from `unicode2 prior fit`) */
    openPrior: request(noParams, v.array(priorInfo)),
    /** asks for an autoregressive model folder (onnx model, config.json, unicode2.json) and checks it */
    openArPrior: request(noParams, v.array(priorInfo)),
    /** fits a prior on the token sets of the active codebook the user ticks (a Lab cell; saved in the workspace) */
    fitPrior: request(noParams, v.array(priorInfo)),
    /** asks for a diffusion decoder folder and checks it */
    addDecoder: request(noParams, v.array(decoderInfo)),
    sourceView: request(message({ source: text }), sourceView),
    /** a run: its Lab cell, progress and previews come as notifications */
    generate: request(generateRequest, generationResult),
    /** stops the run in progress (it ends as cancelled) */
    cancel: request(noParams, v.null()),
    /** the saved file's path, null when the save dialog was dismissed */
    savePng: request(message({ result: text }), v.nullable(text)),
    /** saves a result's token grid as a tokens file: its path, null when the dialog was dismissed */
    saveTokens: request(message({ result: text }), v.nullable(text)),
  },
  {
    /** the sources changed; `select`: the one to choose (the grid a token-grid panel just sent) */
    sources: message({ sources: v.array(generationSource), select: v.optional(text) }),
    /** a prior was fitted outside a request of the panel (a Lab run): the list, and the one to choose */
    priors: message({ priors: v.array(priorInfo), select: v.optional(text) }),
    /** the active codebook changed: its name ('' when there is none); the sources follow */
    codebook: message({ codebook: text }),
    progress: message({ done: finite, total: finite, message: v.optional(text), preview: v.optional(text) }),
    /** an AR prior run starts: the grid's ids so far (kept cells of an edit; 0 elsewhere) and the
     *  cells it will draw, in raster order */
    arStart: message({ grid: gridShape, ids: numbers('index'), cells: numbers('index') }),
    /** an AR prior drew one cell (the `done`th of `total`) */
    arToken: message({ cell: index, code: index, done: index, total: index }),
    /** a run the panel did not ask for (a Lab re-run) finished: its result joins the gallery */
    result: generationResult,
  },
);

export type GenerationSource = v.InferOutput<typeof generationSource>;
export type GenerationResult = v.InferOutput<typeof generationResult>;
export type GenerationSettings = v.InferOutput<typeof generationSettings>;
export type GenerateRequest = v.InferOutput<typeof generateRequest>;
export type PriorInfo = v.InferOutput<typeof priorInfo>;
export type DecoderInfo = v.InferOutput<typeof decoderInfo>;
export type GenerationMode = (typeof generationModes)[number];
export type SourceView = v.InferOutput<typeof sourceView>;

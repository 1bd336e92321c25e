// The Codebook panel's messages: the utilization heatmap's data (summary, per-code counts of the
// selected data set, heatmap order, training drift), the detail of one code, and the data sets to
// count over.
import * as v from 'valibot';
import { finite, index, message, noParams, numbers, protocol, request, text } from './shared.js';

/** a data set to count over; `disabled` says why it cannot be (made with another codebook) */
export const datasetInfo = message({ id: text, label: text, disabled: v.optional(text) });

export const codebookSummary = message({
  file: text,
  k: index,
  d: index,
  encoder: text,
  lambda: finite,
  iterations: index,
  /** the vectors k-means trained it on (absent where the file says neither those nor its build's counts) */
  trainingVectors: v.optional(index),
  /** set when they are few per code (engine/build/vectors-per-code.ts) */
  trainingWarning: v.optional(text),
  fingerprint: text,
  atlas: text,
  /** statistics of the selected data set's counts */
  tokens: finite,
  used: index,
  utilization: finite,
  perplexity: finite,
  dead: index,
});

export const coarseCell = message({
  /** its codes, ascending */
  codes: numbers('index'),
  /** tokens assigned to its codes */
  tokens: finite,
  /** its codes used at least once */
  used: index,
});

export const codebookView = message({
  summary: codebookSummary,
  /** per-code counts of the selected data set, length K */
  counts: numbers('finite'),
  /** heatmap cell -> code id (similar codes adjacent), a permutation of 0..K-1 */
  order: numbers('index'),
  datasets: v.array(datasetInfo),
  dataset: text,
  /** the coarse level, when the codebook has one: its cells with their codes and those codes' use
   *  in the selected data set, and the cells in display order (similar coarse centroids together) */
  coarse: v.nullable(message({ cells: v.array(coarseCell), order: numbers('index') })),
  /** how far training moved each code (engine trainingDrift): per-code L2 distances between its
   *  trainable and frozen rows, length K, or null with the reason when they share no space */
  drift: v.optional(message({ distances: v.nullable(numbers('finite')), note: text })),
});

export const codePatch = message({
  /** data: URI of the crop, upscaled for visibility */
  src: text,
  image: text,
  row: index,
  col: index,
});

export const codeNeighbour = message({ code: index, distance: finite, count: finite });

export const codeDetail = message({
  code: index,
  count: finite,
  share: finite,
  patches: v.array(codePatch),
  neighbours: v.array(codeNeighbour),
  note: v.optional(text),
  /** the build corpus' folder name when tokenizing it would show the patches (none is tokenized yet) */
  corpus: v.optional(text),
});

export const codebookProtocol = protocol(
  'codebook',
  {
    init: request(noParams, codebookView),
    selectDataset: request(message({ dataset: text }), codebookView),
    codeDetail: request(message({ code: index }), codeDetail),
    /** tokenizes the folder the codebook was built from with it (a Lab cell); answered when it ends */
    tokenizeCorpus: request(noParams, v.null()),
    /** asks for a tokens file and counts over it; null when the dialog was dismissed (a set made
     *  with another codebook is an error reply, the counts shown before staying as they are) */
    addTokensFile: request(noParams, v.nullable(codebookView)),
    /** a file that is no codebook: offers VS Code's other editors for it */
    reopenWith: request(noParams, v.null()),
  },
  {
    datasets: message({ datasets: v.array(datasetInfo) }),
    /** the codebook file was rewritten (Build, Refine): ask for the view again */
    fileChanged: noParams,
  },
);

export type CodebookSummary = v.InferOutput<typeof codebookSummary>;
export type CodebookView = v.InferOutput<typeof codebookView>;
export type DatasetInfo = v.InferOutput<typeof datasetInfo>;
export type CodePatch = v.InferOutput<typeof codePatch>;
export type CodeNeighbour = v.InferOutput<typeof codeNeighbour>;
export type CodeDetail = v.InferOutput<typeof codeDetail>;
export type CoarseCellView = v.InferOutput<typeof coarseCell>;

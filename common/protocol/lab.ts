// The Lab view's messages: the notebook of runs (cells) and the actions on them.
import * as v from 'valibot';
import { dictionary, finite, gridShape, message, noParams, numbers, protocol, request, text } from './shared.js';

export const labKind = v.picklist(['build', 'tokenize', 'decode', 'refine', 'demo', 'generate']);
export const labStatus = v.picklist(['running', 'done', 'failed', 'cancelled']);

const values = dictionary(v.union([text, finite]));

export const labCell = message({
  id: text,
  kind: labKind,
  status: labStatus,
  title: text,
  startedAt: text,
  finishedAt: v.optional(text),
  /** file and folder paths the run read */
  inputs: dictionary(text),
  params: values,
  progress: v.optional(message({ done: finite, total: finite, message: v.optional(text) })),
  metrics: v.optional(values),
  /** small PNG data: URIs (kept with the workspace, so thumbnails only) */
  thumbnails: v.optional(v.array(text)),
  tokenPreview: v.optional(message({ grid: gridShape, ids: numbers('index') })),
  files: v.optional(v.array(text)),
  /** a finished run's caveat: what its numbers do not mean (a build with few vectors per code) */
  warning: v.optional(text),
  error: v.optional(text),
});

const cellRef = message({ cell: text });

export const labProtocol = protocol(
  'lab',
  {
    init: request(noParams, v.array(labCell)),
    /** starts a new run of that kind (answered at once: the run reports through its cell) */
    run: request(message({ kind: labKind }), v.null()),
    rerun: request(cellRef, v.null()),
    remove: request(cellRef, v.null()),
    open: request(cellRef, v.null()),
    cancel: request(cellRef, v.null()),
  },
  {
    cells: message({ cells: v.array(labCell) }),
  },
);

export type LabKind = v.InferOutput<typeof labKind>;
export type LabStatus = v.InferOutput<typeof labStatus>;
export type LabCell = v.InferOutput<typeof labCell>;

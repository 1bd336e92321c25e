// The Lab view's messages: the notebook of runs (cells) and the actions on them.
import * as v from 'valibot';
import { dictionary, finite, gridShape, message, noParams, numbers, protocol, request, text } from './shared.js';

export const labKind = v.picklist(['build', 'tokenize', 'decode', 'refine', 'demo', 'generate', 'fit']);
export const labStatus = v.picklist(['running', 'done', 'failed', 'cancelled']);

const values = dictionary(v.union([text, finite]));

/** An array task (1-based), the merge step after it, or a plan's task by name ('partition-3'). */
const slurmTaskId = v.union([finite, text]);

/** A run on Slurm: its job folder and each task's state, as the folder's status files and the
 *  queue say (the same for every job over a job folder: tokenize, build). */
export const slurmView = message({
  /** the job folder (`<out>/.slurm`): a reloaded window re-attaches to the run from it */
  folder: text,
  /** the Slurm jobs of the last submission: the array and the merge, or a plan's chain */
  jobs: v.array(finite),
  tasks: v.array(message({
    task: slurmTaskId,
    state: v.picklist(['pending', 'running', 'done', 'failed']),
    job: text,
    shards: finite,
    images: v.optional(finite),
    error: v.optional(text),
    /** a failed task's log's last lines */
    tail: v.optional(text),
  })),
});

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
  /** what a re-run needs that the cell does not show (which grid of a set, the painted cells) */
  replay: v.optional(values),
  progress: v.optional(message({ done: finite, total: finite, message: v.optional(text) })),
  metrics: v.optional(values),
  /** small PNG data: URIs (kept with the workspace, so thumbnails only) */
  thumbnails: v.optional(v.array(text)),
  tokenPreview: v.optional(message({ grid: gridShape, ids: numbers('index') })),
  files: v.optional(v.array(text)),
  /** a finished run's caveat: what its numbers do not mean (a build with few vectors per code) */
  warning: v.optional(text),
  error: v.optional(text),
  /** a run submitted to Slurm */
  slurm: v.optional(slurmView),
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
    /** opens a Slurm task's log (the host finds it in the cell's job folder) */
    log: request(message({ cell: text, task: slurmTaskId }), v.null()),
  },
  {
    cells: message({ cells: v.array(labCell) }),
  },
);

export type LabKind = v.InferOutput<typeof labKind>;
export type LabStatus = v.InferOutput<typeof labStatus>;
export type LabCell = v.InferOutput<typeof labCell>;
export type SlurmView = v.InferOutput<typeof slurmView>;

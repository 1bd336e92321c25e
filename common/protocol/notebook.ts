// What the notebook renderer is given: token JSON as `unicode2 tokenize` writes it (one grid, or
// {results: [...]}), output by a Jupyter kernel under the mime type below, optionally with the
// photo embedded by the Python side as a data: URI in `preview`. Other fields are allowed (a
// file format grows), the known ones are checked.
import * as v from 'valibot';
import { gridShape, numbers, plainObject, text } from './shared.js';

/** package.json's notebookRenderer declares it too (test/unit/manifest.test.ts checks they agree). */
export const TOKENS_MIME = 'application/vnd.unicode2.tokens+json';

export const notebookTokenGrid = v.pipe(
  plainObject,
  v.object({
    image: v.optional(text),
    grid: gridShape,
    ids: numbers('index'),
    codebook: v.optional(text),
    encoder: v.optional(text),
    /** data:image/…;base64,… of the photo, added by the notebook */
    preview: v.optional(v.pipe(text, v.startsWith('data:image/'))),
  }),
  v.check((g) => g.ids.length === g.grid[0] * g.grid[1], (issue) => `Invalid length: grid [${String((issue.input as { grid: unknown }).grid)}] needs rows x cols ids`),
);

export const notebookTokens = v.union([notebookTokenGrid, v.pipe(plainObject, v.object({ results: v.pipe(v.array(notebookTokenGrid), v.minLength(1)) }))]);

export type NotebookTokenGrid = v.InferOutput<typeof notebookTokenGrid>;

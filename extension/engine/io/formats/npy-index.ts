// A .npy array with its index beside it, `<file>.index.json`: which images the rows are, their
// grid and where they came from. Two outputs take this form — a token data set (tokenize.ts:
// int32 [N, L], one row per image) and `unicode2 embed`'s embeddings (float32 [N*L, d], L rows per
// image) — and both are written and read here: the pair is written so that a failure leaves the
// previous pair (writeFilesAtomic, data first), and the index records the data file's size and
// sha256, so a data file and an index that do not belong together (a write killed between its two
// renames, a file copied over) are told apart on read instead of misread.
//
// The embedding corpus's manifest.json (corpus.ts) is not one of these: it indexes many shards,
// grows shard by shard while an extraction runs so that an interrupted one resumes, and is
// rewritten after each shard, where this pair is written once, whole. What the three share —
// bounded JSON reads and atomic writes — is files.ts and atomic-write.ts.
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { UserError } from '../../../../common/errors.js';
import { writeFilesAtomic } from '../atomic-write.js';
import { openRegularFile, readExactly, readJsonFile } from '../files.js';
import { MAX_JSON_BYTES } from '../../core/limits.js';
import { decodeNpy, encodeNpy, type NpyArray } from './npy.js';

/** What every index records about the data file it was written with (absent in indexes of
 *  older versions, whose pairs are then read unchecked). */
export interface DataCheck {
  /** size in bytes of the .npy */
  dataBytes?: number;
  /** sha256 (hex) of the .npy */
  dataSha256?: string;
}

export function indexPathOf(npyPath: string): string {
  return `${npyPath}.index.json`;
}

/** A .npy's index, parsed but not yet validated. A problem names the index file alone: its name
 *  already says which data file it indexes (naming both repeated the path). */
export function readNpyIndex(npyPath: string, what: string): Promise<unknown> {
  return readJsonFile(indexPathOf(npyPath), `the ${what}'s index`, MAX_JSON_BYTES);
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The data check of a file's bytes (for files an index names beside its own data file). */
export function dataCheckOf(bytes: Uint8Array): Required<DataCheck> {
  return { dataBytes: bytes.length, dataSha256: sha256(bytes) };
}

/** Writes `array` to `path` and `index` (plus the data check) to its index, as one pair; the
 *  files in `also` (which the index names, with their own data checks) are written with them,
 *  before them. */
export async function writeIndexedNpy<T extends object>(path: string, array: NpyArray, index: T, also: { path: string; data: Uint8Array }[] = []): Promise<T & Required<DataCheck>> {
  const npy = encodeNpy(array);
  const full = { ...index, ...dataCheckOf(npy) };
  await writeFilesAtomic([
    ...also,
    { path, data: npy },
    { path: indexPathOf(path), data: JSON.stringify(full, null, 2) + '\n' },
  ]);
  return full;
}

export interface IndexedRead<T> {
  /** what the pair is, for messages: "token data set" */
  what: string;
  /** what to do when the pair does not belong together: "tokenize again" */
  redo: string;
  /** checks the parsed index (throws a UserError naming the index file) */
  validate(doc: unknown, indexPath: string): T;
}

/** Reads a pair written by writeIndexedNpy: the index (validated), then the data file, checked
 *  against the index's size before it is read and its sha256 after. */
export async function readIndexedNpy<T extends DataCheck>(path: string, how: IndexedRead<T>): Promise<{ array: NpyArray; index: T }> {
  const indexPath = indexPathOf(path);
  const index = how.validate(await readNpyIndex(path, how.what), indexPath);
  return { array: await readCheckedNpy(path, indexPath, index, how), index };
}

/** A data file an index names, checked against the index's size before it is read and its
 *  sha256 after. */
export async function readCheckedNpy(path: string, indexPath: string, index: DataCheck, how: Pick<IndexedRead<unknown>, 'what' | 'redo'>): Promise<NpyArray> {
  const file = `a ${how.what}`;
  if ((index.dataBytes !== undefined && !Number.isSafeInteger(index.dataBytes)) || (index.dataSha256 !== undefined && typeof index.dataSha256 !== 'string')) {
    throw new UserError(`${indexPath}: "dataBytes" must be a whole number and "dataSha256" a string`);
  }
  // the index sits beside the data file: its name is enough (its full path repeated the folder)
  const mismatch = (found: string) =>
    new UserError(`${path} does not belong to its index ${basename(indexPath)} (the data file has ${found}): an interrupted write or a file copied over; ${how.redo}`);
  const { handle, size } = await openRegularFile(path, file);
  let bytes: Uint8Array;
  try {
    if (index.dataBytes !== undefined && size !== index.dataBytes) throw mismatch(`${size} bytes, the index says ${index.dataBytes}`);
    bytes = new Uint8Array(size);
    await readExactly(handle, bytes, 0, path, file);
  } finally {
    await handle.close();
  }
  if (index.dataSha256 !== undefined && sha256(bytes) !== index.dataSha256) throw mismatch('a different sha256 than its index records');
  return decodeNpy(bytes, path);
}

// The AR prior's numbers from files (engine/generate/ar/): mutated unicode2.json sidecars and
// config.json files are refused with one line, or give layouts and ranges within the limits that
// size its arrays and loops; never an exception of another kind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UserError } from '../../common/errors.js';
import { MAX_AR_HEADS, MAX_AR_HEAD_DIM, MAX_AR_LAYERS, MAX_AR_PREFIX, MAX_AR_VOCAB, MAX_GRID_SIDE } from '../../extension/engine/core/limits.js';
import { openArModel, parseSidecar, promptRows, readArFolder, readLayout, type ArModel } from '../../extension/engine/generate/ar/index.js';
import { writeArFolder } from '../helpers/ar-model.js';
import { Mutator, type Json } from '../helpers/mutate.js';

const SEED = 1717;
const SIDECAR = {
  image_token_offset: 2, num_image_tokens: 24, grid: [4, 5], codebook: 'feedfacecafebeef',
  condition: { type: 'class', token_offset: 26, num_classes: 4, null_token: 30 }, class_names: ['a', 'b', 'c', 'd'], prefix: [1],
};
let dir: string;
let model: ArModel;

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'u2-ar-fuzz-'));
  await writeArFolder(dir, { vocab: 32, hidden: 16, heads: 2, layers: 2, cache: true }, SIDECAR);
  model = await openArModel(await readArFolder(dir), { device: 'cpu' });
});
after(async () => {
  await model.session.release();
  await fs.rm(dir, { recursive: true, force: true });
});

function oneLineUserError(err: unknown, label: string): void {
  assert.ok(err instanceof UserError, `${label}: ${err instanceof Error ? err.stack : String(err)}`);
  assert.ok(!err.message.includes('\n'), `${label}: ${err.message}`);
}

const whole = (n: number, lo: number, hi: number) => Number.isInteger(n) && n >= lo && n <= hi;

test('mutated unicode2.json: refused in one line, or ranges within the limits that do not overlap (3,000)', () => {
  const m = new Mutator(SEED);
  let accepted = 0;
  for (let i = 0; i < 3000; i++) {
    let doc = SIDECAR as unknown as Json;
    for (let n = 1 + m.int(3); n > 0; n--) doc = m.json(doc);
    const label = `case ${i}: ${JSON.stringify(doc).slice(0, 200)}`;
    try {
      if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) continue;
      const s = parseSidecar(doc as Record<string, unknown>, 'unicode2.json');
      accepted++;
      assert.ok(whole(s.imageTokenOffset, 0, MAX_AR_VOCAB) && whole(s.numImageTokens, 1, MAX_AR_VOCAB - s.imageTokenOffset), label);
      assert.ok(s.grid.every((g) => whole(g, 1, MAX_GRID_SIDE)) && s.prefix.length <= MAX_AR_PREFIX, label);
      if (s.condition.type === 'class') {
        const { tokenOffset: c0, numClasses: n, nullToken: u } = s.condition;
        assert.ok(c0 + n <= MAX_AR_VOCAB && u < MAX_AR_VOCAB, label);
        assert.ok(u < c0 || u >= c0 + n, label);
        assert.ok(promptRows(s, n - 1, true).every((r) => r.length === s.prefix.length + 1), label);
      } else {
        assert.ok(s.prefix.length > 0, label);
      }
    } catch (err) {
      oneLineUserError(err, label);
    }
  }
  assert.ok(accepted > 100, `only ${accepted} mutants parsed: the mutations are too destructive to test acceptance`);
});

test('mutated config.json: the layout is refused in one line, or its sizes are within the limits (2,000)', () => {
  const m = new Mutator(SEED + 1);
  const config = { num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 2, head_dim: 8, hidden_size: 16, vocab_size: 32, max_position_embeddings: 64 };
  for (let i = 0; i < 2000; i++) {
    let doc = config as unknown as Json;
    for (let n = 1 + m.int(3); n > 0; n--) doc = m.json(doc);
    const label = `case ${i}: ${JSON.stringify(doc).slice(0, 200)}`;
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) continue;
    try {
      const l = readLayout({ ...model.folder, config: doc as Record<string, unknown> }, model.session);
      assert.ok(whole(l.layers, 1, MAX_AR_LAYERS) && whole(l.heads, 1, MAX_AR_HEADS) && whole(l.headDim, 1, MAX_AR_HEAD_DIM), label);
      assert.ok(l.vocab === null || whole(l.vocab, 26, MAX_AR_VOCAB), label);
      assert.ok(l.maxPositions === null || whole(l.maxPositions, 1, 2 ** 31 - 1), label);
    } catch (err) {
      oneLineUserError(err, label);
    }
  }
});

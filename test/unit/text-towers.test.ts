// Text towers: the tokenizer (@huggingface/tokenizers on real tokenizer.json files whose vocabulary
// and merges the helper writes, so the ids are derived by hand in the comments here), padding,
// truncation and the attention mask as transformers applies them per family, tiny real ONNX text
// models (CLIP, SigLIP, a combined image+text model), the hub fetching the text files, `unicode2
// text`, `tokenize --pooled` and the ranking the token set editor's search shows, on a case whose
// answer is known by construction.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ComputeBackend } from '../../native-gpu/backend.js';
import { createCpuBackend } from '../../native-gpu/cpu/index.js';
import { UserError } from '../../common/errors.js';
import { openTextTokenizer } from '../../extension/engine/embed/encoders/text-tokenizer.js';
import { openTextEncoder } from '../../extension/engine/embed/encoders/text.js';
import { readPooledEmbeddings, readTokenGrids } from '../../extension/engine/codebook/token-files.js';
import { rankByText, sharedCodes } from '../../extension/engine/search/text-search.js';
import { FAMILY_CONFIGS, writeExportFolder } from '../helpers/siglip-model.js';
import { BLUE, CLIP_TOKENIZER, CLIP_VOCAB, D, GREEN, KITE, RED, siglipFolder, signed, solid, textTower, writeTextSide } from '../helpers/text-model.js';
import { startHubServer } from '../helpers/hub-server.js';
import { cliRunner } from '../helpers/cli.js';
import { sampleEntries, writeTar } from '../helpers/shards.js';
import { readTokenSet } from '../../extension/panels/token-set.js';
import { TokenSetSearcher } from '../../extension/panels/token-set-search.js';
import type { Precision } from '../../extension/engine/index.js';

const isUserError = (message: RegExp) => (e: Error) => e instanceof UserError && message.test(e.message) && !e.message.includes('\n');

let backend: ComputeBackend;
let tmp: string;
const { cliJson, assertUserError } = cliRunner(() => tmp);
test.before(async () => {
  backend = await createCpuBackend();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'text-towers-'));
});
test.after(async () => {
  await backend.dispose();
  await fs.rm(tmp, { recursive: true, force: true });
});


/** A CLIP folder: onnx/text_model.onnx (text_embeds, attention_mask), CLIP's tokenizer files. */
async function clipFolder(dir: string, tokenizerConfig: object = { model_max_length: 77, pad_token: '<|endoftext|>' }): Promise<string> {
  const c = CLIP_VOCAB;
  const model = textTower({
    vocab: 29, d: D, output: 'text_embeds', mask: true,
    rows: { [c['red</w>']!]: signed(D, RED, [GREEN, BLUE]), [c['green</w>']!]: signed(D, GREEN, [RED, BLUE]), [c['kite</w>']!]: signed(D, KITE), [c['<|endoftext|>']!]: signed(D, 2) },
  });
  await writeTextSide(dir, model, { modelPath: 'onnx/text_model.onnx', tokenizer: CLIP_TOKENIZER, tokenizerConfig, textConfig: { model_type: 'clip', text_config: { model_type: 'clip_text_model', max_position_embeddings: 77 } } });
  return dir;
}

test('CLIP tokenizer: ids derived by hand from its merges, padding to the longest with a mask, truncation keeping <|endoftext|>', async () => {
  const dir = await clipFolder(path.join(tmp, 'clip-tok'), { model_max_length: 5, pad_token: '<|endoftext|>' });
  const files = { tokenizer: path.join(dir, 'tokenizer.json'), tokenizerConfig: path.join(dir, 'tokenizer_config.json'), specialTokens: null, config: path.join(dir, 'config.json') };
  const tk = await openTextTokenizer(files);
  assert.deepEqual(tk.tokenization, { padding: 'longest', maxLength: 5, padId: 28, family: 'clip' });
  // "A Red kite": lowercased; a</w> = 12; r e d</w> -> (r e) re d</w> -> red</w> = 17;
  // k i t e</w> -> (k i) ki t e</w> -> (t e</w>) ki te</w> -> kite</w> = 26; between 27 and 28
  assert.deepEqual(tk.encode(['A Red kite']), { ids: [[27, 12, 17, 26, 28]], mask: [[1, 1, 1, 1, 1]] });
  // g r e e n</w> -> g re e n</w> -> gre e n</w> -> gre en</w> -> green</w> = 20; padded with 28
  assert.deepEqual(tk.encode(['green', 'a red']), { ids: [[27, 20, 28, 28], [27, 12, 17, 28]], mask: [[1, 1, 1, 0], [1, 1, 1, 1]] });
  // 7 tokens cut to 5: the text's first 3, and the end token kept as transformers keeps it
  assert.deepEqual(tk.encode(['a red green blue kite']).ids, [[27, 12, 17, 20, 28]]);
});

test('SigLIP tokenizer: Unigram pieces, </s> appended, padded to max_length with the pad token special_tokens_map.json names', async () => {
  const dir = await siglipFolder(path.join(tmp, 'siglip-tok'));
  const tk = await openTextTokenizer({ tokenizer: path.join(dir, 'tokenizer.json'), tokenizerConfig: path.join(dir, 'tokenizer_config.json'), specialTokens: path.join(dir, 'special_tokens_map.json'), config: path.join(dir, 'config.json') });
  // model_type 'siglip' and no padding in tokenizer.json: max_length, as SigLIP was trained
  assert.deepEqual(tk.tokenization, { padding: 'max_length', maxLength: 8, padId: 1, family: 'siglip' });
  // ▁a = 3, ▁red = 4 (one piece, -3, beats ▁re + d, -9), ▁kite = 7, </s> = 1, then </s> padding
  assert.deepEqual(tk.encode(['A red kite']), { ids: [[3, 4, 7, 1, 1, 1, 1, 1]], mask: [[1, 1, 1, 1, 0, 0, 0, 0]] });
  // 'rd' has no whole piece: ▁ r d (8, 9, 11)
  assert.deepEqual(tk.encode(['rd']).ids, [[8, 9, 11, 1, 1, 1, 1, 1]]);
  // 9 words cut to 7 pieces and </s>
  assert.deepEqual(tk.encode(['a a a a a a a a a']).ids, [[3, 3, 3, 3, 3, 3, 3, 1]]);
});

test('text embeddings are the model output for the tokens: CLIP masks its padding, SigLIP runs padded to 8', async () => {
  const clip = await openTextEncoder(await clipFolder(path.join(tmp, 'clip')), backend);
  try {
    assert.equal(clip.output, 'text_embeds');
    const [one, batch] = [await clip.embed(['a red kite']), await clip.embed(['a red kite', 'green green green green'])];
    // E[red] + E[kite] + E[<|endoftext|>] (E[a] and E[<|startoftext|>] are zero)
    const want = new Float32Array(D);
    want[RED] = 1; want[GREEN] = -1; want[BLUE] = -1; want[KITE] = 1; want[2] = 1;
    assert.deepEqual(one.data, want);
    assert.deepEqual(batch.data.subarray(0, D), want, 'the padding of the shorter text is masked');
    assert.equal(batch.data[GREEN + D], 4);
  } finally {
    await clip.dispose();
  }
  const siglip = await openTextEncoder(await siglipFolder(path.join(tmp, 'siglip')), backend);
  try {
    assert.equal(siglip.output, 'pooler_output');
    const m = await siglip.embed(['blue', 'red kite']);
    assert.deepEqual([m.rows, m.cols], [2, D]);
    assert.deepEqual([m.data[BLUE], m.data[RED], m.data[D + RED], m.data[D + KITE], m.data[D + BLUE]], [1, -1, 1, 1, -1]);
  } finally {
    await siglip.dispose();
  }
});

test('a combined image+text model.onnx gives its text_embeds (a blank image beside); a model without a text tower is one line', async () => {
  const dir = path.join(tmp, 'combined');
  const model = textTower({ vocab: 29, d: 4, output: 'text_embeds', mask: true, rows: { 17: [1, 2, 3, 4] }, combined: { size: 8 } });
  await writeTextSide(dir, model, { modelPath: 'onnx/model.onnx', tokenizer: CLIP_TOKENIZER, tokenizerConfig: { model_max_length: 77, pad_token: '<|endoftext|>' } });
  const e = await openTextEncoder(dir, backend);
  try {
    assert.deepEqual(Array.from((await e.embed(['red', 'a red'])).data), [1, 2, 3, 4, 1, 2, 3, 4]);
  } finally {
    await e.dispose();
  }
  const vision = path.join(tmp, 'vision-only');
  await writeExportFolder(vision, { size: 16, patch: 4 }, { modelPath: 'onnx/vision_model.onnx', ...FAMILY_CONFIGS.siglip(4, 16) });
  await assert.rejects(openTextEncoder(vision, backend), isUserError(/has no text tower: no text model \(looked for .*onnx\/text_model\.onnx.*\) and no tokenizer\.json/));
  await fs.writeFile(path.join(vision, 'tokenizer.json'), JSON.stringify(CLIP_TOKENIZER));
  await fs.copyFile(path.join(vision, 'onnx/vision_model.onnx'), path.join(vision, 'onnx/model.onnx'));
  await assert.rejects(openTextEncoder(vision, backend), isUserError(/no text tower: expected input 'input_ids'.*found 'pixel_values'/));
});

test('a Hugging Face id: the text model and tokenizer files are fetched into the cache when the text tower is asked for; offline, a snapshot without them is one line', async () => {
  const src = await clipFolder(path.join(tmp, 'hub-src'));
  const files: Record<string, Uint8Array> = {};
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'onnx/text_model.onnx']) files[f] = await fs.readFile(path.join(src, f));
  files['onnx/vision_model.onnx'] = new Uint8Array([1, 2, 3]);
  const hub = await startHubServer({ 'org/clip': { commit: 'c'.repeat(40), files } });
  const saved = { ...process.env };
  process.env.HF_HUB_CACHE = path.join(tmp, 'hub-cache');
  process.env.HF_ENDPOINT = hub.endpoint;
  delete process.env.HF_HUB_OFFLINE;
  try {
    const e = await openTextEncoder('org/clip', backend);
    await e.dispose();
    assert.deepEqual(e.model, { file: 'onnx/text_model.onnx', repo: 'org/clip', revision: 'c'.repeat(40), precision: 'fp32' });
    const snapshot = path.join(process.env.HF_HUB_CACHE, 'models--org--clip', 'snapshots', 'c'.repeat(40));
    assert.deepEqual((await fs.readdir(snapshot, { recursive: true })).sort(), ['config.json', 'onnx', 'onnx/text_model.onnx', 'tokenizer.json', 'tokenizer_config.json']);
    assert.ok(!hub.seen.some((s) => s.url.includes('vision_model')), 'the vision tower is not fetched for text');

    // offline, a snapshot holding the vision tower alone: one line naming what is missing and how to get it
    process.env.HF_HUB_OFFLINE = '1';
    const vision = path.join(process.env.HF_HUB_CACHE, 'models--org--vision', 'snapshots', 'e'.repeat(40));
    await writeExportFolder(vision, { size: 16, patch: 4 }, { modelPath: 'onnx/vision_model.onnx', ...FAMILY_CONFIGS.siglip(4, 16) });
    await fs.mkdir(path.join(process.env.HF_HUB_CACHE, 'models--org--vision', 'refs'));
    await fs.writeFile(path.join(process.env.HF_HUB_CACHE, 'models--org--vision', 'refs', 'main'), 'e'.repeat(40));
    await assert.rejects(openTextEncoder('org/vision', backend), (e: Error) =>
      isUserError(/^org\/vision \(snapshot eeeeeeeeeeee in the Hugging Face cache\) has no text tower: no text model .* and no tokenizer\.json; .*huggingface-cli download org\/vision onnx\/text_model\.onnx tokenizer\.json/)(e));
  } finally {
    for (const k of ['HF_HUB_CACHE', 'HF_ENDPOINT', 'HF_HUB_OFFLINE']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
    await hub.close();
  }
});

test('CLI: `text` prints or writes the embeddings; `tokenize --pooled` keeps pooled embeddings that rank the images by words', async () => {
  const model = await siglipFolder(path.join(tmp, 'cli-siglip'));
  const doc = await cliJson(['text', 'red', 'a blue kite', '--encoder', model]);
  assert.equal(doc.output, 'pooler_output');
  assert.deepEqual(doc.texts.map((t: { tokens: number[] }) => t.tokens), [[4, 1, 1, 1, 1, 1, 1, 1], [3, 6, 7, 1, 1, 1, 1, 1]]);
  assert.equal(doc.texts[0].embedding[RED], 1);
  const out = await cliJson(['text', 'red', 'green', '--encoder', model, '--out', 'words.npy']);
  assert.deepEqual(out.shape, [2, D]);
  await assertUserError(['text', 'red', '--encoder', path.join(tmp, 'cli-siglip', 'onnx')], /cli-siglip\/onnx has no text tower: no tokenizer\.json/);

  const images = path.join(tmp, 'colours');
  await fs.mkdir(images);
  await solid(path.join(images, 'a-red.png'), [255, 0, 0]);
  await solid(path.join(images, 'b-green.png'), [0, 255, 0]);
  await solid(path.join(images, 'c-blue.png'), [0, 0, 255]);
  // and 7 greys: more than one batch, so tokenize decodes in worker threads and keeps the order
  const greys = [0, 40, 80, 120, 160, 200, 240];
  for (const [i, level] of greys.entries()) await solid(path.join(images, `d-grey-${i}.png`), [level, level, level]);
  await cliJson(['build', '--images', images, '--encoder', model, '--k', '3', '--out', 'colours.safetensors']);
  const set = await cliJson(['tokenize', '--codebook', 'colours.safetensors', images, '--pooled', '--out', 'colours.tokens.npy']);
  assert.deepEqual(set.pooled, { file: 'colours.tokens.pooled.npy', shape: [10, D], output: 'pooler_output' });
  const pooled = (await readPooledEmbeddings(path.join(tmp, 'colours.tokens.npy')))!;
  assert.equal(pooled.record.output, 'pooler_output');
  // each image's row, in the set's order: 4 x its colour after SigLIP's normalization (red: 1, -1,
  // -1) on the three DC axes
  const levels = [[255, 0, 0], [0, 255, 0], [0, 0, 255], ...greys.map((g) => [g, g, g])];
  assert.deepEqual([pooled.embeddings.rows, pooled.embeddings.cols], [10, D]);
  levels.forEach((rgb, i) => {
    const row = [RED, GREEN, BLUE].map((a) => pooled.embeddings.data[i * D + a]!);
    rgb.forEach((v, c) => assert.ok(Math.abs(row[c]! - 4 * ((v / 255) * 2 - 1)) < 1e-4, `image ${i}: ${row}`));
  });

  const words = await openTextEncoder(model, backend);
  try {
    const grids = await readTokenGrids(path.join(tmp, 'colours.tokens.npy'));
    for (const [query, first] of [['a green kite', 1], ['blue', 2], ['red', 0]] as const) {
      const hits = rankByText(pooled.embeddings, (await words.embed([query])).data, 3);
      assert.equal(grids[hits[0]!.index]!.image, path.join(images, ['a-red.png', 'b-green.png', 'c-blue.png'][first]!));
      assert.equal(hits[0]!.index, first, `${query}: ${JSON.stringify(hits)}`);
      if (query === 'red') assert.ok(Math.abs(hits[0]!.score - 1) < 1e-5);
      const shared = sharedCodes(grids, hits.slice(0, 1), 5);
      assert.deepEqual(shared.map((s) => s.code), [...new Set(grids[first]!.ids)].sort((a, b) => a - b).slice(0, 5));
    }
  } finally {
    await words.dispose();
  }
  await assertUserError(['tokenize', '--codebook', 'colours.safetensors', images, '--pooled', '--out', 'colours.json'], /pooled embeddings are kept beside a token data set/);
  await cliJson(['build', '--images', images, '--encoder', 'dct', '--k', '2', '--out', 'dct.safetensors']);
  await assertUserError(['tokenize', '--codebook', 'dct.safetensors', images, '--pooled', '--out', 'dct.tokens.npy'], /encoder 'dct:224' gives no pooled image embedding \(a model output named image_embeds or pooler_output\)/);
  // a pooled file that is not the one the index names is refused, not misread
  const pooledFile = path.join(tmp, 'colours.tokens.pooled.npy');
  const bytes = await fs.readFile(pooledFile);
  bytes[bytes.length - 1]! ^= 1;
  await fs.writeFile(pooledFile, bytes);
  await assert.rejects(readPooledEmbeddings(path.join(tmp, 'colours.tokens.npy')), isUserError(/colours\.tokens\.pooled\.npy does not belong to its index .*a different sha256/));
});

test('tokenize --pooled over tar shards: each shard keeps its pooled rows, the manifest searches as the folder does; --pooled is part of the job', async () => {
  const model = await siglipFolder(path.join(tmp, 'shard-siglip'));
  const images = path.join(tmp, 'shard-colours');
  await fs.mkdir(images);
  const colours: [string, [number, number, number]][] = [['a-red', [255, 0, 0]], ['b-green', [0, 255, 0]], ['c-blue', [0, 0, 255]], ['d-grey', [128, 128, 128]]];
  for (const [key, rgb] of colours) await solid(path.join(images, `${key}.png`), rgb);
  await cliJson(['build', '--images', images, '--encoder', model, '--k', '3', '--out', 'shard-colours.safetensors']);
  await cliJson(['tokenize', '--codebook', 'shard-colours.safetensors', images, '--pooled', '--out', 'shard-colours.tokens.npy']);
  // the same images as two webdataset shards, two samples each, in key order
  const shards = path.join(tmp, 'colour-shards');
  await fs.mkdir(shards);
  for (const [n, pair] of [colours.slice(0, 2), colours.slice(2)].entries()) {
    writeTar(path.join(shards, `${n}.tar`), (await Promise.all(pair.map(async ([key]) => sampleEntries(key, { png: await fs.readFile(path.join(images, `${key}.png`)) })))).flat());
  }
  const run = (...more: string[]) => cliJson(['tokenize', '--codebook', 'shard-colours.safetensors', path.join(shards, '{0..1}.tar'), '--out', 'pooled-shards/', ...more]);
  assert.deepEqual(pick(await run('--pooled')), [2, 0, 4]);
  const manifest = path.join(tmp, 'pooled-shards', 'manifest.json');
  const outputs = JSON.parse(await fs.readFile(manifest, 'utf8')).shards.map((s: { outputs: string[] }) => s.outputs);
  assert.deepEqual(outputs, ['0', '1'].map((n) => [`${n}.tokens.npy`, `${n}.tokens.npy.index.json`, `${n}.tokens.pooled.npy`]));
  const folder = (await readPooledEmbeddings(path.join(tmp, 'shard-colours.tokens.npy')))!;
  const sharded = (await readPooledEmbeddings(manifest))!;
  assert.deepEqual([sharded.embeddings.rows, sharded.embeddings.cols, sharded.record.output], [4, D, 'pooler_output']);
  assert.deepEqual(Array.from(sharded.embeddings.data), Array.from(folder.embeddings.data));

  // the editor's search over the manifest ranks its images as over the folder's set
  const words = (encoder: string, precision: Precision) => openTextEncoder(encoder, backend, { precision });
  const ranked = async (file: string) => {
    const { grids } = await readTokenSet(file);
    const searcher = new TokenSetSearcher(file, words);
    try {
      assert.equal((await searcher.view()).textSearch?.d, D);
      const found = await searcher.search('a blue kite', grids, async (index) => ({ index, grid: grids[index]!.grid, ids: grids[index]!.ids, image: null }));
      return found.hits.map((h) => [path.basename(grids[h.grid.index]!.image!).replace(/\.png$/, ''), h.score.toFixed(5)]);
    } finally {
      await searcher.dispose();
    }
  };
  const byFolder = await ranked(path.join(tmp, 'shard-colours.tokens.npy'));
  assert.equal(byFolder[0]![0], 'c-blue');
  assert.deepEqual(await ranked(manifest), byFolder);

  // complete with the same options: skipped; without --pooled, then with it again: redone
  assert.deepEqual(pick(await run('--pooled')), [0, 2, 4]);
  assert.deepEqual(pick(await run()), [2, 0, 4]);
  assert.equal(await readPooledEmbeddings(manifest), null);
  assert.deepEqual(pick(await run()), [0, 2, 4]);
  assert.deepEqual(pick(await run('--pooled')), [2, 0, 4]);
  assert.deepEqual(Array.from((await readPooledEmbeddings(manifest))!.embeddings.data), Array.from(folder.embeddings.data));
  // an encoder without a pooled output: one line before any shard, not a failure per shard
  await cliJson(['build', '--images', images, '--encoder', 'dct', '--k', '2', '--out', 'shard-dct.safetensors']);
  await assertUserError(['tokenize', '--codebook', 'shard-dct.safetensors', path.join(shards, '{0..1}.tar'), '--out', 'dct-shards/', '--pooled'], /encoder 'dct:224' gives no pooled image embedding/);
  await assert.rejects(fs.stat(path.join(tmp, 'dct-shards', 'manifest.json')));
});

const pick = (summary: Record<string, unknown>) => [summary.done, summary.skipped, summary.images];

// `unicode2 text`
import { COMPUTE, ENCODER_MODEL, hubDownload, str, type Command } from '../command.js';
import { openTextEncoder, writeNpy, MAX_TEXTS, UserError, type Precision } from '../../engine/index.js';

export const text: Command = {
  spec: {
    name: 'text',
    summary: "Embed texts with a model's text tower (CLIP, SigLIP): float32 [texts, d], the model's pooled text output.",
    operands: { name: 'TEXTS', min: 1, max: MAX_TEXTS },
    options: {
      encoder: { kind: 'string', value: 'E', required: true, help: 'a model folder, its text model .onnx, or a Hugging Face id org/name[@revision] with a text model (onnx/text_model.onnx, or a combined onnx/model.onnx) and tokenizer.json' },
      precision: ENCODER_MODEL.precision!,
      out: { kind: 'string', value: 'FILE.npy', help: 'write the embeddings as float32 [texts, d] .npy; default: print them' },
      ...COMPUTE,
    },
    notes: [
      "The embeddings are the model's own output, not normalized: text_embeds (CLIP's projection, or a combined model's), else pooler_output (SigLIP).",
      'Texts are tokenized as the model\'s tokenizer files say: SigLIP pads to max_length (64), CLIP cuts at 77 tokens and masks its padding.',
    ],
  },
  async run(ctx) {
    const out = str(ctx.args, 'out');
    if (out && !/\.npy$/i.test(out)) throw new UserError(`the output must be an .npy file, got ${out}`, { cli: 'give --out FILE.npy', vscode: 'choose an .npy file' });
    const texts = ctx.args.operands;
    const precision = str(ctx.args, 'precision') as Precision | undefined;
    const encoder = await openTextEncoder(str(ctx.args, 'encoder')!, await ctx.backend(), { ...(precision && { precision }), download: hubDownload(ctx) });
    try {
      const m = await encoder.embed(texts, ctx.signal);
      const { ids } = encoder.tokenize(texts);
      const about = { d: m.cols, output: encoder.output, model: encoder.model, tokenization: encoder.tokenization, device: encoder.device };
      if (out) {
        await writeNpy(out, { shape: [m.rows, m.cols], dtype: 'float32', data: m.data });
        return { json: { out, shape: [m.rows, m.cols], ...about }, text: `wrote ${out} [${m.rows}, ${m.cols}] (${encoder.output})` };
      }
      const rows = texts.map((t, i) => ({ text: t, tokens: ids[i]!, embedding: Array.from(m.data.subarray(i * m.cols, (i + 1) * m.cols)) }));
      return { json: { texts: rows, ...about }, text: rows.map((r) => `${JSON.stringify(r.text)}\t${JSON.stringify(r.embedding)}`).join('\n') };
    } finally {
      await encoder.dispose();
    }
  },
};

// `unicode2 codebook import-trainable`: the trained half of the cascade into the codebook.
import { CODEBOOK, COMMON, fmt, str, type Command, type CommandGroup } from '../command.js';
import { readCodebook, readTrainableCheckpoint, trainingDrift, withOutputLock, withTrainable, writeCodebook, type TrainableImport } from '../../engine/index.js';

const importTrainable: Command = {
  spec: {
    name: 'codebook import-trainable',
    summary: "Write a training run's trainable codebook (and projector) from a safetensors checkpoint into the codebook; frozen stays byte for byte.",
    options: {
      from: { kind: 'string', value: 'CKPT', required: true, help: 'the checkpoint (.safetensors; F32, F16 or BF16 tensors)' },
      tensor: { kind: 'string', value: 'NAME', required: true, help: "the trainable codebook [K, d'] as the checkpoint names it, e.g. model.vq.trainable.weight" },
      projector: { kind: 'string', value: 'NAME', help: "the projector [d', c] as the checkpoint names it (default: keep the codebook's own, if any)" },
      codebook: CODEBOOK,
      out: { kind: 'string', value: 'FILE', help: 'output codebook (default: rewrite --codebook in place, atomically)' },
      ...COMMON,
    },
  },
  async run(ctx) {
    const cbPath = str(ctx.args, 'codebook')!;
    const out = str(ctx.args, 'out') ?? cbPath;
    const opts: TrainableImport = { from: str(ctx.args, 'from')!, tensor: str(ctx.args, 'tensor')!, projector: str(ctx.args, 'projector') };
    // Read, replace and rewrite as one job: another job writing the output meanwhile would be lost.
    return withOutputLock(out, 'import-trainable', async () => {
      const cb = await readCodebook(cbPath);
      const imported = await readTrainableCheckpoint(opts, cb.frozen.rows);
      const updated = withTrainable(cb, imported, opts);
      const fingerprint = await writeCodebook(out, updated);
      const { distances, note } = await trainingDrift({ ...updated, fingerprint });
      const drift = distances && { mean: distances.reduce((a, b) => a + b, 0) / distances.length, max: distances.reduce((a, b) => Math.max(a, b), 0) };
      const projector = imported.projector ? 'imported' : updated.projector ? 'kept' : 'none';
      const p = updated.projector;
      return {
        json: {
          out, k: cb.frozen.rows, d: cb.frozen.cols, trainable: [imported.trainable.rows, imported.trainable.cols], projector: p ? [p.rows, p.cols] : null,
          projectorSource: projector, dtypes: imported.dtypes, atlas: updated.meta.atlas, fingerprint, drift, driftNote: note,
        },
        text: `wrote ${out} (trainable [${imported.trainable.rows}, ${imported.trainable.cols}] from ${imported.dtypes.trainable}, projector ${projector}; fingerprint ${fingerprint} unchanged` +
          (drift ? `; drift from frozen: mean ${fmt(drift.mean)}, max ${fmt(drift.max)})` : ')'),
      };
    });
  },
};

export const codebook: CommandGroup = {
  name: 'codebook',
  summary: "Edit a codebook's trainable half: import the one a training run produced.",
  subcommands: { 'import-trainable': importTrainable },
};

// A vision model's config.json as transformers writes it: which family, its patch size, the input
// size its position embeddings fix (SigLIP, CLIP; DINOv2 interpolates them) and the tokens before
// the patch grid in its hidden states (CLIP and DINOv2: a CLS token; DINOv2 with registers: then
// num_register_tokens registers; SigLIP: none). A composite config (SigLIP, CLIP, LLaVA-style)
// keeps these in its vision_config.
import { UserError } from '../../../../common/errors.js';
import { readJsonFile } from '../../io/files.js';
import { MAX_CONFIG_BYTES } from '../../core/limits.js';

export interface VisionConfig {
  /** the vision tower's model_type */
  family: string;
  patch: number;
  /** the input side the position embeddings are made for, or null where the model interpolates */
  imageSize: number | null;
  /** tokens before the patch grid */
  leading: number;
}

interface Family {
  leading(config: Record<string, unknown>, file: string): number;
  fixedSize: boolean;
}

const SIGLIP: Family = { leading: () => 0, fixedSize: true };
const CLIP: Family = { leading: () => 1, fixedSize: true };
const registers = (config: Record<string, unknown>, file: string, fallback: number): number => {
  const n = config.num_register_tokens ?? fallback;
  if (!Number.isInteger(n) || (n as number) < 0 || (n as number) > 64) throw new UserError(`${file}: 'num_register_tokens' must be a whole number from 0 to 64, found ${JSON.stringify(n)}`);
  return n as number;
};
const FAMILIES: Record<string, Family> = {
  siglip: SIGLIP,
  siglip_vision_model: SIGLIP,
  clip: CLIP,
  clip_vision_model: CLIP,
  dinov2: { leading: (c, f) => 1 + registers(c, f, 0), fixedSize: false },
  dinov2_with_registers: { leading: (c, f) => 1 + registers(c, f, 4), fixedSize: false },
};

/** The vision part of a config: its vision_config when it has one. */
function visionPart(raw: Record<string, unknown>): Record<string, unknown> {
  const vision = raw.vision_config;
  if (typeof vision !== 'object' || vision === null || Array.isArray(vision)) return raw;
  const v = vision as Record<string, unknown>;
  return v.model_type === undefined ? { ...v, model_type: raw.model_type } : v;
}

export async function readVisionConfig(file: string): Promise<VisionConfig> {
  const raw = (await readJsonFile(file, 'model config', MAX_CONFIG_BYTES)) as Record<string, unknown>;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UserError(`${file}: model config must be a JSON object`);
  const vision = visionPart(raw);
  const family = vision.model_type;
  if (typeof family !== 'string' || !Object.hasOwn(FAMILIES, family)) {
    const naflex = family === 'siglip2' || family === 'siglip2_vision_model' ? " (SigLIP2's variable-resolution NaFlex models; the fixed-resolution SigLIP2 models are 'siglip')" : '';
    throw new UserError(`${file}: model_type ${JSON.stringify(family)} is not supported${naflex}; supported: ${Object.keys(FAMILIES).join(', ')}`);
  }
  const { patch_size: patch, image_size: imageSize } = vision;
  if (!Number.isInteger(patch) || (patch as number) < 1) throw new UserError(`${file}: 'patch_size' must be a whole number of pixels, found ${JSON.stringify(patch)}`);
  const spec = FAMILIES[family]!;
  const fixed = spec.fixedSize && Number.isInteger(imageSize) && (imageSize as number) > 0 ? (imageSize as number) : null;
  return { family, patch: patch as number, imageSize: fixed, leading: spec.leading(vision, file) };
}

/** Throws unless the model's output agrees with its config: `tokens` per image over an input of
 *  `inputSize`. */
export function checkAgainstModel(file: string, config: VisionConfig, inputSize: [number, number], tokens: number): void {
  const [h, w] = inputSize;
  const { family, patch, imageSize, leading } = config;
  if (imageSize !== null && (h !== imageSize || w !== imageSize)) {
    throw new UserError(`${file}: config.json (${family}) is made for ${imageSize}x${imageSize} inputs but preprocessor_config.json gives ${h}x${w}`);
  }
  // whole patches only, as the model's patch convolution takes them (384 px at patch 14: 27)
  const expected = leading + Math.floor(h / patch) * Math.floor(w / patch);
  if (tokens !== expected) {
    throw new UserError(`${file}: config.json (${family}, patch ${patch}, ${leading} leading token${leading === 1 ? '' : 's'}) means ${expected} tokens for a ${h}x${w} input, but the model gives ${tokens}`);
  }
}

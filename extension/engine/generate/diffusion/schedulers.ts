// The two samplers of the diffusion decoder, DDIM and Euler discrete, exactly as diffusers'
// DDIMScheduler and EulerDiscreteScheduler define them (set_timesteps, scale_model_input, step,
// init_noise_sigma), configured from a diffusers `scheduler/scheduler_config.json`. A config
// written for another scheduler class (PNDM, LMS...) works as it does with
// `DDIMScheduler.from_config(...)`: the keys this class knows are taken, the others ignored, and
// missing keys get this class's defaults. Options that change the numbers and are not implemented
// here (dynamic thresholding, zero-terminal-SNR rescaling, Karras sigmas...) are refused by name
// rather than ignored.
//
// Numbers: the schedule (betas, alphas_cumprod, sigmas) is computed in f64; latents are f32 arrays
// and each update is computed in f64 per element and stored as f32.
import { UserError } from '../../../../common/errors.js';
import type { SchedulerKind } from '../../core/defaults.js';
import { MAX_TRAIN_TIMESTEPS } from '../../core/limits.js';

export type { SchedulerKind };
export type BetaSchedule = 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';
export type PredictionType = 'epsilon' | 'v_prediction' | 'sample';
export type TimestepSpacing = 'leading' | 'linspace' | 'trailing';

export interface SchedulerConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: BetaSchedule;
  /** explicit betas instead of a schedule (diffusers' trained_betas) */
  trained_betas: number[] | null;
  prediction_type: PredictionType;
  timestep_spacing: TimestepSpacing;
  steps_offset: number;
  /** DDIM only */
  set_alpha_to_one: boolean;
  clip_sample: boolean;
  clip_sample_range: number;
}

/** Each class's constructor defaults, as in diffusers. */
const DEFAULTS: Record<SchedulerKind, SchedulerConfig> = {
  ddim: {
    num_train_timesteps: 1000, beta_start: 0.0001, beta_end: 0.02, beta_schedule: 'linear', trained_betas: null,
    prediction_type: 'epsilon', timestep_spacing: 'leading', steps_offset: 0, set_alpha_to_one: true, clip_sample: true, clip_sample_range: 1,
  },
  euler: {
    num_train_timesteps: 1000, beta_start: 0.0001, beta_end: 0.02, beta_schedule: 'linear', trained_betas: null,
    prediction_type: 'epsilon', timestep_spacing: 'linspace', steps_offset: 0, set_alpha_to_one: true, clip_sample: false, clip_sample_range: 1,
  },
};

/** Config keys that change the result when set away from these values, and are not implemented. */
const UNSUPPORTED: Record<SchedulerKind, Record<string, unknown>> = {
  ddim: { thresholding: false, rescale_betas_zero_snr: false },
  euler: {
    rescale_betas_zero_snr: false, use_karras_sigmas: false, use_exponential_sigmas: false, use_beta_sigmas: false,
    interpolation_type: 'linear', timestep_type: 'discrete', final_sigmas_type: 'zero', sigma_min: null, sigma_max: null,
  },
};

const CHOICES = {
  beta_schedule: ['linear', 'scaled_linear', 'squaredcos_cap_v2'],
  prediction_type: { ddim: ['epsilon', 'v_prediction', 'sample'], euler: ['epsilon', 'v_prediction', 'sample'] },
  timestep_spacing: ['leading', 'linspace', 'trailing'],
} as const;

/** The scheduler settings for `kind` from a scheduler_config.json object (any class's). */
export function schedulerConfig(kind: SchedulerKind, raw: Record<string, unknown>, source = 'scheduler_config.json'): SchedulerConfig {
  const fail = (problem: string): never => {
    throw new UserError(`${source}: ${problem}`);
  };
  for (const [key, neutral] of Object.entries(UNSUPPORTED[kind])) {
    if (raw[key] !== undefined && raw[key] !== neutral && !(neutral === false && raw[key] === null)) {
      fail(`"${key}": ${JSON.stringify(raw[key])} is not supported by the ${kind} sampler here (expected ${JSON.stringify(neutral)})`);
    }
  }
  const config: SchedulerConfig = { ...DEFAULTS[kind] };
  const take = <K extends keyof SchedulerConfig>(key: K, check: (v: unknown) => boolean, expected: string) => {
    const v = raw[key];
    if (v === undefined || (v === null && key === 'trained_betas')) return;
    if (!check(v)) fail(`"${key}" must be ${expected}, found ${typeof v === 'number' ? v : JSON.stringify(v)}`); // 1e400 parses as Infinity
    config[key] = v as SchedulerConfig[K];
  };
  const finite = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
  // betas outside (0, 1) give negative or zero alphas: NaN latents, drawn as a black image
  const beta = (v: unknown) => finite(v) && (v as number) > 0 && (v as number) < 1;
  const oneOf = (list: readonly string[]) => (v: unknown) => typeof v === 'string' && list.includes(v);
  take('num_train_timesteps', (v) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= MAX_TRAIN_TIMESTEPS, `a whole number from 1 to ${MAX_TRAIN_TIMESTEPS}`);
  take('beta_start', beta, 'a number in (0, 1)');
  take('beta_end', beta, 'a number in (0, 1)');
  take('beta_schedule', oneOf(CHOICES.beta_schedule), CHOICES.beta_schedule.join(' | '));
  take('trained_betas', (v) => Array.isArray(v) && v.length >= 1 && v.length <= MAX_TRAIN_TIMESTEPS && v.every(beta), `a list of 1 to ${MAX_TRAIN_TIMESTEPS} betas in (0, 1)`);
  take('prediction_type', oneOf(CHOICES.prediction_type[kind]), CHOICES.prediction_type[kind].join(' | '));
  take('timestep_spacing', oneOf(CHOICES.timestep_spacing), CHOICES.timestep_spacing.join(' | '));
  take('steps_offset', (v) => Number.isInteger(v) && (v as number) >= 0, 'a whole number >= 0');
  take('set_alpha_to_one', (v) => typeof v === 'boolean', 'true or false');
  if (kind === 'ddim') {
    take('clip_sample', (v) => typeof v === 'boolean', 'true or false');
    take('clip_sample_range', (v) => finite(v) && (v as number) > 0, 'a positive number');
  }
  if (config.trained_betas && config.trained_betas.length !== config.num_train_timesteps) {
    // diffusers takes the length of trained_betas as the number of training steps
    config.num_train_timesteps = config.trained_betas.length;
  }
  return config;
}

/** betas per training step, as diffusers' __init__ computes them. */
export function betas(c: SchedulerConfig): Float64Array {
  const t = c.num_train_timesteps;
  if (c.trained_betas) return Float64Array.from(c.trained_betas);
  const linspace = (a: number, b: number) => Float64Array.from({ length: t }, (_, i) => (t === 1 ? a : a + ((b - a) * i) / (t - 1)));
  switch (c.beta_schedule) {
    case 'linear':
      return linspace(c.beta_start, c.beta_end);
    case 'scaled_linear':
      return linspace(Math.sqrt(c.beta_start), Math.sqrt(c.beta_end)).map((b) => b * b);
    case 'squaredcos_cap_v2': {
      const alphaBar = (x: number) => Math.cos(((x + 0.008) / 1.008) * Math.PI / 2) ** 2;
      return Float64Array.from({ length: t }, (_, i) => Math.min(1 - alphaBar((i + 1) / t) / alphaBar(i / t), 0.999));
    }
  }
}

export function alphasCumprod(c: SchedulerConfig): Float64Array {
  const b = betas(c);
  const out = new Float64Array(b.length);
  let prod = 1;
  b.forEach((beta, i) => (out[i] = prod *= 1 - beta));
  return out;
}

/** The keys that make the schedule, the same for every sampler (their defaults agree too). */
const SCHEDULE_KEYS = ['num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule', 'trained_betas'];

/**
 * Checks the schedule a scheduler_config.json makes, whatever the sampler: its sizes and betas
 * (schedulerConfig's checks of those keys), and that alphas_cumprod stays inside (0, 1): it
 * underflows to 0 when betas near 1 run over many steps (infinite noise levels), and a beta below
 * float64's resolution leaves it at 1 (a zero noise level, divided by). Run when a folder is
 * opened, before any model loads.
 */
export function checkSchedule(raw: Record<string, unknown>, source: string): void {
  const keys = Object.fromEntries(SCHEDULE_KEYS.filter((k) => k in raw).map((k) => [k, raw[k]]));
  scheduleOf(schedulerConfig('ddim', keys, source), source);
}

/** alphas_cumprod, refused when it leaves (0, 1) (see checkSchedule). */
function scheduleOf(c: SchedulerConfig, source: string): Float64Array {
  const ac = alphasCumprod(c);
  const bad = ac.findIndex((a) => !(a > 0 && a < 1));
  if (bad >= 0) {
    const why = ac[bad]! > 0 ? 'a beta too close to 0 for float64' : 'betas too close to 1 for so many steps';
    throw new UserError(`${source}: alphas_cumprod is ${ac[bad]} at training step ${bad} of ${ac.length} (${why}); expected it inside (0, 1)`);
  }
  return ac;
}

/** The timesteps of `steps` inference steps, largest first. DDIM rounds them to integers; Euler
 *  keeps linspace's fractions (its sigmas are interpolated at them). */
export function timesteps(kind: SchedulerKind, c: SchedulerConfig, steps: number): Float64Array {
  const t = c.num_train_timesteps;
  if (!Number.isInteger(steps) || steps < 1 || steps > t) throw new UserError(`steps must be a whole number from 1 to ${t} (the model's training steps), got ${steps}`);
  let out: Float64Array;
  switch (c.timestep_spacing) {
    case 'linspace': {
      // np.linspace(0, T - 1, N): i * step with the last value exactly T - 1; DDIM rounds like np.round
      const step = steps > 1 ? (t - 1) / (steps - 1) : 0;
      out = Float64Array.from({ length: steps }, (_, i) => (i === steps - 1 && steps > 1 ? t - 1 : i * step)).reverse();
      if (kind === 'ddim') out = out.map(roundHalfEven);
      break;
    }
    case 'leading': {
      const ratio = Math.floor(t / steps);
      out = Float64Array.from({ length: steps }, (_, i) => (steps - 1 - i) * ratio + c.steps_offset);
      break;
    }
    case 'trailing': {
      // np.round(np.arange(T, 0, -T/N)) - 1, with arange's own length and fill rule (for some N,
      // e.g. 61 of 1000, the length comes out N + 1 and the last timestep -1: refused below)
      const step = -t / steps;
      const length = Math.ceil((0 - t) / step);
      const delta = t + step - t;
      out = Float64Array.from({ length }, (_, i) => roundHalfEven(t + i * delta) - 1);
      break;
    }
  }
  if (kind === 'euler') out = out.map(Math.fround); // diffusers keeps Euler's timesteps as float32
  for (const v of out) {
    if (v < 0 || v > t - 1) throw new UserError(`${steps} steps with "${c.timestep_spacing}" spacing (steps_offset ${c.steps_offset}) give timestep ${v}, outside the model's 0..${t - 1}: choose another step count`);
  }
  return out;
}

/** np.round: halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** One sampling run's schedule: the timesteps, how to scale the model's input, and the update. */
export interface Sampler {
  readonly kind: SchedulerKind;
  /** the timestep fed to the model at each step */
  readonly timesteps: Float64Array;
  /** standard deviation of the starting latents: the seeded N(0, 1) noise is multiplied by it */
  readonly initNoiseSigma: number;
  /** the model's input at step i (DDIM: x itself; Euler: x / sqrt(sigma^2 + 1)) */
  scaleModelInput(x: Float32Array, i: number): Float32Array;
  /** x at step i and the model's output -> x at step i + 1, and the predicted clean sample x0;
   *  `noise` (standard normal, like x) is needed only by DDIM with eta > 0 */
  step(modelOutput: Float32Array, i: number, x: Float32Array, noise?: () => number): { prev: Float32Array; x0: Float32Array };
  /** whether step() draws noise */
  readonly stochastic: boolean;
}

/** `source` names the config in messages. */
export function createSampler(kind: SchedulerKind, config: SchedulerConfig, steps: number, opts: { eta?: number; source?: string } = {}): Sampler {
  const ac = scheduleOf(config, opts.source ?? 'the scheduler config');
  return kind === 'ddim' ? ddim(config, ac, steps, opts.eta ?? 0) : euler(config, ac, steps);
}

function ddim(c: SchedulerConfig, ac: Float64Array, steps: number, eta: number): Sampler {
  if (!(eta >= 0) || !Number.isFinite(eta)) throw new UserError(`eta must be a number >= 0, got ${eta}`);
  const finalAlpha = c.set_alpha_to_one ? 1 : ac[0]!;
  const ts = timesteps('ddim', c, steps);
  // diffusers steps back by T // N whatever the spacing
  const stride = Math.floor(c.num_train_timesteps / steps);
  return {
    kind: 'ddim',
    timesteps: ts,
    initNoiseSigma: 1,
    stochastic: eta > 0,
    scaleModelInput: (x) => x,
    step(out, i, x, noise) {
      const t = ts[i]!;
      const prevT = t - stride;
      const at = ac[t]!;
      const aPrev = prevT >= 0 ? ac[prevT]! : finalAlpha;
      const bt = 1 - at;
      const variance = ((1 - aPrev) / bt) * (1 - at / aPrev);
      const std = eta * Math.sqrt(variance);
      const direction = Math.sqrt(Math.max(0, 1 - aPrev - std * std));
      const prev = new Float32Array(x.length);
      const x0 = new Float32Array(x.length);
      if (std > 0 && !noise) throw new Error('ddim with eta > 0 needs a noise source');
      for (let j = 0; j < x.length; j++) {
        let predX0: number;
        let predEps: number;
        switch (c.prediction_type) {
          case 'epsilon':
            predX0 = (x[j]! - Math.sqrt(bt) * out[j]!) / Math.sqrt(at);
            predEps = out[j]!;
            break;
          case 'sample':
            predX0 = out[j]!;
            predEps = (x[j]! - Math.sqrt(at) * predX0) / Math.sqrt(bt);
            break;
          case 'v_prediction':
            predX0 = Math.sqrt(at) * x[j]! - Math.sqrt(bt) * out[j]!;
            predEps = Math.sqrt(at) * out[j]! + Math.sqrt(bt) * x[j]!;
            break;
        }
        if (c.clip_sample) predX0 = Math.min(c.clip_sample_range, Math.max(-c.clip_sample_range, predX0));
        x0[j] = predX0;
        prev[j] = Math.sqrt(aPrev) * predX0 + direction * predEps + (std > 0 ? std * noise!() : 0);
      }
      return { prev, x0 };
    },
  };
}

function euler(c: SchedulerConfig, ac: Float64Array, steps: number): Sampler {
  const ts = timesteps('euler', c, steps);
  const trainSigmas = Float64Array.from(ac, (a) => Math.sqrt((1 - a) / a));
  // np.interp over the training sigmas at the (fractional) timesteps, then a final sigma of 0
  const sigmas = new Float64Array(steps + 1);
  ts.forEach((t, i) => {
    const lo = Math.floor(t);
    const hi = Math.min(lo + 1, ac.length - 1);
    sigmas[i] = trainSigmas[lo]! + (trainSigmas[hi]! - trainSigmas[lo]!) * (t - lo);
  });
  const maxSigma = Math.max(...sigmas);
  return {
    kind: 'euler',
    timesteps: ts,
    initNoiseSigma: c.timestep_spacing === 'leading' ? Math.sqrt(maxSigma * maxSigma + 1) : maxSigma,
    stochastic: false,
    scaleModelInput(x, i) {
      const s = 1 / Math.sqrt(sigmas[i]! * sigmas[i]! + 1);
      return x.map((v) => v * s);
    },
    step(out, i, x) {
      const sigma = sigmas[i]!;
      const dt = sigmas[i + 1]! - sigma;
      const prev = new Float32Array(x.length);
      const x0 = new Float32Array(x.length);
      for (let j = 0; j < x.length; j++) {
        let predX0: number;
        switch (c.prediction_type) {
          case 'epsilon':
            predX0 = x[j]! - sigma * out[j]!;
            break;
          case 'v_prediction':
            predX0 = out[j]! * (-sigma / Math.sqrt(sigma * sigma + 1)) + x[j]! / (sigma * sigma + 1);
            break;
          case 'sample':
            predX0 = out[j]!;
            break;
        }
        x0[j] = predX0;
        prev[j] = x[j]! + ((x[j]! - predX0) / sigma) * dt;
      }
      return { prev, x0 };
    },
  };
}

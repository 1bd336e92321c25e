// Float tensors in the type a model declares (f16 models take and give IEEE half bits), and the
// dimensions a model fixes: shared by every ONNX model the engine runs (encoders, diffusion, AR).
import type * as ort from 'onnxruntime-node';
import { onnxruntime } from './onnxruntime.js';
import { f16ToF32, f32ToF16 } from '../common/half.js';

export const FLOAT_TYPES = ['float32', 'float16'];

/** A dimension the model fixes (a positive number); symbolic or unknown dimensions are open (null). */
export const fixed = (d: number | string | undefined): number | null => (typeof d === 'number' && d > 0 ? d : null);

/** A float tensor for an input of the given type (f16 as IEEE half bits). */
export function floatTensor(type: string, data: Float32Array, dims: number[]): ort.Tensor {
  const { Tensor } = onnxruntime();
  return type === 'float16' ? new Tensor('float16', f32ToF16(data), dims) : new Tensor('float32', data, dims);
}

/** A float output's values as f32, whatever the model's float type. */
export function floats(t: ort.Tensor): Float32Array {
  if (t.type === 'float16') return f16ToF32(t.data as Uint16Array);
  if (t.type === 'float32') return t.data as Float32Array;
  throw new Error(`expected a float tensor, got ${t.type}`);
}

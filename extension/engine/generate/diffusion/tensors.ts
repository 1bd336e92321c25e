// Tensors in the types the diffusion folder's models declare (f16 models get f16 tensors).
import type * as ort from 'onnxruntime-node';
import { onnxruntime } from '../../../../native-gpu/onnxruntime.js';
import { f16ToF32, f32ToF16 } from '../../../../common/half.js';
import type { TensorInfo } from '../../../../native-gpu/onnx-session.js';

export const FLOAT_TYPES = ['float32', 'float16'];
export const TIMESTEP_TYPES = ['float32', 'float16', 'int64', 'int32'];

/** A dimension the model fixes (a positive number); symbolic or unknown dimensions are open (null). */
export const fixed = (d: number | string | undefined): number | null => (typeof d === 'number' && d > 0 ? d : null);

/** A float tensor for an input of the given type (f16 as IEEE half bits). */
export function floatTensor(type: string, data: Float32Array, dims: number[]): ort.Tensor {
  const { Tensor } = onnxruntime();
  return type === 'float16' ? new Tensor('float16', f32ToF16(data), dims) : new Tensor('float32', data, dims);
}

export function floats(t: ort.Tensor): Float32Array {
  if (t.type === 'float16') return f16ToF32(t.data as Uint16Array);
  if (t.type === 'float32') return t.data as Float32Array;
  throw new Error(`expected a float tensor, got ${t.type}`);
}

export function timestepTensor(info: TensorInfo, t: number, batch: number): ort.Tensor {
  const dims = info.shape.length === 0 ? [] : [fixed(info.shape[0]) ?? batch];
  const count = dims.length ? dims[0]! : 1;
  const { Tensor } = onnxruntime();
  switch (info.type) {
    case 'int64':
      return new Tensor('int64', new BigInt64Array(count).fill(BigInt(Math.trunc(t))), dims);
    case 'int32':
      return new Tensor('int32', new Int32Array(count).fill(Math.trunc(t)), dims);
    default:
      return floatTensor(info.type, new Float32Array(count).fill(t), dims);
  }
}

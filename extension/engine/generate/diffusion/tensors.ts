// The timestep tensor in the type a diffusion folder's denoiser declares (exporters differ).
import type * as ort from 'onnxruntime-node';
import { onnxruntime } from '../../../../native-gpu/onnxruntime.js';
import { fixed, floatTensor } from '../../../../native-gpu/onnx-tensors.js';
import type { TensorInfo } from '../../../../native-gpu/onnx-session.js';

export const TIMESTEP_TYPES = ['float32', 'float16', 'int64', 'int32'];

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

// Picks the compute backend at run time. The WebGPU backend is loaded lazily so a CPU-only run
// never loads Dawn (a ~130 MB native module that also keeps node alive while it is open).
import type { ComputeBackend, DeviceChoice } from './backend.js';
import { createCpuBackend } from './cpu/index.js';
import { UserError } from '../common/errors.js';

type WebGpuModule = typeof import('./webgpu/index.js');
// require(), not import(): this package compiles to CommonJS and tsx cannot resolve a dynamic
// import() from a CommonJS module loaded by an ES module; esbuild bundles either form.
const loadWebGpu = (): WebGpuModule => require('./webgpu/index.js') as WebGpuModule;

export interface OpenBackendOptions {
  /** accept a software (CPU-emulated) WebGPU adapter; also enabled by env UNICODE2_ALLOW_SOFTWARE_GPU=1 */
  allowSoftware?: boolean;
  /** where non-fatal problems go (device lost -> CPU fallback); default: stderr */
  onWarning?: (message: string) => void;
  /** the opened backend's `device` changed (a lost GPU: the CPU computes from then on) */
  onDeviceChange?: (device: string) => void;
}

export async function openBackend(choice: DeviceChoice, opts: OpenBackendOptions = {}): Promise<ComputeBackend> {
  const allowSoftware = opts.allowSoftware ?? process.env.UNICODE2_ALLOW_SOFTWARE_GPU === '1';
  switch (choice) {
    case 'cpu':
      return createCpuBackend();
    case 'webgpu': {
      const { createWebGpuBackend } = loadWebGpu();
      return createWebGpuBackend({ allowSoftware, onWarning: opts.onWarning, onDeviceChange: opts.onDeviceChange });
    }
    case 'auto': {
      // 'auto' means "the fast one": a software adapter is slower than the CPU backend, so it is
      // never picked here; no hardware adapter (a UserError from the probe) means the CPU.
      const { createWebGpuBackend, probeHardwareAdapterQuietly } = loadWebGpu();
      if (!(await probeHardwareAdapterQuietly())) return createCpuBackend();
      try {
        return await createWebGpuBackend({ allowSoftware: false, onWarning: opts.onWarning, onDeviceChange: opts.onDeviceChange });
      } catch (err) {
        if (!(err instanceof UserError)) throw err;
        return createCpuBackend();
      }
    }
    default:
      throw new UserError(`unknown device "${String(choice)}"; expected auto, cpu or webgpu`);
  }
}

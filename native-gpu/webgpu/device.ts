// The one module that talks to Dawn: picks an adapter, requests a device with the adapter's own
// limits, pins the Dawn instance for the device's life, and turns device loss and uncaptured
// errors into plain messages. Everything else in webgpu/ receives a GpuContext.
import { spawn } from 'node:child_process';
import { REMEDIES, UserError } from '../../common/errors.js';

/** What a backend needs from an opened device. */
export interface GpuContext {
  readonly device: GPUDevice;
  /** e.g. "NVIDIA H200 (vulkan)" or "llvmpipe (software, opengles)" */
  readonly description: string;
  readonly software: boolean;
  /** set (with the reason) once the device is lost or destroyed; every GPU result is checked against it */
  readonly lostReason: string | null;
  /** resolves with the reason when the device is lost */
  readonly lost: Promise<string>;
  /** destroys the device and unpins the Dawn instance so node can exit */
  release(): void;
}

interface AdapterAttempt {
  /** what the user reads in the "what was tried" list */
  label: string;
  backend: 'vulkan' | 'opengles';
  createOptions: string[];
  // featureLevel ('compatibility') is newer than the bundled @webgpu/types
  adapterOptions: GPURequestAdapterOptions & { featureLevel?: 'core' | 'compatibility' };
}

// Hardware first through Dawn's default backend (Vulkan on Linux). GL ES on Mesa is the software
// path that works on a bare Linux machine without a Vulkan driver: compatibility feature level.
const HARDWARE_ATTEMPT: AdapterAttempt = {
  label: 'vulkan (high-performance)',
  backend: 'vulkan',
  createOptions: [],
  adapterOptions: { powerPreference: 'high-performance' },
};
const SOFTWARE_GLES_ATTEMPT: AdapterAttempt = {
  label: 'opengles (compatibility, EGL surfaceless)',
  backend: 'opengles',
  createOptions: ['backend=opengles'],
  adapterOptions: { featureLevel: 'compatibility' },
};

// Dawn dies at random inside mapAsync if the object create() returned is garbage-collected while a
// device lives, so every live instance is held here until its context is released.
const pinnedInstances = new Set<GPU>();

type DawnModule = { create(options: string[]): GPU; globals: object };
let dawn: DawnModule | null = null;

async function loadDawn(): Promise<DawnModule> {
  if (dawn) return dawn;
  try {
    // require, not import(): this package compiles to CommonJS, and node 20.20 loads the ES-module
    // 'webgpu' package through require(esm); tsx's dynamic-import path cannot resolve it.
    const mod = require('webgpu') as DawnModule;
    // The bindings expect the WebGPU constants (GPUBufferUsage, ...) to be globals.
    Object.assign(globalThis, mod.globals);
    dawn = mod;
    return mod;
  } catch (err) {
    throw new UserError(`the WebGPU runtime (npm package "webgpu") could not be loaded: ${(err as Error).message}`, REMEDIES.useCpu);
  }
}

const SOFTWARE_NAMES = /llvmpipe|lavapipe|swiftshader|softpipe|software|microsoft basic render/i;

function adapterName(info: GPUAdapterInfo): string {
  // The device field holds the product name ("NVIDIA H200"); on Vulkan the description is the
  // driver version string, so it only stands in when the device field is empty.
  const parts = [info.device, info.description, info.vendor].filter((s) => s && s.trim());
  return (parts[0] ?? 'unknown adapter').trim();
}

type AdapterFacts = Pick<GPUAdapterInfo, 'vendor' | 'architecture' | 'device' | 'description' | 'isFallbackAdapter'> & {
  adapterType?: string;
};

function isSoftwareInfo(info: AdapterFacts): boolean {
  if (info.isFallbackAdapter || info.adapterType === 'cpu') return true;
  return SOFTWARE_NAMES.test(`${info.vendor} ${info.architecture} ${info.device} ${info.description}`);
}

function isSoftware(adapter: GPUAdapter): boolean {
  return isSoftwareInfo(adapter.info as AdapterFacts);
}

function displayName(adapter: GPUAdapter, backend: string, software: boolean): string {
  const info = adapter.info;
  if (software) {
    const family = SOFTWARE_NAMES.exec(`${info.device} ${info.description}`)?.[0] ?? adapterName(info);
    return `${family} (software, ${backend})`;
  }
  return `${adapterName(info)} (${backend})`;
}

interface FoundAdapter {
  instance: GPU;
  adapter: GPUAdapter;
  attempt: AdapterAttempt;
  software: boolean;
}

async function tryAttempt(attempt: AdapterAttempt): Promise<FoundAdapter | string> {
  const { create } = await loadDawn();
  if (attempt.backend === 'opengles') process.env.EGL_PLATFORM ??= 'surfaceless';
  try {
    const instance = create(attempt.createOptions);
    const adapter = await instance.requestAdapter(attempt.adapterOptions);
    if (!adapter) return `${attempt.label}: no adapter`;
    return { instance, adapter, attempt, software: isSoftware(adapter) };
  } catch (err) {
    return `${attempt.label}: ${(err as Error).message}`;
  }
}

/** Finds an adapter; hardware only unless allowSoftware. Returns what was tried when none fits. */
async function findAdapter(allowSoftware: boolean): Promise<FoundAdapter | string[]> {
  const tried: string[] = [];
  const hardware = await tryAttempt(HARDWARE_ATTEMPT);
  if (typeof hardware === 'string') tried.push(hardware);
  else if (!hardware.software) return hardware;
  else if (allowSoftware) return hardware; // e.g. lavapipe through Vulkan
  else tried.push(`${HARDWARE_ATTEMPT.label}: only ${displayName(hardware.adapter, 'vulkan', true)}`);
  const gles = await tryAttempt(SOFTWARE_GLES_ATTEMPT);
  if (typeof gles === 'string') tried.push(gles);
  else if (allowSoftware || !gles.software) return gles;
  else tried.push(`${SOFTWARE_GLES_ATTEMPT.label}: only ${displayName(gles.adapter, 'opengles', true)}`);
  return tried;
}

/** True when a hardware (not CPU-emulated) WebGPU adapter exists; used by openBackend('auto'). */
export async function hasHardwareAdapter(): Promise<boolean> {
  const found = await tryAttempt(HARDWARE_ATTEMPT);
  return typeof found !== 'string' && !found.software;
}

/**
 * hasHardwareAdapter() asked in a child process. Dawn writes its probe warnings ("Couldn't load
 * Vulkan", reduced limits) straight to file descriptor 2 from native code, which would break the
 * CLI's one-line errors and --json/--quiet output on every machine without a GPU; a child's
 * stderr can be thrown away. Also keeps Dawn out of a CPU-only process entirely. Asynchronous:
 * the probe takes a second or more (up to its 30 s timeout on a sick driver), and the VS Code
 * extension host, which runs every extension on one thread, must not stop for it.
 */
export async function probeHardwareAdapterQuietly(): Promise<boolean> {
  let dawnPath: string;
  try {
    dawnPath = require.resolve('webgpu');
  } catch {
    return false;
  }
  const script = `
    const { create, globals } = require(${JSON.stringify(dawnPath)});
    Object.assign(globalThis, globals);
    const gpu = create([]);
    gpu.requestAdapter(${JSON.stringify(HARDWARE_ATTEMPT.adapterOptions)}).then((a) => {
      const i = a && a.info;
      process.stdout.write(JSON.stringify(i ? { vendor: i.vendor, architecture: i.architecture, device: i.device,
        description: i.description, isFallbackAdapter: i.isFallbackAdapter, adapterType: i.adapterType } : null));
      process.exit(0);
    }, () => process.exit(0));`;
  // ELECTRON_RUN_AS_NODE: inside desktop VS Code the extension host's execPath is Electron.
  // A probe that fails, crashes or times out means "no hardware adapter": the caller falls back
  // to the CPU.
  const stdout = await new Promise<string>((resolve) => {
    const child = spawn(process.execPath, ['-e', script], {
      stdio: ['ignore', 'pipe', 'ignore'],
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
      timeout: 30_000,
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.on('close', () => resolve(out));
    child.on('error', () => resolve(''));
  });
  try {
    const info = JSON.parse(stdout || 'null') as AdapterFacts | null;
    return info !== null && !isSoftwareInfo(info);
  } catch {
    return false;
  }
}

function adapterLimits(adapter: GPUAdapter): Record<string, number> {
  // Ask for everything the adapter offers: the defaults are far lower (compatibility mode caps
  // maxComputeInvocationsPerWorkgroup at 128, and storage bindings at 128 MiB).
  const limits: Record<string, number> = {};
  for (const key in adapter.limits) {
    const value = (adapter.limits as unknown as Record<string, unknown>)[key];
    if (typeof value === 'number') limits[key] = value;
  }
  return limits;
}

/** onUncapturedError: GPU errors raised outside any error scope (every kernel call runs inside
 *  scopes, so these are rare) are reported there rather than lost. */
export async function openGpuContext(opts: { allowSoftware: boolean; onUncapturedError?: (message: string) => void }): Promise<GpuContext> {
  const found = await findAdapter(opts.allowSoftware);
  if (Array.isArray(found)) {
    throw new UserError(`no WebGPU adapter found (tried ${found.join('; ')})`, opts.allowSoftware ? REMEDIES.useCpu : REMEDIES.allowSoftwareGpuOrCpu);
  }
  const { instance, adapter, attempt, software } = found;
  pinnedInstances.add(instance);
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredLimits: adapterLimits(adapter) });
  } catch (err) {
    pinnedInstances.delete(instance);
    throw new UserError(`the WebGPU adapter ${adapterName(adapter.info)} refused to open a device: ${(err as Error).message}`, REMEDIES.useCpu);
  }

  let lostReason: string | null = null;
  let released = false;
  const lost = device.lost.then((info) => {
    lostReason = `WebGPU device lost (${info.reason}): ${info.message || 'no details'}`;
    return lostReason;
  });
  device.addEventListener('uncapturederror', (event) => {
    opts.onUncapturedError?.(`WebGPU error: ${(event as GPUUncapturedErrorEvent).error.message}`);
  });

  return {
    device,
    description: displayName(adapter, attempt.backend, software),
    software,
    get lostReason() {
      return lostReason;
    },
    lost,
    release() {
      if (released) return;
      released = true;
      device.destroy();
      pinnedInstances.delete(instance);
    },
  };
}

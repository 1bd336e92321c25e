// Lets NumPy (and the safetensors package, where installed) check the files we write: the
// formats are only right if the reference implementations read them back.
import { execFileSync, spawnSync } from 'node:child_process';

let found: string | null | undefined;

/** A python3 with NumPy, or null if this machine has none. */
export function pythonWithNumpy(): string | null {
  if (found === undefined) {
    found = null;
    for (const candidate of ['python3', '/usr/bin/python3']) {
      if (spawnSync(candidate, ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0) {
        found = candidate;
        break;
      }
    }
  }
  return found;
}

/** A python3 that imports every one of `modules` (Debian's /usr/bin/python3 has python3-pil and
 *  python3-numpy), or null if this machine has none. */
export function pythonWith(modules: string[]): string | null {
  const script = modules.map((m) => `import ${m}`).join('; ');
  return ['python3', '/usr/bin/python3'].find((p) => spawnSync(p, ['-c', script], { stdio: 'ignore' }).status === 0) ?? null;
}

/** Whether that python also has the safetensors package. */
export function hasPythonModule(python: string, module: string): boolean {
  return spawnSync(python, ['-c', `import ${module}`], { stdio: 'ignore' }).status === 0;
}

/** Runs a script with arguments and parses the JSON it prints. */
export function runPythonJson<T>(python: string, script: string, args: string[]): T {
  return JSON.parse(execFileSync(python, ['-c', script, ...args], { encoding: 'utf8' })) as T;
}

/** What a Python reader saw in a safetensors file: metadata and, per tensor, [dtype code
 *  ('F32', 'I64'...), shape, values as floats]. */
export interface PythonSafetensorsDump {
  meta: Record<string, string>;
  tensors: Record<string, [string, number[], number[]]>;
}

/** Reads the layout from the spec with json, struct and numpy only, checking the rules the
 *  reference loader enforces (header starts with '{', tensors tile the data buffer exactly). */
const SPEC_READER = `
import json, struct, sys
import numpy as np
raw = open(sys.argv[1], 'rb').read()
n, = struct.unpack('<Q', raw[:8])
header = raw[8:8 + n]
assert header[:1] == b'{', 'header must start with {'
h = json.loads(header.decode('utf-8'))
meta = h.pop('__metadata__', {})
data = raw[8 + n:]
kinds = {'F32': '<f4', 'F16': '<f2', 'F64': '<f8', 'I32': '<i4', 'I64': '<i8'}
pos = 0
for (begin, end), name in sorted((v['data_offsets'], k) for k, v in h.items()):
    assert begin == pos, f'{name}: hole or overlap at {begin}'
    pos = end
assert pos == len(data), 'tensors must cover the whole data buffer'
out = {}
for name, v in h.items():
    begin, end = v['data_offsets']
    a = np.frombuffer(data[begin:end], dtype=kinds[v['dtype']]).reshape(v['shape'])
    out[name] = [v['dtype'], list(a.shape), [float(x) for x in a.ravel()]]
print(json.dumps({'meta': meta, 'tensors': out}))
`;

/** The reference implementation: the same format code safetensors.torch.load_file runs. */
const REFERENCE_READER = `
import json, sys
from safetensors import safe_open
from safetensors.numpy import load_file
codes = {'float32': 'F32', 'float16': 'F16', 'float64': 'F64', 'int32': 'I32', 'int64': 'I64'}
tensors = load_file(sys.argv[1])
with safe_open(sys.argv[1], framework='np') as f:
    meta = f.metadata() or {}
print(json.dumps({'meta': meta, 'tensors': {k: [codes[str(v.dtype)], list(v.shape), [float(x) for x in v.ravel()]] for k, v in tensors.items()}}))
`;

/** The file as every Python reader on this machine sees it: the spec-only reader always (given
 *  NumPy), the reference safetensors package too when it is installed. */
export function readSafetensorsInPython(python: string, file: string): { reader: 'spec' | 'reference'; dump: PythonSafetensorsDump }[] {
  const dumps: { reader: 'spec' | 'reference'; dump: PythonSafetensorsDump }[] = [
    { reader: 'spec', dump: runPythonJson<PythonSafetensorsDump>(python, SPEC_READER, [file]) },
  ];
  if (hasPythonModule(python, 'safetensors')) dumps.push({ reader: 'reference', dump: runPythonJson<PythonSafetensorsDump>(python, REFERENCE_READER, [file]) });
  return dumps;
}

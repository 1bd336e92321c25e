// What the extension host of a code-server has loaded: its process (a descendant of code-server
// started with --type=extensionHost) and the native libraries mapped into it (/proc/<pid>/maps),
// to see that activating the extension loads none and that a job loads only what it needs.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

/** Native code of the extension's dependencies, by the file names that give it away. */
const NATIVE = { onnxruntime: /onnxruntime/, sharp: /sharp-linux|libvips/, dawn: /dawn\.node/ } as const;
export type NativeModule = keyof typeof NATIVE;

async function extensionHostPid(serverPid: number): Promise<number> {
  const { stdout } = await promisify(execFile)('ps', ['-eo', 'pid=,ppid=,args=']);
  const rows = stdout.trim().split('\n').map((line) => {
    const [, pid, ppid, args] = /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line)!;
    return { pid: Number(pid), ppid: Number(ppid), args: args! };
  });
  const family = new Set([serverPid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const r of rows) {
      if (family.has(r.ppid) && !family.has(r.pid)) {
        family.add(r.pid);
        grew = true;
      }
    }
  }
  const hosts = rows.filter((r) => family.has(r.pid) && r.args.includes('--type=extensionHost'));
  if (hosts.length !== 1) throw new Error(`expected one extension host under code-server (pid ${serverPid}), found ${hosts.length}`);
  return hosts[0]!.pid;
}

/** The extension's native modules mapped into the extension host right now. */
export async function nativeModulesLoaded(serverPid: number): Promise<NativeModule[]> {
  const maps = await readFile(`/proc/${await extensionHostPid(serverPid)}/maps`, 'utf8');
  return (Object.keys(NATIVE) as NativeModule[]).filter((name) => NATIVE[name].test(maps));
}

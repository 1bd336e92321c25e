// One worker thread of the encode pool (encode-pool.ts): decodes and resizes images with sharp
// and, for the built-in DCT encoder on the CPU, computes the DCT too, so a folder of images keeps
// every core busy while the main thread searches. A task names its images and what to do; the
// reply carries the images that could be read, those skipped (with why), and one Float32Array
// (transferred, not copied): their DCT rows, or their planar pixels for the main thread's encoder.
import { parentPort } from 'node:worker_threads';
import { inputName, loadImage } from './image.js';
import { dctPatches } from '../../../native-gpu/cpu/dct.js';
import type { EncodeTask, EncodeReply } from './encode-pool.js';

const port = parentPort;
if (!port) throw new Error('encode-worker.ts runs as a worker thread of the encode pool');

port.on('message', (task: EncodeTask) => {
  void run(task).then((reply) => port.postMessage(reply, [reply.data.buffer as ArrayBuffer]), (err: unknown) => {
    port.postMessage({ id: task.id, error: err instanceof Error ? err.message : String(err) });
  });
});

async function run(task: EncodeTask): Promise<EncodeReply> {
  const kept: string[] = [];
  const sizes: [number, number][] = [];
  const skipped: { path: string; reason: string }[] = [];
  const parts: Float32Array[] = [];
  for (const image of task.images) {
    const path = inputName(image);
    let pixels;
    try {
      pixels = await loadImage(image, task.resize);
    } catch (err) {
      skipped.push({ path, reason: err instanceof Error ? err.message : String(err) });
      continue;
    }
    parts.push(task.dctPatch ? dctPatches(pixels.data, pixels.height, pixels.width, task.dctPatch).data : pixels.data);
    kept.push(path);
    sizes.push([pixels.height, pixels.width]);
  }
  const data = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    data.set(p, offset);
    offset += p.length;
  }
  return { id: task.id, images: kept, skipped, sizes, data };
}

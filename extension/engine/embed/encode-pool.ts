// A small pool of worker threads (encode-worker.ts) that decode and resize images — and encode
// them too when the encoder is the built-in DCT on the CPU — while the main thread searches the
// batches already done. forEachEncodedBatch uses it for runs of more than one batch.
//
// Tasks are posted to the workers ahead of need (QUEUED_PER_WORKER each, round-robin): the main
// thread blocks while onnxruntime searches, and a worker that had to wait for its next task until
// then would sit idle. Replies are taken in task order, so results keep the order of the inputs.
import { Worker } from 'node:worker_threads';
import { workerScript } from '../core/worker-script.js';
import type { ImageInput, KeepAspect, ResizeTo } from './image.js';
import type { SkippedImage } from './embed.js';
import type { ProcessorResize } from './encoders/pil-resize.js';

export interface EncodeTask {
  id: number;
  /** files, or images in memory (a shard's members) */
  images: ImageInput[];
  resize: ResizeTo | KeepAspect | ProcessorResize;
  /** DCT patch size: the worker returns DCT rows instead of pixels */
  dctPatch?: number;
}

export interface EncodeReply {
  id: number;
  /** the task's images that could be read, in order */
  images: string[];
  skipped: SkippedImage[];
  /** [height, width] in pixels of each image as loaded (a keep-aspect resize follows the photo) */
  sizes: [number, number][];
  /** DCT rows of the images (dctPatch), else their planar pixels, image after image */
  data: Float32Array;
}

/** tasks waiting in each worker's queue, so none idles while the main thread searches */
export const QUEUED_PER_WORKER = 2;

interface Pending {
  resolve(reply: EncodeReply): void;
  reject(err: Error): void;
}

function startWorker(): Worker {
  const { file, execArgv } = workerScript(__dirname, 'encode-worker');
  return new Worker(file, { execArgv });
}

export class EncodePool {
  /** worker threads started by this process so far (tests check which path a run took) */
  static started = 0;
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, Pending & { worker: number }>();
  private nextId = 0;
  private closed = false;

  constructor(readonly size: number) {
    for (let w = 0; w < size; w++) {
      const worker = startWorker();
      EncodePool.started++;
      worker.on('message', (reply: EncodeReply | { id: number; error: string }) => this.settle(reply));
      worker.on('error', (err) => this.failWorker(w, err));
      worker.on('exit', (code) => {
        if (!this.closed) this.failWorker(w, new Error(`an encode worker exited (code ${code})`));
      });
      this.workers.push(worker);
    }
  }

  /** Queues a task on worker `worker % size`; the promise settles with its reply. */
  submit(worker: number, task: Omit<EncodeTask, 'id'>): Promise<EncodeReply> {
    if (this.closed) return Promise.reject(new Error('the encode pool was closed'));
    const id = this.nextId++;
    const w = worker % this.size;
    return new Promise<EncodeReply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, worker: w });
      this.workers[w]!.postMessage({ ...task, id } satisfies EncodeTask);
    });
  }

  private settle(reply: EncodeReply | { id: number; error: string }): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    if ('error' in reply) p.reject(new Error(`encode worker: ${reply.error}`));
    else p.resolve(reply);
  }

  private failWorker(worker: number, err: Error): void {
    for (const [id, p] of this.pending) {
      if (p.worker !== worker) continue;
      this.pending.delete(id);
      p.reject(err);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) p.reject(new Error('the encode pool was closed'));
    this.pending.clear();
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parentPort } from 'node:worker_threads';
import { sealChunk } from '../crypto/content.js';
import { sha256Hex } from '../crypto/hash.js';

/**
 * A young-generation collection after each chunk. Sealing allocates a chunk's worth of
 * short-lived buffers (the cipher's output slices) and almost nothing else, so V8 would
 * collect them only after tens of megabytes; by then malloc has given the memory back to
 * the system, and each chunk faulted in fresh pages (~300,000 page faults per GiB, and
 * fresh memory is slow on the VMs we measured). Collected at once, the same memory is
 * reused: page faults ~58,000 per GiB, the client's CPU for a 1 GiB put 3.1–3.2 → 2.5–2.7
 * s, its peak RSS ~20 MiB lower. Without `--expose-gc` on the command line this is the
 * way to ask for one: set the flag, and a new context has `gc`.
 */
setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as ((options: { type: 'minor' }) => void) | undefined;

/**
 * One chunk sealed in a worker thread (see seal-workers.ts), on buffers in shared
 * memory, so nothing is copied or allocated per chunk: `ciphertext ‖ tag` is written
 * into the output and hashed for the chunk id.
 */
export interface SealJob {
  job: number;
  key: Uint8Array;
  versionId: string;
  index: number;
  last: boolean;
  input: SharedArrayBuffer;
  inputOffset: number;
  inputLength: number;
  output: SharedArrayBuffer;
  outputOffset: number;
}

export type SealAnswer = { job: number; length: number; id: string } | { job: number; error: string };

parentPort?.on('message', (j: SealJob) => {
  try {
    const input = Buffer.from(j.input, j.inputOffset, j.inputLength);
    const output = Buffer.from(j.output, j.outputOffset);
    const sealed = sealChunk(j.key, j.versionId, j.index, j.last, input, output);
    parentPort?.postMessage({
      job: j.job,
      length: sealed.length,
      id: sha256Hex(sealed),
    } satisfies SealAnswer);
    collect?.({ type: 'minor' });
  } catch (err) {
    parentPort?.postMessage({ job: j.job, error: (err as Error).message } satisfies SealAnswer);
  }
});

import { parentPort } from 'node:worker_threads';
import { noteBulkBytes } from '../common/gc-tuning.js';
import { sealChunk } from '../crypto/content.js';
import { sha256Hex } from '../crypto/hash.js';

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
    // Its only garbage is the cipher's output slices: collected every chunk or so.
    noteBulkBytes(sealed.length);
  } catch (err) {
    parentPort?.postMessage({ job: j.job, error: (err as Error).message } satisfies SealAnswer);
  }
});

import { readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomHexId, sha256Hex } from '../crypto/hash.js';

/** The file in a data folder whose random key names its lock (mode 0600). */
export const LOCK_KEY_FILE = 'lock.key';

/** What taking a folder's lock came to: held now by this process, by another, or no lock here. */
export type FolderLock = { release: () => void } | 'held' | undefined;

/**
 * Takes a data folder's lock: a listener on a local endpoint named for the folder, which
 * one process at a time can hold and which the system lets go when that process ends,
 * however it ends (killed, crashed, the power cut). A process id written in a file cannot
 * say as much: Windows hands ids out again soon, so a server killed there could keep its
 * folder refused to the next start. The endpoint is a named pipe on Windows, a socket in
 * Linux's abstract namespace, and elsewhere (macOS) a socket file in the temporary folder,
 * which a crash leaves behind: one that nobody answers on is taken over.
 *
 * Its name comes from a random key kept in the folder and from the folder's real path:
 * another user of the machine, who cannot read the key, cannot take the name first and
 * so keep the server from starting; a copy of the folder elsewhere is another folder.
 * Undefined where no endpoint can be made (a temporary folder not writable, a path too
 * long for a socket): the caller falls back to the process id alone.
 */
export async function lockFolder(
  data: string,
  platform: NodeJS.Platform = process.platform,
): Promise<FolderLock> {
  const endpoint = lockEndpoint(data, platform);
  const first = await listenOn(endpoint.path);
  if (first !== 'in use') return first === 'failed' ? undefined : held(first, endpoint);
  if (!endpoint.file || (await answers(endpoint.path))) return 'held';
  // A socket file a crashed holder left: nobody listens on it.
  rmSync(endpoint.path, { force: true });
  const second = await listenOn(endpoint.path);
  if (second === 'in use') return 'held';
  return second === 'failed' ? undefined : held(second, endpoint);
}

/** The endpoint that locks `data` on `platform`, and whether it is a file. */
export function lockEndpoint(data: string, platform: NodeJS.Platform): { path: string; file: boolean } {
  let real = realpathSync.native(data);
  // Folders whose names differ only in case are one folder there (by default on macOS).
  if (platform === 'win32' || platform === 'darwin') real = real.toLowerCase();
  const name = `sedfs-${sha256Hex(`${lockKey(data)}\n${real}`).slice(0, 32)}`;
  if (platform === 'win32') return { path: `\\\\.\\pipe\\${name}`, file: false };
  if (platform === 'linux') return { path: `\0${name}`, file: false };
  return { path: join(tmpdir(), `${name}.sock`), file: true };
}

/** The folder's lock key, made at its first start; two first starts at once agree on one. */
function lockKey(data: string): string {
  const file = join(data, LOCK_KEY_FILE);
  for (let tries = 0; ; tries++) {
    try {
      const key = readFileSync(file, 'utf8').trim();
      if (/^[0-9a-f]{32}$/.test(key)) return key;
      // Being written by another start this very moment, or damaged: made again below
      // once it has had time to be written.
      if (tries < 20) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
        continue;
      }
      writeFileSync(file, `${randomHexId()}\n`, { mode: 0o600 });
      continue;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    try {
      writeFileSync(file, `${randomHexId()}\n`, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

function held(server: Server, endpoint: { path: string; file: boolean }): { release: () => void } {
  let released = false;
  return {
    release: () => {
      if (released) return;
      released = true;
      server.close();
      if (endpoint.file) rmSync(endpoint.path, { force: true });
    },
  };
}

/** A listener on `path`, kept from holding the process open, or why there is none. */
function listenOn(path: string): Promise<Server | 'in use' | 'failed'> {
  return new Promise((resolve) => {
    // Whoever connects (a start checking whether a socket file is live) learns enough.
    const server = createServer((socket) => socket.destroy());
    server.once('error', (err: NodeJS.ErrnoException) =>
      resolve(err.code === 'EADDRINUSE' ? 'in use' : 'failed'),
    );
    server.listen(path, () => {
      server.unref();
      resolve(server);
    });
  });
}

/** Whether a process listens on the socket file `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { randomHexId, sha256Hex } from '../crypto/hash.js';

/** The file in a data folder whose random key names its lock (mode 0600). */
export const LOCK_KEY_FILE = 'lock.key';

/** What taking a folder's lock came to: held now by this process (named `name`), by another process, or no lock here. */
export type FolderLock = { name: string; release: () => void } | 'held' | undefined;

/**
 * Takes a data folder's lock: a listener on a local endpoint named for the folder, which
 * one process at a time can hold and which the system lets go when that process ends,
 * however it ends (killed, crashed, the power cut). A process id written in a file cannot
 * say as much: Windows hands ids out again soon, so a server killed there could keep its
 * folder refused to the next start. The endpoint is a named pipe on Windows and a socket
 * in Linux's abstract namespace; elsewhere there is none (a socket file would outlive a
 * crash, which is what the lock is for), and undefined is returned, as it is for any
 * error: the caller then goes by the process id alone, as before the lock.
 *
 * Its name comes from a random key kept in the folder and from the folder's identity on
 * its disk (device and inode, whatever path reaches it): another user of the machine, who
 * cannot read the key, cannot know the name before a server holds it, and a copy of the
 * folder is another folder. A name seen while held could be taken by another program
 * after; the caller does not let such a holder alone refuse a start (see holdDataFolder).
 */
export async function lockFolder(
  data: string,
  platform: NodeJS.Platform = process.platform,
): Promise<FolderLock> {
  try {
    const endpoint = lockEndpoint(data, platform);
    if (!endpoint) return undefined;
    const got = await listenOn(endpoint.path);
    if (got === 'in use') return 'held';
    if (got === 'failed') return undefined;
    let released = false;
    return {
      name: endpoint.name,
      release: () => {
        if (released) return;
        released = true;
        got.close();
      },
    };
  } catch {
    return undefined;
  }
}

/** The endpoint that locks `data` on `platform` (none where it would be a file), and its name. */
export function lockEndpoint(
  data: string,
  platform: NodeJS.Platform,
): { path: string; name: string } | undefined {
  if (platform !== 'win32' && platform !== 'linux') return undefined;
  const { dev, ino } = statSync(data, { bigint: true });
  const name = `sedfs-${sha256Hex(`${lockKey(data)}\n${dev}\n${ino}`)}`;
  if (platform === 'win32') return { path: `\\\\.\\pipe\\${name}`, name };
  // The whole 107 bytes an abstract name can have: Node 20's libuv binds the name padded
  // with zero bytes to that length, later ones (Node 22) as long as it is, and the two
  // would be different names for one folder.
  return { path: `\0${name.padEnd(107, '-')}`, name };
}

/** The folder's lock key, made at its first start; two first starts at once agree on one. */
function lockKey(data: string): string {
  const file = join(data, LOCK_KEY_FILE);
  for (let tries = 0; tries < 20; tries++) {
    try {
      writeFileSync(file, `${randomHexId()}\n`, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const key = readFileSync(file, 'utf8').trim();
    if (/^[0-9a-f]{32}$/.test(key)) return key;
    // Being written by another start this very moment: read again in a moment.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
  }
  // Damaged: no lock (the process id decides) rather than a key two starts could differ on.
  throw new Error(`${file} is damaged`);
}

/** A listener on `path`, kept from holding the process open, or why there is none. */
function listenOn(path: string): Promise<Server | 'in use' | 'failed'> {
  return new Promise((resolve) => {
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

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A real, small file system to fill up: tmpfs with a size limit (O_DIRECT is refused
 * there, so writes take the buffered path), or ext4 on a loop device (O_DIRECT works).
 * Mounting needs root on Linux; `why` says what is missing instead, for `skip`.
 */
export interface SmallDisk {
  /** the mounted folder */
  dir: string;
  unmount(): void;
}

const run = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { stdio: 'pipe' }).toString();

function needsRoot(what: string): string | undefined {
  if (process.platform !== 'linux') return `${what} is mounted with Linux's mount only`;
  if (process.getuid?.() !== 0) return `mounting ${what} needs root`;
  return undefined;
}

/** Why a small tmpfs cannot be mounted here, or undefined when it can. */
export function tmpfsUnavailable(): string | undefined {
  return unavailable('a size-limited tmpfs', () => tmpfsDisk(1));
}

/** Why a small ext4 on a loop device cannot be mounted here, or undefined when it can. */
export function loopExt4Unavailable(): string | undefined {
  return unavailable('ext4 on a loop device', () => loopExt4Disk(8));
}

/** Mounts and unmounts one as a trial: what went wrong, or undefined. */
function unavailable(what: string, mount: () => SmallDisk): string | undefined {
  const why = needsRoot(what);
  if (why) return why;
  try {
    mount().unmount();
    return undefined;
  } catch (err) {
    return `${what} cannot be mounted here: ${(err as Error).message.split('\n')[0]}`;
  }
}

/** A tmpfs of `mib` MiB at `dir` (made if missing; a fresh temporary folder by default). */
export function tmpfsDisk(mib: number, dir = mkdtempSync(join(tmpdir(), 'sedfs-tmpfs-'))): SmallDisk {
  mkdirSync(dir, { recursive: true });
  run('mount', '-t', 'tmpfs', '-o', `size=${mib}m`, 'tmpfs', dir);
  return { dir, unmount: () => unmountAndRemove(dir) };
}

/** ext4 of `mib` MiB on a loop device at `dir`; the image lives beside it and goes with it. */
export function loopExt4Disk(mib: number, dir = mkdtempSync(join(tmpdir(), 'sedfs-ext4-'))): SmallDisk {
  mkdirSync(dir, { recursive: true });
  const image = `${dir}.img`;
  run('truncate', '-s', `${mib}M`, image);
  try {
    // No reserved blocks, no journal: all of it is for the test to fill.
    run('mkfs.ext4', '-q', '-F', '-m', '0', '-O', '^has_journal', image);
    run('mount', '-o', 'loop', image, dir);
  } catch (err) {
    rmSync(image, { force: true });
    throw err;
  }
  return {
    dir,
    unmount: () => {
      unmountAndRemove(dir);
      rmSync(image, { force: true });
    },
  };
}

function unmountAndRemove(dir: string): void {
  try {
    run('umount', dir);
  } catch {
    // Busy for a moment after a process that held it died: lazily, then.
    run('umount', '-l', dir);
  }
  rmSync(dir, { recursive: true, force: true });
}

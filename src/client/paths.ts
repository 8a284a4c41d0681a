import { SedfsError } from '../protocol/errors.js';

/** Longest name, in UTF-8 bytes, as on most local file systems. */
export const MAX_NAME_BYTES = 255;

/** Checks one name: not empty, no slash, not `.` or `..`, at most 255 bytes. */
export function checkName(name: string): string {
  const n = name.normalize('NFC');
  if (n === '' || n === '.' || n === '..' || n.includes('/') || n.includes('\0')) {
    throw new SedfsError('SEDFS_ERR_BAD_REQUEST', `not a valid name: ${JSON.stringify(name)}`);
  }
  if (Buffer.byteLength(n, 'utf8') > MAX_NAME_BYTES) {
    throw new SedfsError(
      'SEDFS_ERR_BAD_REQUEST',
      `name longer than ${MAX_NAME_BYTES} bytes: ${n.slice(0, 40)}…`,
    );
  }
  return n;
}

/**
 * A remote path as its names, from the user's home folder (`/`). Relative paths start
 * at `cwd`; `.` and `..` are resolved here, never sent anywhere.
 */
export function splitPath(path: string, cwd = '/'): string[] {
  const full = path.startsWith('/') ? path : `${cwd}/${path}`;
  const out: string[] = [];
  for (const part of full.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(checkName(part));
  }
  return out;
}

export function joinPath(names: string[]): string {
  return `/${names.join('/')}`;
}

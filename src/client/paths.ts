import { SedfsError } from '../protocol/errors.js';
import { WINDOWS_DEVICE } from '../protocol/windows-names.js';

/** Longest name, in UTF-8 bytes, as on most local file systems. */
export const MAX_NAME_BYTES = 255;

/** Checks one name: not empty, no slash, not `.` or `..`, at most 255 bytes. */
export function checkName(name: string): string {
  const problem = nameProblem(name);
  if (problem) throw new SedfsError('SEDFS_ERR_BAD_REQUEST', problem);
  return name.normalize('NFC');
}

function nameProblem(name: string): string | undefined {
  const n = name.normalize('NFC');
  if (n === '' || n === '.' || n === '..' || n.includes('/') || n.includes('\0'))
    return `not a valid name: ${JSON.stringify(name)}`;
  if (Buffer.byteLength(n, 'utf8') > MAX_NAME_BYTES)
    return `name longer than ${MAX_NAME_BYTES} bytes: ${n.slice(0, 40)}…`;
  return undefined;
}

/** Characters Windows refuses in a file name, control characters included. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it looks for
const WINDOWS_FORBIDDEN = /[\\:*?"<>|\u0000-\u001f]/;

/**
 * Checks a name decrypted from a folder before it is used: as a remote name (a writer
 * of a shared folder could store any bytes, not only what `checkName` lets through)
 * and, with `platform`, as a local file name (`get`, `get -r`, `edit`), so that no name
 * can lead out of the destination folder (`..`, a separator) or be one this system
 * cannot store.
 */
export function checkStoredName(name: string, platform?: NodeJS.Platform): string {
  const problem = storedNameProblem(name, platform);
  if (problem) throw new SedfsError('SEDFS_ERR_BAD_NAME', problem);
  return name;
}

/** Whether `name` can be a local file name here (see checkStoredName). */
export function isStorableName(name: string, platform: NodeJS.Platform = process.platform): boolean {
  return storedNameProblem(name, platform) === undefined;
}

/**
 * A name shaped as NTFS's short (8.3) names are made (`REPORT~1.PDF`: at most eight
 * characters ending in `~` and a number, an extension of at most three): on Windows it
 * may open another file in the folder, whose long name has it as its short one
 * (`Report for Q1.pdf`), and writing it would replace that file.
 */
const WINDOWS_SHORT_NAME = /^(?=[^.]{1,8}(?:\.|$))[^.~]+~\d+(?:\.[^.]{1,3})?$/;

function storedNameProblem(name: string, platform?: NodeJS.Platform): string | undefined {
  if (
    platform === 'win32' &&
    (WINDOWS_FORBIDDEN.test(name) || WINDOWS_DEVICE.test(name) || /[. ]$/.test(name))
  )
    return `${JSON.stringify(name)} cannot be a file name on Windows`;
  if (platform === 'win32' && WINDOWS_SHORT_NAME.test(name))
    return `${JSON.stringify(name)} has the shape of a Windows short (8.3) name, which could be another file's here: get it to a name of your own (sedfs get REMOTE LOCAL-FILE)`;
  return nameProblem(name);
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

/**
 * Whether a remote path the user typed ends in `/`, and so names a folder (`put a.txt
 * /work/`): it must then be one, as for `cp`, not become a file of that name.
 */
export function namesFolder(path: string): boolean {
  return path.endsWith('/');
}

/** The error for a path typed as a folder (`namesFolder`) whose node is a file, or missing. */
export function notAFolder(path: string, found: { entry: { kind: string } } | undefined): SedfsError {
  return found
    ? new SedfsError('SEDFS_ERR_NOT_A_FOLDER', `${path} is a file, not a folder`)
    : new SedfsError('SEDFS_ERR_NOT_FOUND', `no such folder: ${path}`);
}

export function joinPath(names: string[]): string {
  return `/${names.join('/')}`;
}

/**
 * The path of `name` in the folder whose path is `parentPath` (one made by joinPath, so
 * its names were checked): not split and checked again for every entry of a listing.
 */
export function childPath(parentPath: string, name: string): string {
  return parentPath === '/' ? `/${name}` : `${parentPath}/${name}`;
}

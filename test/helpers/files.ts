import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Every regular file under a folder, recursively. Servers keep working while a test looks
 * (a pack may be compacted away between the listing and its stat), so an entry that
 * vanishes in between is simply not listed; the folder itself must exist.
 */
export function allFiles(dir: string): string[] {
  return filesUnder(dir, readdirSync(dir));
}

function filesUnder(dir: string, names: string[]): string[] {
  const out: string[] = [];
  for (const name of names) {
    const p = join(dir, name);
    const st = statSync(p, { throwIfNoEntry: false });
    if (st?.isDirectory()) out.push(...filesUnder(p, unlessGone(() => readdirSync(p)) ?? []));
    else if (st?.isFile()) out.push(p);
  }
  return out;
}

/** Files under `dir` whose bytes contain any of `needles`. */
export function filesContaining(dir: string, needles: Buffer[]): string[] {
  return allFiles(dir).filter((f) => {
    const bytes = unlessGone(() => readFileSync(f));
    return bytes !== undefined && needles.some((n) => bytes.includes(n));
  });
}

/** What `read` returns, or undefined if the entry was deleted meanwhile (servers keep working). */
export function unlessGone<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

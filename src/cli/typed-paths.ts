import type { Command } from 'commander';

/** The arguments of the verbs that name remote paths (the others are local paths, users, text). */
const REMOTE_ARGUMENTS = new Set(['remote', 'path', 'src', 'dst']);

/**
 * Why a remote path typed on Windows is not what it looks like, if it is not. Remote paths
 * use `/` only, so `\work\a.txt` would be one name (which Windows could not `get`). And
 * Git Bash turns an argument that starts with `/` into a Windows path before sedfs sees
 * it (`/photos` becomes `C:/Program Files/Git/photos`), which would be taken as folders
 * named `C:`, `Program Files`, `Git`… in the home folder.
 */
export function windowsPathSlip(
  path: string,
  platform: NodeJS.Platform = process.platform,
): string | undefined {
  if (platform !== 'win32') return undefined;
  if (/^[A-Za-z]:[\\/]/.test(path))
    return `${path} is a path on this computer, not a remote one: remote paths start at your home folder, /. Git Bash turns /photos into C:/Program Files/Git/photos: there write //photos, or set MSYS_NO_PATHCONV=1`;
  if (path.includes('\\'))
    return `remote paths use / between names, not \\: write ${path.replaceAll('\\', '/')}`;
  return undefined;
}

/** Refuses, as a usage error (one line, status 1), a remote path typed the Windows way (windowsPathSlip). */
export function checkTypedRemotePaths(cmd: Command, platform: NodeJS.Platform = process.platform): void {
  cmd.registeredArguments.forEach((arg, i) => {
    const value: unknown = cmd.processedArgs[i];
    if (!REMOTE_ARGUMENTS.has(arg.name()) || typeof value !== 'string') return;
    const slip = windowsPathSlip(value, platform);
    if (slip) cmd.error(`error: ${slip}`);
  });
}

import { join } from 'node:path';
import { dataFolderSync, makeDataFolder } from './files.js';
import { createServerLogger, type ServerLogger } from './logger.js';

/**
 * What main and a file server do first: make their data folder (durably, and private to
 * this user on Windows), open their log in it, and tell that log what the folder could
 * not do, which was found before the log existed.
 */
export async function openServerFolder(opts: {
  data: string;
  /** the process's name in its log, and its log file's (`<name>.log`) */
  name: 'main' | 'fileserver';
  level: string;
  console: boolean;
  syncDir: ((dir: string) => Promise<void>) | undefined;
  /** what a crash may cost where directories cannot be synced, for the warning */
  keptAcrossCrash: string;
}): Promise<ServerLogger & { syncDirectory: (dir: string) => Promise<void> }> {
  // One for all of the server's writes, so a folder that cannot sync directories is told once, not per file.
  const folder = dataFolderSync(opts.syncDir);
  // Durable from the start: what is made in it is only as durable as its entry.
  const made = await makeDataFolder(opts.data, folder.sync);
  const { log, flush } = createServerLogger({
    file: join(opts.data, `${opts.name}.log`),
    name: opts.name,
    level: opts.level,
    console: opts.console,
  });
  if (made.notRestricted)
    log.warn(
      { dir: opts.data, reason: made.notRestricted.message },
      'could not restrict the new data folder to this user with icacls: other users of this machine may read it; restrict it by hand (see docs/operations.md)',
    );
  folder.tellTo((dir, code) =>
    log.warn(
      { dir, code },
      `this file system cannot fsync directories: carrying on; ${opts.keptAcrossCrash} here survive a crash only as far as it keeps renames (said once)`,
    ),
  );
  return { log, flush, syncDirectory: folder.sync };
}

import type { Command } from 'commander';
import { MAIN_CONFIG } from '../main-server/main-config.js';
import { globals } from './env.js';
import { onInterrupt } from './interrupt.js';
import { fail, formatBytes } from './output.js';

/**
 * `sedfs backup DEST`: main's state and keys, copied on main's machine. Main is the one
 * place that knows the namespace, the chunk map and every wrapped key; file servers
 * hold only ciphertext that nothing else can name.
 */
export function registerBackupCommand(program: Command): void {
  program
    .command('backup <dest>')
    .description("copy the main server's state and keys into a new folder, while main runs")
    .option('--data <dir>', "main's data folder", String(MAIN_CONFIG.data.default))
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Run it on main's machine. DEST must not exist: sedfs makes it, private to you, and it
becomes a main data folder holding a consistent snapshot of main.db, the cluster CA, the
ticket key and the join token (keep it so). To restore: stop main, start it with
--data DEST (or copy DEST's files into an empty data folder). The restored main knows
nothing written after the snapshot: it asks each file server for its whole inventory,
and chunks of files written since are deleted as unknown after --extra-grace.

Examples:
  sedfs backup --data /srv/sedfs-main /backups/sedfs-$(date +%F)`,
    )
    .action(async (dest: string, opts: { data: string }, cmd: Command) => {
      // Interrupted, the folder it made goes: half a backup is no backup, and holds
      // secrets. Only once it is made here: DEST may be someone's folder until then.
      // (The snapshot itself is one SQLite call: Ctrl-C waits for it.)
      let forget = () => {};
      try {
        const { backupMain, removeUnfinishedBackup } = await import('../main-server/backup.js');
        const summary = await backupMain(opts.data, dest, {
          onMade: () => {
            forget = onInterrupt(() =>
              process.stderr.write(
                `sedfs: interrupted; ${removeUnfinishedBackup(dest) ?? `the unfinished backup at ${dest} was removed`}\n`,
              ),
            );
          },
          onNotRestricted: (err) =>
            process.stderr.write(
              `sedfs: warning: could not restrict ${dest} to this user with icacls (${err.message}): restrict it by hand (see docs/operations.md)\n`,
            ),
        });
        process.stdout.write(
          globals(cmd).json
            ? `${JSON.stringify({ dest, ...summary })}\n`
            : `backed up main's state to ${dest}: main.db (${formatBytes(summary.databaseBytes)}), ${summary.keys.join(', ')}\n`,
        );
      } catch (err) {
        fail(err);
      } finally {
        forget();
      }
    });
}

import type { Command } from 'commander';
import { MAIN_CONFIG } from '../main-server/main-config.js';
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
Run it on main's machine. DEST must be new or empty; it becomes a main data folder
holding a consistent snapshot of main.db, the cluster CA, the ticket key and the join
token (keep it as private as main's own folder). To restore: stop main, start it with
--data DEST (or copy DEST's files into an empty data folder). The restored main knows
nothing written after the snapshot: it asks each file server for its whole inventory,
and chunks of files written since are deleted as unknown after --extra-grace.

Examples:
  sedfs backup --data /srv/sedfs-main /backups/sedfs-$(date +%F)`,
    )
    .action(async (dest: string, opts: { data: string; json?: boolean }) => {
      try {
        const { backupMain } = await import('../main-server/backup.js');
        const summary = await backupMain(opts.data, dest);
        process.stdout.write(
          opts.json
            ? `${JSON.stringify({ dest, ...summary })}\n`
            : `backed up main's state to ${dest}: main.db (${formatBytes(summary.databaseBytes)}), ${summary.keys.join(', ')}\n`,
        );
      } catch (err) {
        fail(err);
      }
    });
}

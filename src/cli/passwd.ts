import type { Command } from 'commander';
import { SedfsError } from '../protocol/errors.js';
import type { VerbEnv } from './env.js';
import { askPassphrase } from './prompt.js';

/**
 * `sedfs passwd USER`: locks the user's keys on this machine under a new passphrase. The
 * passphrase never leaves the machine and main never sees it, so this is local: the key
 * file is replaced whole (a crash leaves the old one or the new one), and copies of it
 * made elsewhere still open with the old passphrase.
 */
export function registerPasswdCommand(program: Command, env: VerbEnv): void {
  program
    .command('passwd <user>')
    .description('change the passphrase that locks your keys on this machine')
    .addHelpText(
      'after',
      `
Asks for the current passphrase (or takes SEDFS_PASSPHRASE), then the new one twice (or
takes SEDFS_NEW_PASSPHRASE). Only this profile's key file changes: copies of it on other
machines, and backups, still open with the old passphrase; replace them with the new file.
Sessions stay logged in.

Examples:
  sedfs passwd alice`,
    )
    .action((user: string, _opts: unknown, cmd: Command) =>
      env.run(async () => {
        const profile = env.profile(cmd);
        const current = await askPassphrase(false, {
          variable: 'SEDFS_PASSPHRASE',
          prompt: 'Current passphrase',
        });
        // Checked before the new one is asked for: a wrong one stops here, the file untouched.
        const identity = await profile.unlockKeys(user, current);
        const next = await askPassphrase(true, {
          variable: 'SEDFS_NEW_PASSPHRASE',
          prompt: 'New passphrase',
        });
        if (next === current)
          throw new SedfsError('SEDFS_ERR_CONFIG', 'the new passphrase is the current one');
        await profile.saveKeys(user, identity, next);
        env.out(
          `passphrase changed for ${user}; copies of the key file elsewhere still open with the old one`,
        );
      }),
    );
}

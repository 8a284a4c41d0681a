import type { Command } from 'commander';
import { share } from '../client/sharing.js';
import type { VerbEnv } from './env.js';

export function registerShareCommand(program: Command, env: VerbEnv): void {
  program
    .command('share <path> <user>')
    .description(
      "give USER read or write access to a file or folder you own (a folder's covers everything in it)",
    )
    .option('--read', 'read only (the default)')
    .option('--write', 'read and write')
    .option('--accept-new-key', "share even though USER's key changed since you pinned it")
    .addHelpText(
      'after',
      `
The file's key is sealed to USER's public key on this machine. The first time you
share with someone their key fingerprint is shown and pinned; if it ever changes,
share refuses until you confirm with --accept-new-key.

Examples:
  sedfs share /reports bob --read
  sedfs share /team-notes carol --write
They find it under /shared/YOURNAME/reports.`,
    )
    .action(
      (
        path: string,
        user: string,
        opts: { read?: boolean; write?: boolean; acceptNewKey?: boolean },
        cmd: Command,
      ) =>
        env.run(async () => {
          if (opts.read && opts.write) throw new Error('choose one of --read and --write');
          const fs = await env.fileSystem(cmd);
          const perm = opts.write ? 'write' : 'read';
          const res = await share(fs, await env.pins(cmd), path, user, perm, {
            acceptNewKey: opts.acceptNewKey === true,
            cwd: env.cwd,
          });
          if (res.newlyPinned) env.out(`pinned ${user}'s key: fingerprint ${res.fingerprint}`);
          env.out(`shared ${path} with ${user} (${perm})`);
        }),
    );
}

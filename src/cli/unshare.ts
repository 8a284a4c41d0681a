import type { Command } from 'commander';
import { finishRotations, type RekeyOptions, unshare } from '../client/sharing.js';
import { SedfsError } from '../protocol/errors.js';
import type { VerbEnv } from './env.js';
import { printable } from './output.js';

export function registerUnshareCommand(program: Command, env: VerbEnv): void {
  program
    .command('unshare [path] [user]')
    .description('take back what you shared with USER; the keys of everything under it are replaced')
    .option('--finish', 'finish replacing the keys where an unshare left it unfinished')
    .option(
      '--accept-new-key <user>',
      "re-seal to USER's new key though it changed since you pinned it (repeatable)",
      (user: string, users: string[]) => [...users, user],
      [] as string[],
    )
    .addHelpText(
      'after',
      `
Main refuses USER at once. Every key under PATH is then replaced (no re-upload), so
whatever is written from now on is under keys USER never had. Should that stop
halfway (a lost connection, a crash), USER stays refused, main refuses changes under
PATH until the keys are replaced, and this says so: run \`sedfs unshare --finish\`.
The new keys are sealed to the users who keep a share under PATH after their keys
are checked against the ones you pinned; a changed key stops it until you confirm
it with --accept-new-key USER.

Examples:
  sedfs unshare /reports bob
  sedfs unshare --finish`,
    )
    .action(
      (
        path: string | undefined,
        user: string | undefined,
        opts: { finish?: boolean; acceptNewKey: string[] },
        cmd: Command,
      ) =>
        env.run(async () => {
          const fs = await env.fileSystem(cmd);
          const pins = await env.pins(cmd);
          const rekey: RekeyOptions = {
            acceptNewKeys: opts.acceptNewKey,
            onNotice: (message) => process.stderr.write(`sedfs: note: ${printable(message)}\n`),
          };
          if (opts.finish) {
            if (path !== undefined)
              throw new SedfsError(
                'SEDFS_ERR_BAD_REQUEST',
                '--finish takes no path: it finishes every one left',
              );
            const done = await finishRotations(fs, pins, rekey);
            if (done.length === 0) env.out('no unshare left replacing keys');
            for (const r of done)
              env.out(
                r.byAnother
                  ? `nothing left to replace under ${r.path}: another unshare finished it (or it was removed)`
                  : `replaced the ${r.nodes} keys under ${r.path}`,
              );
            return;
          }
          if (path === undefined || user === undefined)
            throw new SedfsError(
              'SEDFS_ERR_BAD_REQUEST',
              'usage: sedfs unshare PATH USER, or sedfs unshare --finish',
            );
          const res = await unshare(fs, pins, path, user, env.cwd, rekey);
          env.out(
            res.byAnother
              ? `unshared ${path} from ${user}; its keys were replaced by another unshare (or it was removed)`
              : `unshared ${path} from ${user}; ${res.nodes} keys replaced`,
          );
          // Not revoked everywhere: said, so the owner does not believe it was.
          if (res.stillHas)
            process.stderr.write(
              `sedfs: note: ${user} can still ${res.stillHas} ${path} through a share of a folder above it\n`,
            );
          if (res.sharesInside > 0)
            process.stderr.write(
              `sedfs: note: ${user} keeps ${res.sharesInside} share(s) inside ${path}; unshare those too to revoke them\n`,
            );
        }),
    );
}

import type { Command } from 'commander';
import { unshare } from '../client/sharing.js';
import type { VerbEnv } from './env.js';

export function registerUnshareCommand(program: Command, env: VerbEnv): void {
  program
    .command('unshare <path> <user>')
    .description('take back what you shared with USER; the keys of everything under it are replaced')
    .addHelpText(
      'after',
      `
Main refuses USER at once. Every key under PATH is then replaced (no re-upload), so
whatever is written from now on is under keys USER never had.

Example:
  sedfs unshare /reports bob`,
    )
    .action((path: string, user: string, _opts: unknown, cmd: Command) =>
      env.run(async () => {
        const fs = await env.fileSystem(cmd);
        const res = await unshare(fs, path, user, env.cwd);
        env.out(`unshared ${path} from ${user}; ${res.nodes} keys replaced`);
      }),
    );
}

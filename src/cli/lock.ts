import type { Command } from 'commander';
import { lock, unlock } from '../client/sharing.js';
import type { VerbEnv } from './env.js';

export function registerLockCommands(program: Command, env: VerbEnv): void {
  program
    .command('lock <path>')
    .description('take an exclusive write lock; others cannot change it until you unlock or it expires')
    .option('--ttl <seconds>', 'how long the lock lasts (run lock again to renew)', '600')
    .addHelpText('after', '\nExamples:\n  sedfs lock /report.docx\n  sedfs lock /project --ttl 3600')
    .action((path: string, opts: { ttl: string }, cmd: Command) =>
      env.run(async () => {
        const fs = await env.fileSystem(cmd);
        const res = await lock(fs, path, Number(opts.ttl), env.cwd);
        env.out(`locked ${path} by ${res.holder} until ${new Date(res.expiresAt).toISOString()}`);
      }),
    );
  program
    .command('unlock <path>')
    .description('release your lock (the owner may release anyone’s)')
    .addHelpText('after', '\nExample:\n  sedfs unlock /report.docx')
    .action((path: string, _opts: unknown, cmd: Command) =>
      env.run(async () => {
        const fs = await env.fileSystem(cmd);
        await unlock(fs, path, env.cwd);
      }),
    );
}

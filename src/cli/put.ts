import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { SedfsError } from '../protocol/errors.js';
import type { VerbEnv } from './env.js';
import { putFile, putTree, remoteTarget } from './transfer.js';

export function registerPutCommand(program: Command, env: VerbEnv): void {
  program
    .command('put <local> [remote]')
    .description('encrypt and upload a file (or a folder with -r); a new version replaces the old atomically')
    .option('-r, --recursive', 'upload a folder and everything in it')
    .addHelpText(
      'after',
      '\nExamples:\n  sedfs put report.pdf                # to /report.pdf\n  sedfs put report.pdf /work/         # into a folder\n  sedfs put -r photos /backup/photos',
    )
    .action((local: string, remote: string | undefined, opts: { recursive?: boolean }, cmd: Command) =>
      env.run(async () => {
        const fs = await env.fileSystem(cmd);
        const st = await stat(local).catch(() => {
          throw new SedfsError('SEDFS_ERR_NOT_FOUND', `no such local file: ${local}`);
        });
        const target = await remoteTarget(fs, local, remote, env.cwd);
        const warn = (w: string) => process.stderr.write(`sedfs: warning: ${w}\n`);
        if (st.isDirectory()) {
          if (!opts.recursive) throw new SedfsError('SEDFS_ERR_IS_A_FOLDER', `${local} is a folder (use -r)`);
          await putTree(fs, local, target, warn);
        } else {
          await putFile(fs, local, target, warn);
        }
      }),
    );
}

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
    .option(
      '-T, --no-target-directory',
      'with -r: REMOTE is the folder to write into, even if it exists (not REMOTE/LOCAL)',
    )
    .option(
      '--skip-existing',
      'with -r: leave files already in the target with the same size, not modified since, as they are (to finish a put -r that stopped)',
    )
    .addHelpText(
      'after',
      [
        '',
        'When REMOTE is a folder already, LOCAL goes inside it (as cp does) unless -T is given.',
        'A REMOTE ending in / names a folder: a file is put into it, and it must exist.',
        '--skip-existing compares size and time (as rsync does): a file is left if the target has one of',
        'the same size stored after it was last modified here. One changed in place at the same size',
        'with its modification time set back is left too.',
        '',
        'Examples:',
        '  sedfs put report.pdf                # to /report.pdf',
        '  sedfs put report.pdf /work/         # into a folder',
        '  sedfs put -r photos /backup/photos',
        '  sedfs put -r --skip-existing -T photos /backup/photos   # after one that stopped part way',
      ].join('\n'),
    )
    .action(
      (
        local: string,
        remote: string | undefined,
        opts: { recursive?: boolean; skipExisting?: boolean; targetDirectory?: boolean },
        cmd: Command,
      ) =>
        env.run(async () => {
          const fs = await env.fileSystem(cmd);
          const st = await stat(local).catch(() => {
            throw new SedfsError('SEDFS_ERR_NOT_FOUND', `no such local file: ${local}`);
          });
          if (!opts.recursive && (opts.skipExisting || opts.targetDirectory === false))
            throw new SedfsError('SEDFS_ERR_BAD_REQUEST', '--skip-existing and -T go with -r (a folder)');
          if (opts.targetDirectory === false && remote === undefined)
            throw new SedfsError('SEDFS_ERR_BAD_REQUEST', '-T needs REMOTE: the file or folder to write');
          const target = await remoteTarget(fs, local, remote, env.cwd, {
            asTarget: opts.targetDirectory === false,
            localIsFolder: st.isDirectory(),
          });
          const warn = (w: string) => process.stderr.write(`sedfs: warning: ${w}\n`);
          if (st.isDirectory()) {
            if (!opts.recursive)
              throw new SedfsError('SEDFS_ERR_IS_A_FOLDER', `${local} is a folder (use -r)`);
            const done = await putTree(fs, local, target, {
              onWarning: warn,
              skipExisting: opts.skipExisting,
            });
            env.out(
              `uploaded ${done.uploaded} file(s) to ${target}` +
                (opts.skipExisting ? `; left ${done.skipped} already there, unchanged` : ''),
            );
          } else {
            await putFile(fs, local, target, warn);
          }
        }),
    );
}

import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { SedfsError } from '../protocol/errors.js';
import type { VerbEnv } from './env.js';
import { endsWithSeparator, getFile, getTree, localPath } from './transfer.js';

export function registerGetCommand(program: Command, env: VerbEnv): void {
  program
    .command('get <remote> [local]')
    .description('download and decrypt a file (or a folder with -r); every chunk is authenticated')
    .option('-r, --recursive', 'download a folder and everything in it')
    .addHelpText(
      'after',
      '\nA LOCAL ending in / (or \\ on Windows) names a folder: the file goes into it, made if missing.\n\nExamples:\n  sedfs get /report.pdf               # to ./report.pdf\n  sedfs get /report.pdf ~/Downloads/\n  sedfs get -r /backup/photos ./photos',
    )
    .action((remote: string, local: string | undefined, opts: { recursive?: boolean }, cmd: Command) =>
      env.run(async () => {
        const fs = await env.fileSystem(cmd);
        const node = await fs.resolve(remote, env.cwd);
        const name = node.name || 'home';
        let dst = local ?? localPath('.', name);
        const st = await stat(dst).catch(() => undefined);
        // Into LOCAL when it is a folder, or is written as one (`get /a.txt new/`: made,
        // as a file's missing folders are, rather than failing once the file is fetched).
        const intoFolder = st?.isDirectory()
          ? node.entry.kind === 'file' || local === undefined || endsWithSeparator(local)
          : node.entry.kind === 'file' && local !== undefined && endsWithSeparator(local);
        if (intoFolder) dst = localPath(dst, name);
        if (node.entry.kind === 'dir') {
          if (!opts.recursive)
            throw new SedfsError('SEDFS_ERR_IS_A_FOLDER', `${node.path} is a folder (use -r)`);
          await getTree(fs, node, dst, '/');
        } else {
          await getFile(fs, node, dst, '/');
        }
      }),
    );
}

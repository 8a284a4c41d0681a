import type { Command } from 'commander';
import { FILE_SERVER_CONFIG, startFileServer } from '../file-server/file-server.js';
import { addConfigOptions, configFromCommand, readConfigFile } from './options.js';
import { closeOnSignal, fail } from './output.js';
import { askIfInteractive, resolveMainUrl } from './prompt.js';

export function registerFileServerCommand(program: Command): void {
  const cmd = program
    .command('fileserver')
    .description('run a file server: stores replicated chunks, joins a main server')
    .addHelpText(
      'after',
      `
The main server URL comes from --main, SEDFS_MAIN, or a prompt; the join token from
--join-token, SEDFS_JOIN_TOKEN, or a prompt.

Examples:
  sedfs fileserver --main http://10.0.0.5:7000 --join-token <token> --data /srv/sedfs-fs1
  SEDFS_MAIN=http://10.0.0.5:7000 SEDFS_JOIN_TOKEN=<token> sedfs fileserver --port 0`,
    );
  addConfigOptions(cmd, FILE_SERVER_CONFIG).action(async (opts: Record<string, unknown>) => {
    try {
      const file = await readConfigFile(
        (opts.config as string | undefined) ?? (process.env.SEDFS_CONFIG || undefined),
      );
      const main = await resolveMainUrl(
        (opts.main as string | undefined) ?? (process.env.SEDFS_MAIN || (file.main as string | undefined)),
      );
      const joinToken =
        (opts.joinToken as string | undefined) ??
        (process.env.SEDFS_JOIN_TOKEN ||
          (file['join-token'] as string | undefined) ||
          (await askIfInteractive('Cluster join token: ', '--join-token or SEDFS_JOIN_TOKEN', true)));
      const config = await configFromCommand(FILE_SERVER_CONFIG, opts, { main, joinToken });
      const fs = await startFileServer({
        ...config,
        main: config.main as string,
        joinToken: config.joinToken as string,
      });
      process.stdout.write(`SEDFS file server ${fs.id} listening at ${fs.url}\n`);
      closeOnSignal(fs.close);
      fs.joined.catch((err) => fs.close().finally(() => fail(err)));
    } catch (err) {
      fail(err);
    }
  });
}

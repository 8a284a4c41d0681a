import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { FILE_SERVER_CONFIG } from '../file-server/file-server-config.js';
import { parseJoinString } from '../protocol/join-string.js';
import { addConfigOptions, configFromCommand, readConfigFile } from './options.js';
import { closeOnSignal, fail } from './output.js';
import { askIfInteractive, resolveMainUrl } from './prompt.js';

/** Whether an earlier join left the CA in the data folder, so no fingerprint need be asked. */
function hasSavedCa(opts: Record<string, unknown>, file: Record<string, unknown>): boolean {
  const data = (opts.data as string | undefined) ?? (file.data as string | undefined) ?? 'sedfs-fileserver';
  return existsSync(join(data, 'tls', 'ca.pem'));
}

export function registerFileServerCommand(program: Command): void {
  const cmd = program
    .command('fileserver')
    .description('run a file server: stores replicated chunks, joins a main server')
    .addHelpText(
      'after',
      `
Joining needs main's address, the join token and the cluster CA fingerprint: all three
in one join string (--join or SEDFS_JOIN; main keeps it in <data>/join), or each on its
own (--main, --join-token, --ca-fingerprint, their SEDFS_* variables, or a prompt). The
fingerprint is checked the first time; the CA is then kept in <data>/tls/.

Examples:
  sedfs fileserver --join "sedfs://TOKEN@10.0.0.5:7000#FINGERPRINT" --data /srv/sedfs-fs1
  SEDFS_MAIN=https://10.0.0.5:7000 SEDFS_JOIN_TOKEN=<token> SEDFS_CA_FINGERPRINT=<fp> sedfs fileserver --port 0`,
    );
  addConfigOptions(cmd, FILE_SERVER_CONFIG).action(async (opts: Record<string, unknown>) => {
    try {
      const file = await readConfigFile(
        (opts.config as string | undefined) ?? (process.env.SEDFS_CONFIG || undefined),
      );
      const pick = (flag: string, env: string, key: string) =>
        (opts[flag] as string | undefined) ?? (process.env[env] || (file[key] as string | undefined));
      const joinText = pick('join', 'SEDFS_JOIN', 'join');
      const joined = joinText ? parseJoinString(joinText) : undefined;
      const insecure =
        opts.insecureHttp === true ||
        process.env.SEDFS_INSECURE_HTTP === 'true' ||
        file['insecure-http'] === true;
      const main = joined?.mainUrl ?? (await resolveMainUrl(pick('main', 'SEDFS_MAIN', 'main')));
      const joinToken =
        joined?.joinToken ??
        (pick('joinToken', 'SEDFS_JOIN_TOKEN', 'join-token') ||
          (await askIfInteractive('Cluster join token: ', '--join, --join-token or SEDFS_JOIN_TOKEN', true)));
      const caFingerprint =
        joined?.caFingerprint ??
        pick('caFingerprint', 'SEDFS_CA_FINGERPRINT', 'ca-fingerprint') ??
        (insecure || hasSavedCa(opts, file)
          ? undefined
          : await askIfInteractive(
              'Cluster CA fingerprint: ',
              '--join, --ca-fingerprint or SEDFS_CA_FINGERPRINT',
            ));
      const config = await configFromCommand(FILE_SERVER_CONFIG, opts, {
        main,
        joinToken,
        ...(caFingerprint ? { caFingerprint } : {}),
      });
      const { startFileServer } = await import('../file-server/file-server.js');
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

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { tuneFileServerHeap } from '../common/gc-tuning.js';
import { FILE_SERVER_CONFIG } from '../file-server/file-server-config.js';
import { parseJoinString } from '../protocol/join-string.js';
import { addConfigOptions, configFromCommand } from './options.js';
import { fail, stopOnSignal } from './output.js';
import { askIfInteractive, resolveMainUrl } from './prompt.js';

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
    let stopping: ReturnType<typeof stopOnSignal> | undefined;
    try {
      // Flags, environment and config file first; what they leave open comes from the
      // join string or, on a terminal, a prompt.
      const base = await configFromCommand(FILE_SERVER_CONFIG, opts);
      const joined = base.join ? parseJoinString(base.join) : undefined;
      const main = joined?.mainUrl ?? (await resolveMainUrl(base.main));
      const joinToken =
        joined?.joinToken ??
        (base.joinToken ||
          (await askIfInteractive('Cluster join token: ', '--join, --join-token or SEDFS_JOIN_TOKEN', true)));
      const caFingerprint =
        joined?.caFingerprint ??
        base.caFingerprint ??
        (base.insecureHttp || existsSync(join(base.data, 'tls', 'ca.pem'))
          ? undefined
          : await askIfInteractive(
              'Cluster CA fingerprint: ',
              '--join, --ca-fingerprint or SEDFS_CA_FINGERPRINT',
            ));
      const config = { ...base, main, joinToken, ...(caFingerprint ? { caFingerprint } : {}) };
      tuneFileServerHeap();
      const { startFileServer } = await import('../file-server/file-server.js');
      stopping = stopOnSignal();
      const fs = await startFileServer(config, { signal: stopping.signal });
      process.stdout.write(`SEDFS file server ${fs.id} listening at ${fs.url}\n`);
      stopping.whenUp(fs.close);
      fs.joined.catch((err) => fs.close().finally(() => fail(err)));
    } catch (err) {
      if (stopping) stopping.stoppedEarly(err);
      else fail(err);
    }
  });
}

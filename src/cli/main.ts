import { join } from 'node:path';
import type { Command } from 'commander';
import { parseConfig } from '../common/config.js';
import { MAIN_CONFIG, startMain } from '../main-server/main-server.js';
import { addConfigOptions, definedOptions } from './options.js';
import { closeOnSignal, fail } from './output.js';

export function registerMainCommand(program: Command): void {
  const cmd = program
    .command('main')
    .description('run the main server: cluster registry, placement, tickets')
    .addHelpText(
      'after',
      `
Examples:
  sedfs main --data /srv/sedfs-main --port 7000
  SEDFS_JOIN_TOKEN=s3cret sedfs main --replicas 2 --heartbeat-timeout 10`,
    );
  addConfigOptions(cmd, MAIN_CONFIG).action(async (opts: Record<string, unknown>) => {
    try {
      const config = parseConfig(MAIN_CONFIG, definedOptions(opts), process.env);
      const main = await startMain(config);
      const lines = [`SEDFS main server is up. Reach it at:`, ...main.urls.map((u) => `  ${u}`)];
      lines.push(
        main.joinTokenCreated
          ? `Cluster join token (give it to file servers; also kept in ${join(config.data, 'join-token')}):\n  ${main.joinToken}`
          : `Cluster join token: in ${join(config.data, 'join-token')}`,
      );
      lines.push(`Start a file server: sedfs fileserver --main ${main.url} --join-token <token>`);
      process.stdout.write(`${lines.join('\n')}\n`);
      closeOnSignal(main.close);
    } catch (err) {
      fail(err);
    }
  });
}

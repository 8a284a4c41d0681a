import { join } from 'node:path';
import type { Command } from 'commander';
import { holdYoungGeneration } from '../common/gc-tuning.js';
import { MAIN_CONFIG } from '../main-server/main-config.js';
import type { RunningMain } from '../main-server/main-server.js';
import { addConfigOptions, configFromCommand } from './options.js';
import { fail, stopOnSignal } from './output.js';
import { hintLines, startFileServer } from './shell-hints.js';

export function registerMainCommand(program: Command): void {
  const cmd = program
    .command('main')
    .description('run the main server: cluster registry, placement, tickets')
    .addHelpText(
      'after',
      `
Examples:
  sedfs main --data /srv/sedfs-main --port 7000
  SEDFS_JOIN_TOKEN=s3cret sedfs main --replicas 2 --heartbeat-timeout 10
  sedfs main --config /etc/sedfs/main.json   # {"heartbeat-timeout": 10, "lost-after": 300}

Settings come from flags first, then SEDFS_* environment variables, then the config file.`,
    );
  addConfigOptions(cmd, MAIN_CONFIG).action(async (opts: Record<string, unknown>) => {
    let stopping: ReturnType<typeof stopOnSignal> | undefined;
    try {
      const config = await configFromCommand(MAIN_CONFIG, opts);
      // Loaded only here: client verbs never pay for the server's modules.
      holdYoungGeneration();
      const { startMain } = await import('../main-server/main-server.js');
      stopping = stopOnSignal();
      const main = await startMain(config);
      const lines = startupLines(main, config.data);
      process.stdout.write(`${lines.join('\n')}\n`);
      stopping.whenUp(main.close);
    } catch (err) {
      if (stopping) stopping.stoppedEarly(err);
      else fail(err);
    }
  });
}

/** What main prints once it is up: where to reach it, and how to start a file server in the user's shell. */
export function startupLines(
  main: Pick<RunningMain, 'urls' | 'url' | 'caFingerprint' | 'joinToken' | 'joinTokenCreated' | 'joinString'>,
  data: string,
  platform: NodeJS.Platform = process.platform,
): string[] {
  const lines = [`SEDFS main server is up. Reach it at:`, ...main.urls.map((u) => `  ${u}`)];
  if (main.caFingerprint) lines.push(`Cluster CA fingerprint (clients check it): ${main.caFingerprint}`);
  else lines.push('WARNING: plain HTTP (--insecure-http): for debugging only, never on a real network');
  lines.push(
    main.joinTokenCreated
      ? `Cluster join token (give it to file servers; also kept in ${join(data, 'join-token')}):\n  ${main.joinToken}`
      : `Cluster join token: in ${join(data, 'join-token')}`,
  );
  lines.push(
    ...(main.joinString
      ? hintLines('Start a file server: ', startFileServer(join(data, 'join'), platform))
      : [`Start a file server: sedfs fileserver --insecure-http --main ${main.url} --join-token <token>`]),
  );
  return lines;
}

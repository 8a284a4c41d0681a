import type { Command } from 'commander';
import { ClusterClient } from '../client/cluster-client.js';
import { fail, formatBytes, table } from './output.js';
import { resolveMainUrl } from './prompt.js';

export function registerServersCommand(program: Command): void {
  program
    .command('servers')
    .description('list the file servers main knows, with state and space')
    .option('--main <url>', 'main server URL [env SEDFS_MAIN]')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  sedfs servers --main http://127.0.0.1:7000\n  sedfs servers --json | jq .servers',
    )
    .action(async (opts: { main?: string; json?: boolean }) => {
      const client = new ClusterClient(await resolveMainUrl(opts.main).catch(fail));
      try {
        const { servers } = await client.servers();
        if (opts.json) {
          process.stdout.write(`${JSON.stringify({ servers }, null, 2)}\n`);
          return;
        }
        const now = Date.now();
        const rows = servers.map((s) => [
          s.id,
          s.url,
          s.state,
          formatBytes(s.usedBytes),
          formatBytes(s.freeBytes),
          String(s.chunkCount),
          `${((now - s.lastHeartbeat) / 1000).toFixed(1)}s ago`,
        ]);
        const up = servers.filter((s) => s.state === 'up').length;
        process.stdout.write(
          `${table(['ID', 'ADDRESS', 'STATE', 'USED', 'FREE', 'CHUNKS', 'LAST HEARTBEAT'], rows)}\n${up} of ${servers.length} up\n`,
        );
      } catch (err) {
        fail(err);
      } finally {
        await client.close();
      }
    });
}

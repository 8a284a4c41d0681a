import type { Command } from 'commander';
import type { ServerView } from '../protocol/main-api.js';
import { globals, type VerbEnv } from './env.js';
import { formatBytes, table } from './output.js';

export function registerServersCommand(program: Command, env: VerbEnv): void {
  program
    .command('servers')
    .description(
      'list the file servers main knows, with state and space (needs a session); "enrolled" ones got a certificate but never registered',
    )
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  sedfs servers\n  sedfs servers --json | jq .servers')
    .action((_opts: unknown, cmd: Command) =>
      env.run(async () => {
        const { client } = await env.session(cmd);
        const { servers } = await client.servers();
        if (globals(cmd).json) {
          env.json({ servers }, 2);
          return;
        }
        env.out(serversTable(servers, Date.now()));
      }),
    );
}

/** What `sedfs servers` prints: a row per server, how many are up, and what "unknown" means. */
export function serversTable(servers: ServerView[], now: number): string {
  const rows = servers.map((s) => [
    s.id,
    s.url || '-',
    s.state,
    formatBytes(s.usedBytes),
    s.freeUnknown ? 'unknown' : formatBytes(s.freeBytes),
    String(s.chunkCount),
    s.lastHeartbeat ? `${((now - s.lastHeartbeat) / 1000).toFixed(1)}s ago` : 'never',
  ]);
  const up = servers.filter((s) => s.state === 'up').length;
  // Removed servers and ids that only enrolled are listed, but are not in the cluster.
  const members = servers.filter((s) => s.state === 'up' || s.state === 'down').length;
  const unknown = servers.filter((s) => s.freeUnknown);
  const why =
    unknown.length > 0
      ? `\nFREE unknown: the server cannot read its disk's free space (statfs fails there; see its log). New chunks are placed as if it had ${unknown.map((s) => `${formatBytes(s.freeBytes)} (${s.id.slice(0, 8)})`).join(', ')}.`
      : '';
  return `${table(['ID', 'ADDRESS', 'STATE', 'USED', 'FREE', 'CHUNKS', 'LAST HEARTBEAT'], rows)}\n${up} of ${members} up${why}`;
}

import type { Command } from 'commander';
import type { CheckResponse } from '../protocol/main-api.js';
import { globals, type VerbEnv } from './env.js';
import { formatBytes, table } from './output.js';

export function registerCheckCommand(program: Command, env: VerbEnv): void {
  program
    .command('check')
    .description('(admin) cluster health: servers, missing and extra chunks, under-replication, repair')
    .option('--repair', 'run repair now and wait until nothing more can be restored')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  sedfs check\n  sedfs check --repair --json')
    .action((opts: { repair?: boolean }, cmd: Command) =>
      env.run(async () => {
        const { client } = await env.session(cmd);
        const res = opts.repair
          ? await client.call<CheckResponse>('POST', '/v1/check/repair', {})
          : await client.call<CheckResponse>('GET', '/v1/check');
        if (globals(cmd).json) {
          env.out(JSON.stringify(res));
          return;
        }
        const rows = res.servers.map((s) => [
          s.id,
          s.state,
          String(s.chunks),
          String(s.missing),
          String(s.extra),
        ]);
        env.out(
          [
            table(['SERVER', 'STATE', 'CHUNKS', 'MISSING', 'EXTRA'], rows),
            `${res.chunks} chunks, ${res.underReplicated} under-replicated`,
            `repaired ${res.repair.chunks} replicas (${formatBytes(res.repair.bytes)}), ${res.repair.failures} failed copies`,
          ].join('\n'),
        );
      }),
    );
}

import type { Command } from 'commander';
import type { CheckResponse } from '../protocol/main-api.js';
import { globals, type VerbEnv } from './env.js';
import { formatBytes, table } from './output.js';

export function registerCheckCommand(program: Command, env: VerbEnv): void {
  program
    .command('check')
    .description('(admin) cluster health: servers, missing, extra and corrupt chunks, repair')
    .option('--repair', 'compare every server with what main expects, repair, and wait until done')
    .option('--verify', 'first re-hash every replica on every server (reads everything; implies --repair)')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  sedfs check\n  sedfs check --repair --json\n  sedfs check --verify   # can take long: every stored byte is read',
    )
    .action((opts: { repair?: boolean; verify?: boolean }, cmd: Command) =>
      env.run(async () => {
        const { client } = await env.session(cmd);
        const res =
          opts.repair || opts.verify
            ? await client.call<CheckResponse>(
                'POST',
                '/v1/check/repair',
                opts.verify ? { verify: true } : {},
                {
                  // It takes as long as it takes: reading every byte on every server, then repairing.
                  headersTimeoutMs: 0,
                },
              )
            : await client.call<CheckResponse>('GET', '/v1/check');
        if (globals(cmd).json) {
          env.json(res);
          return;
        }
        const rows = res.servers.map((s) => [
          s.id,
          s.state,
          String(s.chunks),
          String(s.missing),
          String(s.extra),
          String(s.corrupt),
          `${s.audits.passed}/${s.audits.passed + s.audits.failed}`,
        ]);
        const lines = [
          table(['SERVER', 'STATE', 'CHUNKS', 'MISSING', 'EXTRA', 'CORRUPT', 'AUDITS OK'], rows),
          `${res.chunks} chunks, ${res.underReplicated} under-replicated (repair queue), ${res.surplus} surplus copies`,
          ...(res.withoutLiveCopy > 0
            ? [
                `${res.withoutLiveCopy} under-replicated chunks have no good copy on a live server: they cannot be repaired until a server holding one is back`,
              ]
            : []),
          `repaired ${res.repair.chunks} replicas (${formatBytes(res.repair.bytes)}), ${res.repair.failures} failed copies`,
        ];
        for (const v of res.verify ?? [])
          lines.push(
            v.error
              ? `verify ${v.server}: could not ask it (${v.error})`
              : `verify ${v.server}: ${v.checked} replicas re-hashed, ${v.corrupt} corrupt`,
          );
        env.out(lines.join('\n'));
      }),
    );
}

import type { Command } from 'commander';
import { perms } from '../client/sharing.js';
import { globals, type VerbEnv } from './env.js';
import { table } from './output.js';

export function registerPermsCommand(program: Command, env: VerbEnv): void {
  program
    .command('perms <path>')
    .description('show the owner of a file or folder, who else has access, and where it comes from')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  sedfs perms /reports\n  sedfs perms /shared/alice/reports --json')
    .action((path: string, _opts: unknown, cmd: Command) =>
      env.run(async () => {
        const fs = await env.fileSystem(cmd);
        const res = await perms(fs, path, env.cwd);
        if (globals(cmd).json) {
          env.json(res);
          return;
        }
        const rows = [
          [res.owner, 'owner', ''],
          ...res.grants.map((g) => [
            g.user,
            g.perm,
            g.inherited ? `inherited from ${g.from}` : 'on this path',
          ]),
        ];
        env.out(`${res.path} (you: ${res.you})\n${table(['USER', 'ACCESS', 'FROM'], rows)}`);
      }),
    );
}

import type { Command } from 'commander';
import { me } from '../client/account.js';
import { fingerprint } from '../crypto/identity.js';
import { globals, type VerbEnv } from './env.js';

export function registerWhoamiCommand(program: Command, env: VerbEnv): void {
  program
    .command('whoami')
    .description('show the signed-in user and their key fingerprint')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  sedfs whoami')
    .action((_opts: unknown, cmd: Command) =>
      env.run(async () => {
        const { client } = await env.session(cmd);
        const info = await me(client);
        const fp = fingerprint(info);
        if (globals(cmd).json) {
          env.json({
            user: info.name,
            id: info.id,
            admin: info.admin,
            fingerprint: fp,
            main: client.mainUrl,
          });
        } else {
          env.out(`${info.name}${info.admin ? ' (admin)' : ''} at ${client.mainUrl}\nkey fingerprint ${fp}`);
        }
      }),
    );
}

import type { Command } from 'commander';
import type { InviteResponse } from '../protocol/account-api.js';
import { globals, type VerbEnv } from './env.js';

export function registerInviteCommand(program: Command, env: VerbEnv): void {
  program
    .command('invite')
    .description('(admin) make a one-time invite code for a new user')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  sedfs invite        # then: sedfs signup bob --invite CODE')
    .action((_opts: unknown, cmd: Command) =>
      env.run(async () => {
        const { client } = await env.session(cmd);
        const res = await client.call<InviteResponse>('POST', '/v1/invites', {});
        if (globals(cmd).json) env.json(res);
        else env.out(`${res.code}\n(valid until ${new Date(res.expiresAt).toISOString()}, once)`);
      }),
    );
}

import type { Command } from 'commander';
import type { VerbEnv } from './env.js';

export function registerLogoutCommand(program: Command, env: VerbEnv): void {
  program
    .command('logout')
    .description('end the session and remove the unlocked keys from this machine')
    .addHelpText('after', '\nExample:\n  sedfs logout')
    .action((_opts: unknown, cmd: Command) =>
      env.run(async () => {
        const profile = env.profile(cmd);
        const session = await profile.session();
        if (session) {
          // Ending it on main is best effort: the local copy goes whatever main says.
          await env
            .session(cmd)
            .then(({ client }) => client.call('DELETE', '/v1/sessions/current'))
            .catch(() => undefined);
        }
        await profile.clearSession();
        env.out(session ? `logged out ${session.user}` : 'not logged in');
      }),
    );
}

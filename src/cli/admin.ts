import type { Command } from 'commander';
import type { VerbEnv } from './env.js';

/** `sedfs admin …`: cluster administration that is neither a file verb nor a health check. */
export function registerAdminCommand(program: Command, env: VerbEnv): void {
  const admin = program
    .command('admin')
    .description('(admin) cluster administration: remove-server')
    .addHelpText('after', '\nExamples:\n  sedfs admin remove-server 8cf2987a8dfa5f081e30980960b9ce30');
  admin
    .command('remove-server <id>')
    .description(
      'remove a file server for good: its certificate is refused and its chunks are copied elsewhere',
    )
    .addHelpText(
      'after',
      '\nThe id is the one `sedfs servers` shows. The server cannot come back under that id.\n\nExamples:\n  sedfs admin remove-server 8cf2987a8dfa5f081e30980960b9ce30',
    )
    .action((id: string, _opts: unknown, cmd: Command) =>
      env.run(async () => {
        const { client } = await env.session(cmd);
        await client.call('POST', `/v1/servers/${encodeURIComponent(id)}/remove`, {});
        env.out(`removed file server ${id}; its chunks are being copied to the others (see sedfs check)`);
      }),
    );
}

import type { Command } from 'commander';
import type { RotateJoinTokenResponse } from '../protocol/main-api.js';
import { globals, type VerbEnv } from './env.js';

/** `sedfs admin …`: cluster administration that is neither a file verb nor a health check. */
export function registerAdminCommand(program: Command, env: VerbEnv): void {
  const admin = program
    .command('admin')
    .description('(admin) cluster administration: remove-server, rotate-join-token')
    .addHelpText(
      'after',
      '\nExamples:\n  sedfs admin remove-server 8cf2987a8dfa5f081e30980960b9ce30\n  sedfs admin rotate-join-token',
    );
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
  admin
    .command('rotate-join-token')
    .description('replace the cluster join token (say, after it leaked); prints the new join string')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      [
        '',
        'File servers already in the cluster keep working: their certificates vouch for them.',
        'New ones join with the new string; the old token gets no server a certificate any more.',
        'If the old token leaked, look in `sedfs servers` for servers you do not know, including',
        'any "enrolled" (a certificate, never registered), and remove them.',
        'Main also writes the new string to <main data>/join. Not for a main whose token is in its',
        'settings (--join-token, SEDFS_JOIN_TOKEN, --config): change it there and restart main.',
        '',
        'Examples:',
        '  sedfs admin rotate-join-token',
      ].join('\n'),
    )
    .action((_opts: unknown, cmd: Command) =>
      env.run(async () => {
        const { client } = await env.session(cmd);
        const res = await client.call<RotateJoinTokenResponse>('POST', '/v1/join-token/rotate', {});
        if (globals(cmd).json) env.json(res);
        else
          env.out(
            [
              'join token rotated. New file servers join with:',
              `  sedfs fileserver --join ${res.join}`,
              'File servers already enrolled keep working. If the old token leaked, check `sedfs servers`',
              'for servers you do not know and remove them with `sedfs admin remove-server ID`.',
            ].join('\n'),
          );
      }),
    );
}

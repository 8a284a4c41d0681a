import type { Command } from 'commander';
import { login } from '../client/account.js';
import { fingerprint } from '../crypto/identity.js';
import type { VerbEnv } from './env.js';
import { askPassphrase } from './prompt.js';

export function registerLoginCommand(program: Command, env: VerbEnv): void {
  program
    .command('login <user>')
    .description('unlock your keys and start a session with main')
    .addHelpText(
      'after',
      '\nExamples:\n  sedfs login alice\n  SEDFS_PASSPHRASE=... sedfs login alice --main https://10.0.0.5:7000 --ca-fingerprint <sha256>',
    )
    .action((user: string, _opts: unknown, cmd: Command) =>
      env.run(async () => {
        const profile = env.profile(cmd);
        // The passphrase is checked locally first: a wrong one stops here, with nothing sent.
        const identity = await profile.unlockKeys(user, await askPassphrase());
        const main = await env.mainUrl(cmd);
        const client = await env.connect(cmd, main);
        try {
          const s = await login(client, user, identity);
          await profile.saveSession({
            main,
            user,
            userId: s.user.id,
            token: s.token,
            expiresAt: s.expiresAt,
            identity,
          });
          await profile.saveConfig({ ...(await profile.config()), main });
          env.out(
            `logged in as ${user} until ${new Date(s.expiresAt).toISOString()}; key ${fingerprint(identity)}`,
          );
        } finally {
          await client.close();
        }
      }),
    );
}

import type { Command } from 'commander';
import { login, signup } from '../client/account.js';
import { fingerprint } from '../crypto/identity.js';
import type { VerbEnv } from './env.js';
import { askPassphrase } from './prompt.js';

export function registerSignupCommand(program: Command, env: VerbEnv): void {
  program
    .command('signup <user>')
    .description('make your keys on this machine, register them, and log in')
    .option(
      '--invite <code>',
      'invite code from an admin (not needed for the first user or with --open-signup)',
    )
    .addHelpText(
      'after',
      `
Your keys are made here and stored in the profile folder, locked under your
passphrase (asked twice, or taken from SEDFS_PASSPHRASE). Only public keys leave.

Examples:
  sedfs signup alice --main https://10.0.0.5:7000 --ca-fingerprint <sha256>
  sedfs signup bob --invite 3kQ9... `,
    )
    .action((user: string, opts: { invite?: string }, cmd: Command) =>
      env.run(async () => {
        const profile = env.profile(cmd);
        const main = await env.mainUrl(cmd);
        const passphrase = await askPassphrase(true);
        const client = await env.connect(cmd, main);
        try {
          const { user: info, identity } = await signup(client, user, opts.invite);
          await profile.saveKeys(user, identity, passphrase);
          const s = await login(client, user, identity);
          await profile.saveSession({
            main,
            user,
            userId: info.id,
            token: s.token,
            expiresAt: s.expiresAt,
            identity,
          });
          await profile.saveConfig({ ...(await profile.config()), main });
          env.out(
            `signed up and logged in as ${user}${info.admin ? ' (admin)' : ''}; key fingerprint ${fingerprint(identity)}`,
          );
        } finally {
          await client.close();
        }
      }),
    );
}

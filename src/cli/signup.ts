import type { Command } from 'commander';
import { login, signup } from '../client/account.js';
import type { ClusterClient } from '../client/cluster-client.js';
import type { Profile } from '../client/profile.js';
import { fingerprint, generateIdentity, type SecretIdentity } from '../crypto/identity.js';
import type { LoginResponse, UserInfo } from '../protocol/account-api.js';
import { SedfsError } from '../protocol/errors.js';
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
          const { info, identity, session } = await registerKeys(
            profile,
            client,
            user,
            passphrase,
            opts.invite,
          );
          const s = session ?? (await login(client, user, identity));
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
            `${session ? 'already signed up with these keys; ' : 'signed up and '}logged in as ${user}${info.admin ? ' (admin)' : ''}; key fingerprint ${fingerprint(identity)}`,
          );
        } finally {
          await client.close();
        }
      }),
    );
}

/**
 * Registers the profile's keys for `user` with main, made and saved first if it has none.
 * Keys are saved before main hears of them: a name main holds for keys no one kept would
 * be lost for good (for the first user, the only admin). Keys the profile holds already
 * are used, never replaced (they may open an account on another main): a signup cut off
 * after main took them, run again, finds the name taken by these very keys, and logs in.
 * Keys made here that main refused (a taken name, a bad invite) are removed again; after
 * no answer at all they stay, for the same signup run again.
 */
async function registerKeys(
  profile: Profile,
  client: ClusterClient,
  user: string,
  passphrase: string,
  invite: string | undefined,
): Promise<{ info: UserInfo; identity: SecretIdentity; session?: LoginResponse }> {
  const held = await profile.hasKeys(user);
  const identity = held ? await heldKeys(profile, user, passphrase) : generateIdentity();
  if (!held) await profile.saveKeys(user, identity, passphrase);
  let made: Awaited<ReturnType<typeof signup>>;
  try {
    made = await signup(client, user, invite, identity);
  } catch (err) {
    if (err instanceof SedfsError && err.code === 'SEDFS_ERR_USER_EXISTS') {
      // Taken by these keys (an earlier signup got this far), or by someone else.
      const session = await login(client, user, identity).catch(() => undefined);
      if (session) return { info: session.user, identity, session };
    }
    const refused = err instanceof SedfsError && err.code !== 'SEDFS_ERR_UNREACHABLE';
    if (!held && refused) await profile.removeKeys(user);
    throw err;
  }
  // Remembered now, not at the first command after: see RootPin.
  await profile.pinRoot(user, client.caFingerprint ?? new URL(client.mainUrl).origin, made.root);
  return { info: made.user, identity };
}

/** The keys the profile holds for `user`; another passphrase is said to be why they are not replaced. */
async function heldKeys(profile: Profile, user: string, passphrase: string): Promise<SecretIdentity> {
  try {
    return await profile.unlockKeys(user, passphrase);
  } catch (err) {
    if (!(err instanceof SedfsError) || err.code !== 'SEDFS_ERR_BAD_PASSPHRASE') throw err;
    throw new SedfsError(
      'SEDFS_ERR_BAD_PASSPHRASE',
      `this profile holds keys for ${user} already, locked under another passphrase; signup uses them and never replaces them (they may open an account elsewhere): give their passphrase, or sign up from another profile (--profile DIR)`,
      undefined,
      { cause: err },
    );
  }
}

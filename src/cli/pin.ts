import type { Command } from 'commander';
import { checkedUserKeys } from '../client/pins.js';
import { globals, type VerbEnv } from './env.js';

export function registerPinCommand(program: Command, env: VerbEnv): void {
  program
    .command('pin [user]')
    .description(
      "show USER's key fingerprint, pinning it the first time (shares to and from USER use the pin); without USER, every pin",
    )
    .option('--accept-new-key', "pin USER's new key in place of the one pinned before")
    .addHelpText(
      'after',
      `
Compare the fingerprint with what USER's sedfs whoami prints, by a way main does
not carry (in person, by phone). A share from USER opens only if USER's pinned
key signed it, and share and unshare seal keys only to pinned keys, so main
cannot slip in keys of its own. If USER really made a new key (a new profile,
a new signup), accept it with --accept-new-key.

Examples:
  sedfs pin bob
  sedfs pin            # everyone pinned for this cluster`,
    )
    .action((user: string | undefined, opts: { acceptNewKey?: boolean }, cmd: Command) =>
      env.run(async () => {
        const { client } = await env.session(cmd);
        const pins = await env.pins(cmd);
        if (user === undefined) {
          if (opts.acceptNewKey) throw new Error('--accept-new-key needs the USER whose new key to pin');
          const rows = Object.entries(await pins.pins()).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
          if (globals(cmd).json)
            env.json(
              rows.map(([name, p]) => ({ user: name, fingerprint: p.fingerprint, pinnedAt: p.pinnedAt })),
            );
          else for (const [name, p] of rows) env.out(`${name}  ${p.fingerprint}  pinned ${p.pinnedAt}`);
          return;
        }
        const keys = await checkedUserKeys(
          client,
          pins,
          user,
          opts.acceptNewKey === true,
          `accept it with: sedfs pin ${user} --accept-new-key`,
        );
        const { before } = keys;
        const replaced = before && before.fingerprint !== keys.fingerprint ? before.fingerprint : undefined;
        if (globals(cmd).json) {
          env.json({
            user,
            fingerprint: keys.fingerprint,
            newlyPinned: keys.newlyPinned,
            ...(replaced ? { replaced } : {}),
          });
          return;
        }
        const how = keys.newlyPinned
          ? 'pinned now'
          : replaced
            ? `pinned now in place of ${replaced}`
            : `pinned since ${before?.pinnedAt}`;
        env.out(`${user}'s key fingerprint ${keys.fingerprint} (${how})`);
      }),
    );
}

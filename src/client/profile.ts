import { open, readFile, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { debuglog } from 'node:util';
import { editedText } from '../common/edited-text.js';
import {
  makeDataFolder,
  type RunProgram,
  syncDir,
  syncDirWhereSupported,
  writeFileAtomic,
} from '../common/files.js';
import { fingerprint, type SecretIdentity } from '../crypto/identity.js';
import { lockWithPassphrase, type PassphraseBox, unlockWithPassphrase } from '../crypto/passphrase.js';
import { SedfsError } from '../protocol/errors.js';
import type { RootPin } from './account.js';
import { laterGrants, ownEntry, type PinStore } from './pins.js';
import type { Trust } from './trust.js';
import { type FoundUnanswering, latestFindings } from './unanswering.js';

/**
 * The client's folder: `config.json` (main server URL), `keys/<user>.json` (the user's
 * keys, locked under their passphrase), `trust.json` (the cluster CA trusted for each
 * main server, by fingerprint), `pins.json` (other users' keys as first seen, by cluster),
 * `grants-seen.json` (when the latest grant seen of each share was signed, by cluster and user)
 * and `session.json` while logged in.
 *
 * While logged in, `session.json` (mode 0600) holds the session token and the user's
 * unlocked keys, so each command does not ask for the passphrase again; `logout`
 * deletes it. Like an unencrypted SSH key, it is protected by file permissions only.
 */
export function defaultProfileDir(env: NodeJS.ProcessEnv = process.env, platform = process.platform): string {
  if (env.SEDFS_HOME) return env.SEDFS_HOME;
  if (platform === 'win32' && env.APPDATA) return join(env.APPDATA, 'sedfs');
  return join(homedir(), '.sedfs');
}

export interface ProfileConfig {
  main?: string;
}

export interface KeyFile {
  version: 1;
  user: string;
  signKey: string;
  boxKey: string;
  fingerprint: string;
  locked: PassphraseBox;
  /**
   * The user's home folder on each cluster these keys signed up or logged in to, by the
   * cluster CA's fingerprint (or main's origin without TLS): in the key file, so that it
   * goes where the keys are copied.
   */
  roots?: Record<string, RootPin>;
}

export interface Session {
  main: string;
  user: string;
  userId: string;
  token: string;
  expiresAt: number;
  identity: SecretIdentity;
}

/** Where a profile keeps the servers its commands lately found not answering. */
const UNANSWERING_FILE = 'unanswering.json';
/** How long a lock on one of the profile's files may stand before it is taken as left by a dead command. */
const STALE_LOCK_MS = 10_000;

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    // Read as a person's editor may have saved it (config.json, a BOM from PowerShell).
    return JSON.parse(editedText(await readFile(path))) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SedfsError('SEDFS_ERR_CONFIG', `cannot read ${path}: ${(err as Error).message}`);
  }
}

/** A user's public keys as first seen, pinned so a later change is noticed. */
/**
 * `pins.json`: pins by cluster, and at the top level the pins made before they were kept
 * by cluster (user names are lowercase, so none is `byCluster`).
 */
type PinsFile = { byCluster?: Record<string, Record<string, Pin>> } & { [user: string]: unknown };

/**
 * `grants-seen.json`: when the latest grant seen of each share was signed, by cluster,
 * grantee (their own signing key: a user id is main's to say) and share
 * (`ownerSignKey:nodeId`).
 */
type GrantsSeenFile = { byCluster?: Record<string, Record<string, Record<string, number>>> };

export interface Pin {
  fingerprint: string;
  signKey: string;
  boxKey: string;
  pinnedAt: string;
}

/**
 * How a profile on a file system that cannot fsync directories is told: only with
 * NODE_DEBUG=sedfs, on stderr. Every CLI command is its own process, so even once per
 * process would be a line on every command, about something the user cannot change
 * short of moving the profile, and that costs little: the profile's files are small,
 * written whole, and at worst the last change to one is lost in a power cut.
 */
const debug = debuglog('sedfs');
const noteUnsupported = (dir: string, code: string) =>
  debug(
    'this file system cannot fsync directories (%s, %s): profile files here survive a crash only as far as it keeps renames',
    code,
    dir,
  );

/** One for the process: every Profile a command makes shares it, so the note comes once. */
const processDirSync = syncDirWhereSupported(noteUnsupported);

export class Profile {
  private readonly sync: (dir: string) => Promise<void>;
  /** the profile folder made (restricted on Windows), once, before the first file written */
  private made: Promise<void> | undefined;

  constructor(
    readonly dir: string,
    /**
     * `syncDir` fsyncs a directory (tests make it fail as some file systems do), in a
     * tolerant sync of this profile's own, told through `onDirSyncUnsupported`;
     * `platform` and `run` (icacls, whoami) are for tests of the Windows folder.
     */
    private readonly deps: {
      syncDir?: (dir: string) => Promise<void>;
      onDirSyncUnsupported?: (dir: string, code: string) => void;
      platform?: NodeJS.Platform;
      run?: RunProgram;
    } = {},
  ) {
    this.sync =
      deps.syncDir === undefined && deps.onDirSyncUnsupported === undefined
        ? processDirSync
        : syncDirWhereSupported(deps.onDirSyncUnsupported ?? noteUnsupported, deps.syncDir ?? syncDir);
  }

  /**
   * The profile folder, made as a server's data folder is (makeDataFolder) before the
   * first file is written: on Windows a new folder takes its parent's permissions, and a
   * profile put under `C:\` (`--profile`, SEDFS_HOME) would be open to every user of the
   * machine, a session's unlocked keys with it. One that existed keeps its permissions.
   */
  private folder(): Promise<void> {
    this.made ??= makeDataFolder(this.dir, this.sync, this.deps.platform, this.deps.run).then(
      ({ notRestricted }) => {
        if (notRestricted)
          process.stderr.write(
            `sedfs: warning: the new profile folder ${this.dir} could not be restricted to you (icacls: ${notRestricted.message}): other users of this machine may read it; restrict it by hand\n`,
          );
      },
    );
    return this.made;
  }

  /** Writes one of the profile's files atomically, in its folder (see folder). */
  private async write(path: string, text: string): Promise<void> {
    await this.folder();
    await writeFileAtomic(path, text, 0o600, this.sync);
  }

  private keyPath(user: string): string {
    return join(this.dir, 'keys', `${user}.json`);
  }

  async config(): Promise<ProfileConfig> {
    return (await readJson<ProfileConfig>(join(this.dir, 'config.json'))) ?? {};
  }

  async saveConfig(config: ProfileConfig): Promise<void> {
    await this.write(join(this.dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  }

  async saveKeys(user: string, identity: SecretIdentity, passphrase: string): Promise<KeyFile> {
    const secret = Buffer.from(
      JSON.stringify({ signSecret: identity.signSecret, boxSecret: identity.boxSecret }),
    );
    // The same keys under a new passphrase (passwd) keep the home folders they know.
    const before = await readJson<KeyFile>(this.keyPath(user)).catch(() => undefined);
    const roots = before?.signKey === identity.signKey ? before.roots : undefined;
    const file: KeyFile = {
      version: 1,
      user,
      signKey: identity.signKey,
      boxKey: identity.boxKey,
      fingerprint: fingerprint(identity),
      locked: lockWithPassphrase(passphrase, secret),
      ...(roots ? { roots } : {}),
    };
    await this.write(this.keyPath(user), `${JSON.stringify(file, null, 2)}\n`);
    return file;
  }

  /** The home folder `user`'s keys know on `cluster` (see KeyFile.roots), if any. */
  async rootPin(user: string, cluster: string): Promise<RootPin | undefined> {
    return (await readJson<KeyFile>(this.keyPath(user)))?.roots?.[cluster];
  }

  /** Remembers `user`'s home folder on `cluster` in their key file (none: nothing to remember it in). */
  async pinRoot(user: string, cluster: string, root: RootPin): Promise<void> {
    if (!(await this.hasKeys(user))) return;
    await this.update<KeyFile>(join('keys', `${user}.json`), (file) => ({
      ...file,
      roots: { ...file.roots, [cluster]: root },
    }));
  }

  /** Removes the user's key file: only for keys never registered (a signup main refused). */
  async removeKeys(user: string): Promise<void> {
    await rm(this.keyPath(user), { force: true });
  }

  async hasKeys(user: string): Promise<boolean> {
    return (await readJson<KeyFile>(this.keyPath(user))) !== undefined;
  }

  /** The user's keys, unlocked; a wrong passphrase is SEDFS_ERR_BAD_PASSPHRASE and nothing else. */
  async unlockKeys(user: string, passphrase: string): Promise<SecretIdentity> {
    const file = await readJson<KeyFile>(this.keyPath(user));
    if (!file) {
      throw new SedfsError(
        'SEDFS_ERR_CONFIG',
        `no keys for ${user} in ${this.dir} (sign up first, or pass --profile)`,
      );
    }
    let opened: Buffer;
    try {
      opened = unlockWithPassphrase(passphrase, file.locked);
    } catch (err) {
      // A typed passphrase was trimmed before 2026-11-28 (one from SEDFS_PASSPHRASE never
      // was): keys locked then open with the trimmed form, typed as it was then.
      const trimmed = passphrase.trim();
      if (!(err instanceof SedfsError) || err.code !== 'SEDFS_ERR_BAD_PASSPHRASE' || trimmed === passphrase)
        throw err;
      opened = unlockWithPassphrase(trimmed, file.locked);
    }
    const secret = JSON.parse(opened.toString('utf8')) as { signSecret: string; boxSecret: string };
    return { signKey: file.signKey, boxKey: file.boxKey, ...secret };
  }

  /**
   * Other users' keys as first seen on one cluster (by its CA's fingerprint, as `roots`):
   * a user name on one cluster says nothing of the same name on another. Pins made before
   * 2026-11-29 were kept by name alone (the file's top level); each cluster still falls
   * back to them for a name it has no pin of its own for.
   */
  pinsFor(cluster: string): PinStore {
    const path = join(this.dir, 'pins.json');
    const seenPath = join(this.dir, 'grants-seen.json');
    return {
      pins: async () => {
        const { byCluster, ...before } = (await readJson<PinsFile>(path)) ?? {};
        return { ...(before as Record<string, Pin>), ...byCluster?.[cluster] };
      },
      savePin: (user, pin) =>
        this.update<PinsFile>('pins.json', (file) => ({
          ...file,
          byCluster: { ...file.byCluster, [cluster]: { ...file.byCluster?.[cluster], [user]: pin } },
        })),
      grantsSeen: async (grantee) => {
        const mine = ownEntry((await readJson<GrantsSeenFile>(seenPath))?.byCluster, cluster);
        return ownEntry(mine, grantee) ?? {};
      },
      saveGrantsSeen: (grantee, seen) =>
        this.update<GrantsSeenFile>('grants-seen.json', (file) => {
          const mine = ownEntry(file.byCluster, cluster) ?? {};
          return {
            byCluster: {
              ...file.byCluster,
              [cluster]: { ...mine, [grantee]: laterGrants(ownEntry(mine, grantee) ?? {}, seen) },
            },
          };
        }),
    };
  }

  /** The cluster CA trusted for a main server (by its origin), if any. */
  async trustFor(mainUrl: string): Promise<Trust | undefined> {
    const all = (await readJson<Record<string, Trust>>(join(this.dir, 'trust.json'))) ?? {};
    return all[new URL(mainUrl).origin];
  }

  async saveTrust(mainUrl: string, trust: Trust): Promise<void> {
    await this.update<Record<string, Trust>>('trust.json', (all) => ({
      ...all,
      [new URL(mainUrl).origin]: { fingerprint: trust.fingerprint, ca: trust.ca },
    }));
  }

  /**
   * Reads, changes and writes one of the profile's JSON maps, one command at a time: two
   * `share` commands ending together each wrote what it had read, and one user's pin was
   * lost (pinned again later, silently, as a first use). Commands take turns by a lock
   * file made exclusively beside it; one left by a command that died is taken after
   * STALE_LOCK_MS.
   */
  private async update<T extends object>(name: string, change: (current: T) => T): Promise<void> {
    const path = join(this.dir, name);
    const lock = `${path}.lock`;
    await this.folder();
    for (const started = Date.now(); ; ) {
      try {
        await (await open(lock, 'wx', 0o600)).close();
        break;
      } catch (err) {
        // On Windows a lock file another command just removed, while something (a scanner)
        // still holds it, lingers pending deletion: making it again fails with EPERM.
        // Not for longer than a stale lock is waited for: then it is the folder's permissions.
        const code = (err as NodeJS.ErrnoException).code;
        const lingering = process.platform === 'win32' && code === 'EPERM';
        if ((code !== 'EEXIST' && !lingering) || (lingering && Date.now() - started > STALE_LOCK_MS))
          throw err;
        const since = await stat(lock).then(
          (st) => Date.now() - st.mtimeMs,
          () => 0,
        );
        if (since > STALE_LOCK_MS || Date.now() - started > STALE_LOCK_MS) await rm(lock, { force: true });
        else await sleep(10);
      }
    }
    try {
      const current = (await readJson<T>(path)) ?? ({} as T);
      await this.write(path, `${JSON.stringify(change(current), null, 2)}\n`);
    } finally {
      await rm(lock, { force: true });
    }
  }

  /**
   * File servers that lately did not answer a command of this profile (Unanswering), for
   * the next. Only a hint: a damaged file is as good as none.
   */
  async unanswering(): Promise<FoundUnanswering[]> {
    let found: unknown;
    try {
      found = await readJson<unknown>(join(this.dir, UNANSWERING_FILE));
    } catch {
      return [];
    }
    if (!Array.isArray(found)) return [];
    return found.filter(
      (f: Partial<FoundUnanswering> | null): f is FoundUnanswering =>
        typeof f?.server === 'string' && /^[0-9a-f]{32}$/.test(f.server) && Number.isSafeInteger(f.at),
    );
  }

  /**
   * Adds `found` to what the file holds, the latest finding of each server kept, at most
   * MAX_EXCLUDED: commands running side by side keep each other's findings.
   */
  async noteUnanswering(found: FoundUnanswering[]): Promise<void> {
    const before = await this.unanswering();
    const all = latestFindings(before, found);
    if (JSON.stringify(all) === JSON.stringify(before)) return;
    await this.write(join(this.dir, UNANSWERING_FILE), `${JSON.stringify(all)}\n`);
  }

  async session(): Promise<Session | undefined> {
    return readJson<Session>(join(this.dir, 'session.json'));
  }

  async saveSession(session: Session): Promise<void> {
    await this.write(join(this.dir, 'session.json'), `${JSON.stringify(session)}\n`);
  }

  async clearSession(): Promise<void> {
    await rm(join(this.dir, 'session.json'), { force: true });
  }
}

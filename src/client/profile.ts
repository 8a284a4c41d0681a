import { readFile, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { debuglog } from 'node:util';
import { syncDir, syncDirWhereSupported, writeFileAtomic } from '../common/files.js';
import { fingerprint, type SecretIdentity } from '../crypto/identity.js';
import { lockWithPassphrase, type PassphraseBox, unlockWithPassphrase } from '../crypto/passphrase.js';
import { SedfsError } from '../protocol/errors.js';
import type { Trust } from './trust.js';
import { type FoundUnanswering, latestFindings } from './unanswering.js';

/**
 * The client's folder: `config.json` (main server URL), `keys/<user>.json` (the user's
 * keys, locked under their passphrase), `trust.json` (the cluster CA trusted for each
 * main server, by fingerprint), `pins.json` (other users' keys as first seen) and
 * `session.json` while logged in.
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

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SedfsError('SEDFS_ERR_CONFIG', `cannot read ${path}: ${(err as Error).message}`);
  }
}

/** A user's public keys as first seen, pinned so a later change is noticed. */
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

  constructor(
    readonly dir: string,
    /**
     * `syncDir` fsyncs a directory (tests make it fail as some file systems do), in a
     * tolerant sync of this profile's own, told through `onDirSyncUnsupported`
     */
    deps: {
      syncDir?: (dir: string) => Promise<void>;
      onDirSyncUnsupported?: (dir: string, code: string) => void;
    } = {},
  ) {
    this.sync =
      deps.syncDir === undefined && deps.onDirSyncUnsupported === undefined
        ? processDirSync
        : syncDirWhereSupported(deps.onDirSyncUnsupported ?? noteUnsupported, deps.syncDir ?? syncDir);
  }

  private keyPath(user: string): string {
    return join(this.dir, 'keys', `${user}.json`);
  }

  async config(): Promise<ProfileConfig> {
    return (await readJson<ProfileConfig>(join(this.dir, 'config.json'))) ?? {};
  }

  async saveConfig(config: ProfileConfig): Promise<void> {
    await writeFileAtomic(
      join(this.dir, 'config.json'),
      `${JSON.stringify(config, null, 2)}\n`,
      0o600,
      this.sync,
    );
  }

  async saveKeys(user: string, identity: SecretIdentity, passphrase: string): Promise<KeyFile> {
    const secret = Buffer.from(
      JSON.stringify({ signSecret: identity.signSecret, boxSecret: identity.boxSecret }),
    );
    const file: KeyFile = {
      version: 1,
      user,
      signKey: identity.signKey,
      boxKey: identity.boxKey,
      fingerprint: fingerprint(identity),
      locked: lockWithPassphrase(passphrase, secret),
    };
    await writeFileAtomic(this.keyPath(user), `${JSON.stringify(file, null, 2)}\n`, 0o600, this.sync);
    return file;
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
    const secret = JSON.parse(unlockWithPassphrase(passphrase, file.locked).toString('utf8')) as {
      signSecret: string;
      boxSecret: string;
    };
    return { signKey: file.signKey, boxKey: file.boxKey, ...secret };
  }

  async pins(): Promise<Record<string, Pin>> {
    return (await readJson<Record<string, Pin>>(join(this.dir, 'pins.json'))) ?? {};
  }

  async savePin(user: string, pin: Pin): Promise<void> {
    const pins = await this.pins();
    pins[user] = pin;
    await writeFileAtomic(
      join(this.dir, 'pins.json'),
      `${JSON.stringify(pins, null, 2)}\n`,
      0o600,
      this.sync,
    );
  }

  /** The cluster CA trusted for a main server (by its origin), if any. */
  async trustFor(mainUrl: string): Promise<Trust | undefined> {
    const all = (await readJson<Record<string, Trust>>(join(this.dir, 'trust.json'))) ?? {};
    return all[new URL(mainUrl).origin];
  }

  async saveTrust(mainUrl: string, trust: Trust): Promise<void> {
    const path = join(this.dir, 'trust.json');
    const all = (await readJson<Record<string, Trust>>(path)) ?? {};
    all[new URL(mainUrl).origin] = { fingerprint: trust.fingerprint, ca: trust.ca };
    await writeFileAtomic(path, `${JSON.stringify(all, null, 2)}\n`, 0o600, this.sync);
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
    await writeFileAtomic(join(this.dir, UNANSWERING_FILE), `${JSON.stringify(all)}\n`, 0o600, this.sync);
  }

  async session(): Promise<Session | undefined> {
    return readJson<Session>(join(this.dir, 'session.json'));
  }

  async saveSession(session: Session): Promise<void> {
    await writeFileAtomic(join(this.dir, 'session.json'), `${JSON.stringify(session)}\n`, 0o600, this.sync);
  }

  async clearSession(): Promise<void> {
    await rm(join(this.dir, 'session.json'), { force: true });
  }
}

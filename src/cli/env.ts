import type { Command } from 'commander';
import { rootPinOf } from '../client/account.js';
import { ClusterClient } from '../client/cluster-client.js';
import { FileSystem } from '../client/file-system.js';
import type { PinStore } from '../client/pins.js';
import { defaultProfileDir, Profile, type Session } from '../client/profile.js';
import { establishTrust } from '../client/trust.js';
import { normalizeFingerprint } from '../crypto/certificates.js';
import { SedfsError } from '../protocol/errors.js';
import { endAsSignalsOnWindows, endInterrupted, Interrupted } from './interrupt.js';
import { describeError, printable } from './output.js';
import { askIfInteractive } from './prompt.js';

export interface GlobalOptions {
  profile?: string;
  main?: string;
  caFingerprint?: string;
  json?: boolean;
}

/**
 * What a verb needs from where it runs: the one-shot CLI (cwd `/`, errors exit the
 * process) or the shell (a working folder, errors print and the prompt returns).
 */
export interface VerbEnv {
  cwd: string;
  setCwd(path: string): void;
  profile(cmd: Command): Profile;
  /** The main URL from --main, SEDFS_MAIN, the profile, or (interactive) a prompt. */
  mainUrl(cmd: Command): Promise<string>;
  /**
   * A client for `main` that trusts the cluster CA: the profile's, or main's checked
   * against --ca-fingerprint (or trusted on first use, saying so). For signup and login.
   */
  connect(cmd: Command, main: string): Promise<ClusterClient>;
  /** A client signed in with the profile's session. */
  session(cmd: Command): Promise<{ client: ClusterClient; session: Session }>;
  fileSystem(cmd: Command): Promise<FileSystem>;
  /** Other users' keys as pinned for the signed-in session's cluster. */
  pins(cmd: Command): Promise<PinStore>;
  /** A line for people: control characters shown as `?` (see printable). */
  out(text: string): void;
  /** `value` as JSON for programs, names exactly as stored (JSON escapes what it must). */
  json(value: unknown, indent?: number): void;
  /** Runs a verb's body with this environment's error handling. */
  run(body: () => Promise<void>): Promise<void>;
  /** Releases connections once the verb is done. */
  close(): Promise<void>;
}

/** What the profile keeps a cluster's pins by: its CA's fingerprint (its URL's origin without TLS). */
function clusterOf(client: ClusterClient, session: Session): string {
  return client.caFingerprint ?? new URL(session.main).origin;
}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

export class CliEnv implements VerbEnv {
  cwd = '/';
  private opened: { client: ClusterClient; session: Session } | undefined;
  private fs: FileSystem | undefined;
  private profileDir: string | undefined;

  setCwd(path: string): void {
    this.cwd = path;
  }

  profile(cmd: Command): Profile {
    this.profileDir ??= globals(cmd).profile ?? defaultProfileDir();
    return new Profile(this.profileDir);
  }

  async mainUrl(cmd: Command): Promise<string> {
    const flag = globals(cmd).main ?? process.env.SEDFS_MAIN ?? (await this.profile(cmd).config()).main;
    const url =
      flag ??
      (await askIfInteractive(
        'Main server address (for example http://192.168.1.10:41234): ',
        '--main URL or SEDFS_MAIN',
      ));
    return url.replace(/\/+$/, '');
  }

  async session(cmd: Command): Promise<{ client: ClusterClient; session: Session }> {
    if (this.opened) return this.opened;
    const session = await this.profile(cmd).session();
    if (!session) throw new SedfsError('SEDFS_ERR_SESSION_REQUIRED', 'not logged in: run sedfs login USER');
    if (session.expiresAt <= Date.now()) throw new SedfsError('SEDFS_ERR_SESSION_EXPIRED');
    const main = globals(cmd).main ?? session.main;
    const trust = await this.profile(cmd).trustFor(main);
    if (main.startsWith('https://') && !trust)
      throw new SedfsError(
        'SEDFS_ERR_CONFIG',
        `no trusted CA for ${main} in this profile: run sedfs login USER`,
      );
    const client = new ClusterClient(main, trust ? { ca: trust.ca } : {});
    client.token = session.token;
    const profile = this.profile(cmd);
    client.unanswering.onNoted = (server, why) => {
      process.stderr.write(
        `sedfs: warning: file server ${server.slice(0, 8)} is not answering (${printable(why)}); the rest of this transfer works around it\n`,
      );
      // For the next commands (see Unanswering.remember), written now: a transfer held up
      // by a hung server is the one likely to be interrupted. Only a hint: a failure is not this command's.
      void profile.noteUnanswering(client.unanswering.recent()).catch(() => undefined);
    };
    client.unanswering.remember(await profile.unanswering());
    this.opened = { client, session };
    return this.opened;
  }

  async connect(cmd: Command, main: string): Promise<ClusterClient> {
    if (!main.startsWith('https://')) {
      process.stderr.write(
        `sedfs: WARNING: ${main} is plain HTTP: your session token crosses the network readable\n`,
      );
      return new ClusterClient(main);
    }
    const given = globals(cmd).caFingerprint ?? (process.env.SEDFS_CA_FINGERPRINT || undefined);
    const pinned = given === undefined ? undefined : normalizeFingerprint(given);
    if (given !== undefined && !pinned)
      throw new SedfsError('SEDFS_ERR_CONFIG', `--ca-fingerprint: not a SHA-256 fingerprint: ${given}`);
    const profile = this.profile(cmd);
    const trust = await establishTrust(main, pinned, await profile.trustFor(main));
    if (trust.firstUse)
      process.stderr.write(
        `sedfs: trusting ${main} with cluster CA fingerprint ${trust.fingerprint} (first use; compare it with what main printed)\n`,
      );
    await profile.saveTrust(main, trust);
    return new ClusterClient(main, { ca: trust.ca });
  }

  async pins(cmd: Command): Promise<PinStore> {
    const { client, session } = await this.session(cmd);
    return this.profile(cmd).pinsFor(clusterOf(client, session));
  }

  async fileSystem(cmd: Command): Promise<FileSystem> {
    if (this.fs) return this.fs;
    const { client, session } = await this.session(cmd);
    // The home folder these keys opened on this cluster before, or, the first time, the
    // one to remember: main cannot swap in one of its own later (see RootPin).
    const profile = this.profile(cmd);
    const cluster = clusterOf(client, session);
    const root = await profile.rootPin(session.user, cluster);
    this.fs = await FileSystem.open(client, session.identity, {
      ...(root ? { root } : {}),
      pins: profile.pinsFor(cluster),
    });
    if (!root)
      await profile.pinRoot(session.user, cluster, rootPinOf(this.fs.user.rootId, this.fs.user.rootSealed));
    // Once each: a command may list the shares more than once (/shared, then an owner's).
    const warned = new Set<string>();
    this.fs.onSkipped = (message) => {
      if (warned.has(message)) return;
      warned.add(message);
      process.stderr.write(`sedfs: warning: ${printable(message)}\n`);
    };
    this.fs.onNotice = (message) => process.stderr.write(`sedfs: note: ${printable(message)}\n`);
    return this.fs;
  }

  out(text: string): void {
    const line = printable(text);
    process.stdout.write(line.endsWith('\n') ? line : `${line}\n`);
  }

  json(value: unknown, indent?: number): void {
    process.stdout.write(`${JSON.stringify(value, null, indent)}\n`);
  }

  async run(body: () => Promise<void>): Promise<void> {
    const endsAsSignals = endAsSignalsOnWindows();
    try {
      await body();
      await this.close();
    } catch (err) {
      if (err instanceof Interrupted) endInterrupted(err.signal);
      process.stderr.write(`sedfs: ${describeError(err)}\n`);
      process.exitCode = 1;
      await this.close().catch(() => undefined);
    } finally {
      endsAsSignals();
    }
  }

  async close(): Promise<void> {
    // The latest time each was found (a server noted again since it was first told).
    const unanswering = this.opened?.client.unanswering;
    if (unanswering?.foundHere && this.profileDir)
      await new Profile(this.profileDir).noteUnanswering(unanswering.recent()).catch(() => undefined);
    await this.opened?.client.close();
    this.opened = undefined;
    this.fs = undefined;
  }
}

import { join } from 'node:path';
import { readOrCreate, syncDir, writeFileAtomic } from '../common/files.js';
import { randomSecret, secretsEqual } from '../crypto/hash.js';
import { SedfsError } from '../protocol/errors.js';

/**
 * The cluster join token: the secret a file server shows to get its first certificate.
 * It lives in `<data>/join-token` (0600), and `<data>/join` holds the join string made
 * from it once main knows its address. An admin may rotate it; servers already enrolled
 * keep working, since over TLS their certificates vouch for them.
 */
export class JoinToken {
  private rotating: Promise<unknown> = Promise.resolve();
  private joinStringOf: ((token: string) => string) | undefined;

  private constructor(
    private value: string,
    private readonly dataDir: string,
    /** given in main's settings (--join-token, SEDFS_JOIN_TOKEN, --config): the next start would bring it back, so it is not rotated */
    readonly fixed: boolean,
    /** made just now, at this first start */
    readonly created: boolean,
    /** how a directory is made durable (main's: see syncDirWhereSupported) */
    private readonly sync: (dir: string) => Promise<void>,
  ) {}

  /** The token main's settings give (saved too), else the saved one, else a new one. */
  static async load(
    dataDir: string,
    given: string | undefined,
    sync: (dir: string) => Promise<void> = syncDir,
  ): Promise<JoinToken> {
    const path = join(dataDir, 'join-token');
    if (given) {
      await writeFileAtomic(path, `${given}\n`, 0o600, sync);
      return new JoinToken(given, dataDir, true, false, sync);
    }
    const saved = await readOrCreate(path, () => randomSecret(32), sync);
    return new JoinToken(saved.value, dataDir, false, saved.created, sync);
  }

  get current(): string {
    return this.value;
  }

  /** The join string last written to `<data>/join`; undefined until published, and without TLS. */
  get joinString(): string | undefined {
    return this.joinStringOf?.(this.value);
  }

  matches(presented: string): boolean {
    return presented !== '' && secretsEqual(presented, this.value);
  }

  /** Writes `<data>/join` now and after every rotation (TLS only: the string carries the CA fingerprint). */
  async publish(joinStringOf: (token: string) => string): Promise<string> {
    const joinString = joinStringOf(this.value);
    await writeFileAtomic(join(this.dataDir, 'join'), `${joinString}\n`, 0o600, this.sync);
    this.joinStringOf = joinStringOf;
    return joinString;
  }

  /**
   * A new token, in force at once and saved before it is answered (the token file
   * first: at a start `join` is made again from it, so a crash in between loses
   * nothing). Rotations run one at a time, so the files always end with the token in force.
   * Only for clusters on TLS (the caller checks): without it the token is every file
   * server's only credential, and a new one would cut them all off.
   */
  rotate(): Promise<string | undefined> {
    const next = this.rotating.then(async () => {
      if (this.fixed)
        throw new SedfsError(
          'SEDFS_ERR_JOIN_TOKEN_FIXED',
          'this main takes its join token from its settings (--join-token, SEDFS_JOIN_TOKEN or --config): change it there and restart main',
        );
      const token = randomSecret(32);
      await writeFileAtomic(join(this.dataDir, 'join-token'), `${token}\n`, 0o600, this.sync);
      this.value = token;
      return this.joinStringOf ? this.publish(this.joinStringOf) : undefined;
    });
    this.rotating = next.catch(() => {});
    return next;
  }
}

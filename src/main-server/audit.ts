import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export type AuditEvent =
  | 'login'
  | 'login_failed'
  | 'auth_failed'
  | 'share'
  | 'unshare'
  | 'rekey'
  | 'lock'
  | 'unlock'
  | 'denied';

export interface AuditRecord {
  event: AuditEvent;
  /** the acting user's id, when known */
  user?: string;
  node?: string;
  /** the other user of a share or unshare */
  target?: string;
  /** what was attempted, for denials: a route's operation name */
  op?: string;
  perm?: string;
}

/** Failures anyone can cause, written one by one up to a burst, then at a steady rate. */
const REFUSALS: ReadonlySet<AuditEvent> = new Set(['login_failed', 'auth_failed', 'denied']);
const REFUSAL_BURST = 20;
const REFUSALS_PER_SECOND = 10;

/**
 * Main's audit trail: append-only JSON lines in `<data>/audit.log`, one per security
 * event, written synchronously so a crash cannot lose a line that was reported. Ids
 * only: never a name, a key or a token.
 *
 * Refusals (failed logins, bad tokens, denials) are what a stranger can cause at will:
 * one line each, from a loop of requests, would grow the file without bound on main's
 * disk. Beyond a burst of 20 and 10 a second they are counted instead, and each second's
 * count written as one line (`{event, suppressed}`).
 */
export class AuditLog {
  private tokens = REFUSAL_BURST;
  private refilledAt: number;
  private readonly suppressed = new Map<AuditEvent, number>();
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly file: string,
    private readonly now: () => number,
    /** hears of counts of refusals that could not be written (a full disk); they are kept */
    private readonly onFailed: (err: Error) => void = () => undefined,
  ) {
    mkdirSync(dirname(file), { recursive: true });
    this.refilledAt = now();
  }

  /**
   * Appends `record`. An event a user caused fails with the append (a full disk: the
   * request is refused); a refusal that cannot be written is counted as one over the rate
   * is, so a stranger's request is answered as it would be otherwise.
   */
  write(record: AuditRecord): void {
    if (!REFUSALS.has(record.event)) {
      this.append(record);
      return;
    }
    if (this.takeToken() && this.tryAppend(record)) return;
    this.suppressed.set(record.event, (this.suppressed.get(record.event) ?? 0) + 1);
    this.flushTimer ??= setTimeout(() => this.flushSuppressed(), 1000).unref();
  }

  /** Appends, or says it could not (the count that takes its place tells, if that fails too). */
  private tryAppend(record: AuditRecord): boolean {
    try {
      this.append(record);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Writes what was counted instead of written, one line per event. It runs from a timer,
   * where a throw would end main: counts that cannot be written (a full disk) are kept,
   * and tried again a second later.
   */
  flushSuppressed(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    for (const [event, suppressed] of this.suppressed) {
      try {
        this.append({ event, suppressed });
      } catch (err) {
        this.onFailed(err as Error);
        this.flushTimer = setTimeout(() => this.flushSuppressed(), 1000).unref();
        return;
      }
      this.suppressed.delete(event);
    }
  }

  private takeToken(): boolean {
    const now = this.now();
    this.tokens = Math.min(
      REFUSAL_BURST,
      this.tokens + ((now - this.refilledAt) / 1000) * REFUSALS_PER_SECOND,
    );
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private append(record: AuditRecord | { event: AuditEvent; suppressed: number }): void {
    appendFileSync(
      this.file,
      `${JSON.stringify({ time: new Date(this.now()).toISOString(), ...record })}\n`,
      {
        mode: 0o600,
      },
    );
  }
}

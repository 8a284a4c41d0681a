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
  ) {
    mkdirSync(dirname(file), { recursive: true });
    this.refilledAt = now();
  }

  write(record: AuditRecord): void {
    if (REFUSALS.has(record.event) && !this.takeToken()) {
      this.suppressed.set(record.event, (this.suppressed.get(record.event) ?? 0) + 1);
      this.flushTimer ??= setTimeout(() => this.flushSuppressed(), 1000).unref();
      return;
    }
    this.append(record);
  }

  /** Writes what was counted instead of written, one line per event. */
  flushSuppressed(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    for (const [event, suppressed] of this.suppressed) this.append({ event, suppressed });
    this.suppressed.clear();
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

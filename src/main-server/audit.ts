import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export type AuditEvent =
  | 'login'
  | 'login_failed'
  | 'auth_failed'
  | 'share'
  | 'unshare'
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

/**
 * Main's audit trail: append-only JSON lines in `<data>/audit.log`, one per security
 * event, written synchronously so a crash cannot lose a line that was reported. Ids
 * only: never a name, a key or a token.
 */
export class AuditLog {
  constructor(
    private readonly file: string,
    private readonly now: () => number,
  ) {
    mkdirSync(dirname(file), { recursive: true });
  }

  write(record: AuditRecord): void {
    appendFileSync(
      this.file,
      `${JSON.stringify({ time: new Date(this.now()).toISOString(), ...record })}\n`,
      {
        mode: 0o600,
      },
    );
  }
}

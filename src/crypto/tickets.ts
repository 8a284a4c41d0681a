import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';
import { SedfsError } from '../protocol/errors.js';
import type { TicketOp, TicketPayload } from '../protocol/ticket.js';

const HEX_ID = /^[0-9a-f]{32}$/;

/** Main's Ed25519 ticket-signing key, kept as PKCS#8 PEM in its data folder. */
export function generateTicketKeyPem(): string {
  const { privateKey } = generateKeyPairSync('ed25519');
  return privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

export interface TicketSigner {
  /** The public key as SPKI PEM, handed to file servers when they register. */
  publicKeyPem: string;
  sign(payload: Omit<TicketPayload, 'v'>): string;
}

export function ticketSigner(privateKeyPem: string): TicketSigner {
  const key = createPrivateKey(privateKeyPem);
  const publicKeyPem = createPublicKey(key).export({ format: 'pem', type: 'spki' }).toString();
  return {
    publicKeyPem,
    sign(payload) {
      const body = Buffer.from(JSON.stringify({ v: 1, ...payload })).toString('base64url');
      const sig = sign(null, Buffer.from(body), key).toString('base64url');
      return `${body}.${sig}`;
    },
  };
}

export interface TicketCheck {
  op: TicketOp;
  /** the chunk asked for; absent for whole-server operations, whose tickets must name none */
  chunk?: string;
  /** a batch: the ticket must name at least one chunk, and the request is for all it names */
  batch?: boolean;
  server: string;
  now: number;
}

/** Verifies a ticket's signature and that it covers the request; throws the matching 401/403. */
export function ticketVerifier(
  publicKeyPem: string,
): (token: string | undefined, check: TicketCheck) => TicketPayload {
  const key: KeyObject = createPublicKey(publicKeyPem);
  return (token, check) => {
    if (!token) throw new SedfsError('SEDFS_ERR_TICKET_MISSING');
    // Tickets are small; refuse anything large before touching it.
    if (token.length > 8192) throw new SedfsError('SEDFS_ERR_TICKET_INVALID');
    const dot = token.indexOf('.');
    if (dot <= 0) throw new SedfsError('SEDFS_ERR_TICKET_INVALID');
    const body = token.slice(0, dot);
    const sig = Buffer.from(token.slice(dot + 1), 'base64url');
    if (sig.length !== 64 || !verify(null, Buffer.from(body), key, sig)) {
      throw new SedfsError('SEDFS_ERR_TICKET_INVALID');
    }
    let payload: TicketPayload;
    try {
      payload = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as TicketPayload;
    } catch {
      throw new SedfsError('SEDFS_ERR_TICKET_INVALID');
    }
    const urlsOk =
      payload.urls === undefined ||
      (Array.isArray(payload.urls) &&
        payload.urls.length === payload.servers?.length &&
        payload.urls.every((u) => typeof u === 'string'));
    // A write earns receipts, and every receipt names what it was written for.
    const uploadOk =
      payload.op !== 'write' || (typeof payload.upload === 'string' && HEX_ID.test(payload.upload));
    if (
      payload.v !== 1 ||
      !Array.isArray(payload.chunks) ||
      !Array.isArray(payload.servers) ||
      !urlsOk ||
      !uploadOk
    ) {
      throw new SedfsError('SEDFS_ERR_TICKET_INVALID');
    }
    if (typeof payload.exp !== 'number' || payload.exp <= check.now)
      throw new SedfsError('SEDFS_ERR_TICKET_EXPIRED');
    if (
      payload.op !== check.op ||
      (check.batch
        ? payload.chunks.length === 0
        : check.chunk === undefined
          ? payload.chunks.length !== 0
          : !payload.chunks.includes(check.chunk)) ||
      !payload.servers.includes(check.server)
    ) {
      throw new SedfsError('SEDFS_ERR_TICKET_MISMATCH');
    }
    return payload;
  };
}

/** The upload a verified write ticket binds its receipts to (the verifier refuses a write ticket without one). */
export function uploadOf(ticket: TicketPayload): string {
  if (ticket.upload === undefined) throw new SedfsError('SEDFS_ERR_TICKET_INVALID');
  return ticket.upload;
}

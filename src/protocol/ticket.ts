/**
 * Tickets: short-lived permissions that main signs (Ed25519) and file servers check
 * without calling main. Wire form: `base64url(JSON payload) "." base64url(signature)`.
 * The payload names the operation, the chunks and the servers it is good for, and
 * when it expires; a server accepts it only if all three cover the request.
 */
export type TicketOp = 'read' | 'write' | 'delete' | 'verify' | ServerTicketOp;

/**
 * Operations on a whole server rather than on chunks (main asks for a server's full
 * inventory, or for a re-hash of everything it holds); their tickets name no chunks.
 */
export type ServerTicketOp = 'inventory' | 'scrub';

export interface TicketPayload {
  /** format version */
  v: 1;
  op: TicketOp;
  /** chunk ids the ticket covers */
  chunks: string[];
  /** server ids the ticket is valid on; for a write, the replication chain in order */
  servers: string[];
  /**
   * Write tickets only: where each of `servers` listens. A server forwards a chunk only
   * to the servers after itself here, so a client cannot point it anywhere else.
   */
  urls?: string[];
  /**
   * Repair copies only: the URL of the server to copy the chunk from. A write ticket
   * without it cannot order a copy, so a client cannot make a server fetch anything.
   */
  from?: string;
  /** Repair copies only: the id of the server at `from`, whose certificate the copy's connection must show. */
  fromServer?: string;
  /**
   * Write tickets only, and required on them: what the write is for, bound into every
   * receipt it earns. Main puts the upload's id here (or, for a repair copy, a fresh id
   * of that copy order), and takes a receipt only in the commit of that upload, so a
   * receipt cannot be replayed in another.
   */
  upload?: string;
  /** expiry, milliseconds since the epoch */
  exp: number;
}

/** How long tickets live unless main is configured otherwise. */
export const DEFAULT_TICKET_TTL_MS = 5 * 60_000;

/** Header that carries a ticket on chunk requests. */
export const TICKET_HEADER = 'x-sedfs-ticket';

import type { IncomingMessage } from 'node:http';
import type { BufferPool } from '../common/buffer-pool.js';
import type { ChunkReader } from '../common/chunk-reader.js';
import type { Logger } from '../common/logger.js';
import { MAIN_NAME, peerName } from '../common/tls.js';
import type { Agent } from '../common/undici.js';
import type { TicketCheck } from '../crypto/tickets.js';
import { SedfsError } from '../protocol/errors.js';
import type { TicketPayload } from '../protocol/ticket.js';
import type { ChunkStore } from './chunk-store.js';

/** What main handed this server when it joined; until then it refuses chunk traffic. */
export interface ClusterKeys {
  receiptKey: string;
  verifyTicket: (token: string | undefined, check: TicketCheck) => TicketPayload;
}

export interface FileServerContext {
  serverId: string;
  store: ChunkStore;
  log: Logger;
  agent: Agent;
  /** reads chunk bodies from other servers (repair copies), cheaper than undici */
  chunkReader: ChunkReader;
  /** buffers a repair copy is received into */
  copyBuffers: BufferPool;
  now: () => number;
  keys: () => ClusterKeys | undefined;
  /** Re-hashes every stored chunk now, at full speed; bad ones are quarantined. */
  scrubAll: () => Promise<{ checked: number; bad: string[] }>;
  /** whether connections are TLS, so main-only routes can demand main's certificate */
  tls: boolean;
  /** servers an admin removed (from main's heartbeat answers) */
  revoked: Set<string>;
  /** how long a chunk being sent may wait on a reader that takes nothing (default 60 s, see get-chunk.ts) */
  sendIdleMs?: number;
  /** the slowest a chunk may be read as a whole (default 16 KiB/s, see get-chunk.ts) */
  sendMinBytesPerSecond?: number;
}

/** Routes only main may call: over TLS the caller must show main's certificate. */
export function requireMain(ctx: FileServerContext, req: { raw: IncomingMessage }): void {
  if (ctx.tls && peerName(req.raw) !== MAIN_NAME) throw new SedfsError('SEDFS_ERR_CLIENT_CERT');
}

export function requireKeys(ctx: FileServerContext): ClusterKeys {
  const keys = ctx.keys();
  if (!keys) throw new SedfsError('SEDFS_ERR_NOT_READY');
  return keys;
}

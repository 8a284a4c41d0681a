import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { TICKET_HEADER } from '../../protocol/ticket.js';
import type { ChunkStore } from '../chunk-store.js';
import { type FileServerContext, requireKeys, requireMain } from '../context.js';

/** Ids per write: big enough to keep syscalls few, small enough to stream. */
const LINES_PER_PIECE = 4096;

/** Every chunk id this server holds, one per line, streamed from disk (main's full reconciliation). */
export function listInventoryRoute(app: FastifyInstance, ctx: FileServerContext): void {
  app.get('/v1/inventory', async (req, reply) => {
    requireMain(ctx, req);
    requireKeys(ctx).verifyTicket(req.headers[TICKET_HEADER] as string | undefined, {
      op: 'inventory',
      server: ctx.serverId,
      now: ctx.now(),
    });
    // Changes from here on are reported by heartbeats; the listing covers the rest.
    ctx.store.changes.clear();
    req.log.info('full inventory asked for by main');
    reply.type('text/plain');
    return reply.send(Readable.from(inventoryLines(ctx.store)));
  });
}

/** The store's ids as newline-terminated text, a few thousand per piece. */
export async function* inventoryLines(store: ChunkStore): AsyncGenerator<Buffer> {
  let batch: string[] = [];
  for await (const id of store.inventory()) {
    batch.push(id);
    if (batch.length === LINES_PER_PIECE) {
      yield Buffer.from(`${batch.join('\n')}\n`);
      batch = [];
    }
  }
  if (batch.length > 0) yield Buffer.from(`${batch.join('\n')}\n`);
}

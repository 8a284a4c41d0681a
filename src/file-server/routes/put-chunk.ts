import type { FastifyInstance } from 'fastify';
import { pump } from '../../common/pump.js';
import { receiptFor } from '../../crypto/receipts.js';
import { uploadOf } from '../../crypto/tickets.js';
import { assertChunkId } from '../../protocol/chunk-id.js';
import { SedfsError } from '../../protocol/errors.js';
import type { PutChunkResponse } from '../../protocol/file-server-api.js';
import { TICKET_HEADER } from '../../protocol/ticket.js';
import { chainPlace, forward, restFailed } from '../chain-forward.js';
import type { ChunkWrite } from '../chunk-store.js';
import { type FileServerContext, requireKeys } from '../context.js';

/**
 * Chain replication. The ticket lists the chunk's servers in order; this server writes
 * the chunk and, at the same time, streams it to the next server in the list, which
 * does the same. The answer comes back up the chain once every replica is durable, with
 * a receipt from each, or names exactly which replicas failed.
 */
export function putChunkRoute(app: FastifyInstance, ctx: FileServerContext): void {
  app.put<{ Params: { id: string } }>('/v1/chunks/:id', async (req, reply): Promise<PutChunkResponse> => {
    const id = assertChunkId(req.params.id);
    // Any other type would have been parsed (and consumed) by a body parser already.
    if (req.headers['content-type'] !== 'application/octet-stream') {
      throw new SedfsError('SEDFS_ERR_UNSUPPORTED_MEDIA', 'a chunk is sent as application/octet-stream');
    }
    const keys = requireKeys(ctx);
    const ticket = keys.verifyTicket(req.headers[TICKET_HEADER] as string | undefined, {
      op: 'write',
      chunk: id,
      server: ctx.serverId,
      now: ctx.now(),
    });
    const size = Number(req.headers['content-length']);
    if (req.headers['content-length'] === undefined || !Number.isSafeInteger(size) || size < 0) {
      throw new SedfsError('SEDFS_ERR_BODY_REQUIRED');
    }
    if (size > ctx.store.maxChunkBytes) {
      throw new SedfsError(
        'SEDFS_ERR_BODY_TOO_LARGE',
        `a chunk may be at most ${ctx.store.maxChunkBytes} bytes`,
      );
    }

    const { rest, verifiedUpstream } = chainPlace(ctx, ticket, req.raw);
    // Begun before anything goes down the chain: a server out of space (or failing to
    // open its file) refuses at once, and the one before it, or the client, sends the
    // servers after it the chunk directly (see restFailed), as for any failed replica.
    let write: ChunkWrite | undefined = await ctx.store.beginWrite(id, size, { verifiedUpstream });
    const next = rest[0];
    let downstream: ReturnType<typeof forward<PutChunkResponse>> | undefined;
    try {
      downstream = next?.url
        ? forward<PutChunkResponse>(
            ctx,
            `${next.url}/v1/chunks/${id}`,
            {
              'content-length': String(size),
              [TICKET_HEADER]: req.headers[TICKET_HEADER] as string,
            },
            next.server,
          )
        : undefined;
    } catch (err) {
      // A next server's address that cannot be used: the write begun above is let go
      // (its file, descriptor and buffer), not left until the next start.
      await write.abort();
      throw err;
    }
    try {
      const w = write;
      await pump(req.raw, (piece) => {
        const stored = w.append(piece);
        // The piece that completes the chunk goes on only once this server has checked
        // the whole chunk, so a chunk that fails here never becomes complete further down
        // (where a verified upstream is not hashed again). The same rule as for batches.
        if (w.receivedBytes === size)
          return (stored ?? Promise.resolve()).then(() => {
            w.verify();
            return downstream?.push(piece);
          });
        const sent = downstream?.push(piece);
        return stored && sent ? Promise.all([stored, sent]).then(() => undefined) : (stored ?? sent);
      });
      if (!req.raw.complete) throw new SedfsError('SEDFS_ERR_BODY_INCOMPLETE');
      w.verify();
      const committing = w.commit();
      write = undefined;
      downstream?.end();
      await committing;
    } catch (err) {
      downstream?.abort();
      await write?.abort();
      throw err;
    }

    const own = {
      server: ctx.serverId,
      receipt: receiptFor(keys.receiptKey, ctx.serverId, id, size, uploadOf(ticket)),
    };
    req.log.debug({ chunk: id, size, chainRest: rest.length }, 'chunk stored');
    if (!downstream) return { receipts: [own], failed: restFailed(rest) };
    const down = await downstream.result();
    if ('receipts' in down) return { receipts: [own, ...down.receipts], failed: down.failed };
    req.log.warn(
      { chunk: id, next: next?.server, code: down.error.code },
      'chain replication to next server failed',
    );
    reply.header('x-sedfs-chain-broken', next?.server ?? '');
    return { receipts: [own], failed: restFailed(rest, down.error) };
  });
}

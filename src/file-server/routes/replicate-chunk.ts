import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { receiptFor } from '../../crypto/receipts.js';
import { uploadOf } from '../../crypto/tickets.js';
import { assertChunkId } from '../../protocol/chunk-id.js';
import { SedfsError } from '../../protocol/errors.js';
import type { PutChunkResponse } from '../../protocol/file-server-api.js';
import { TICKET_HEADER } from '../../protocol/ticket.js';
import { type FileServerContext, requireKeys, requireMain } from '../context.js';

const Body = Type.Object(
  {
    sourceTicket: Type.String({ maxLength: 8192 }),
    /** the chunk's size as main knows it */
    size: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: false },
);

/**
 * Repair: main orders this server to copy a chunk from a healthy replica. The write
 * ticket names the source (signed, so nobody else can point it anywhere); the read
 * ticket for the source rides in the body, with the chunk's size. The body is read with
 * `ChunkReader` into a reused buffer (through undici, receiving cost the receiver ~0.6 s
 * more CPU per GiB), then hashed and written to the disk from that buffer, and answered
 * with this server's receipt.
 */
export function replicateChunkRoute(app: FastifyInstance, ctx: FileServerContext): void {
  app.post<{ Params: { id: string }; Body: { sourceTicket: string; size: number } }>(
    '/v1/chunks/:id/replicate',
    { schema: { body: Body }, bodyLimit: 16 * 1024 },
    async (req): Promise<PutChunkResponse> => {
      const id = assertChunkId(req.params.id);
      requireMain(ctx, req);
      const keys = requireKeys(ctx);
      const ticket = keys.verifyTicket(req.headers[TICKET_HEADER] as string | undefined, {
        op: 'write',
        chunk: id,
        server: ctx.serverId,
        now: ctx.now(),
      });
      if (!ticket.from)
        throw new SedfsError('SEDFS_ERR_TICKET_MISMATCH', 'this ticket does not order a copy');
      const url = `${ticket.from}/v1/chunks/${id}`;
      const { size } = req.body;
      if (size > ctx.store.maxChunkBytes)
        throw new SedfsError('SEDFS_ERR_BODY_TOO_LARGE', 'the chunk is larger than this server accepts');
      // Refused before the copy is fetched: main tries another target at its next pass.
      // A chunk held here already needs no room (main's map may not have known of it).
      await ctx.store.ensureRoomFor([{ id, size }]);
      const into = size <= ctx.copyBuffers.size ? ctx.copyBuffers.take() : Buffer.allocUnsafe(size);
      try {
        // The source must show the certificate of the server the ticket names there.
        const source = ticket.fromServer === undefined ? undefined : [ticket.fromServer];
        const got = await ctx.chunkReader.get(url, req.body.sourceTicket, size, into, source);
        // A body of another length is not this chunk (the hash check would say so too).
        if (got.length !== size)
          throw new SedfsError('SEDFS_ERR_HASH_MISMATCH', `the source sent ${got.length} bytes, not ${size}`);
        await ctx.store.storeWhole(id, got);
      } finally {
        ctx.copyBuffers.give(into);
      }
      req.log.info({ chunk: id, size, from: ticket.from }, 'chunk copied for repair');
      return {
        receipts: [
          {
            server: ctx.serverId,
            receipt: receiptFor(keys.receiptKey, ctx.serverId, id, size, uploadOf(ticket)),
          },
        ],
        failed: [],
      };
    },
  );
}

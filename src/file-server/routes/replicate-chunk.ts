import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { errorFromResponse, unreachable } from '../../common/http-client.js';
import { pump } from '../../common/pump.js';
import { request } from '../../common/undici.js';
import { receiptFor } from '../../crypto/receipts.js';
import { assertChunkId } from '../../protocol/chunk-id.js';
import { SedfsError } from '../../protocol/errors.js';
import type { PutChunkResponse } from '../../protocol/file-server-api.js';
import { TICKET_HEADER } from '../../protocol/ticket.js';
import { type FileServerContext, requireKeys, requireMain } from '../context.js';

const Body = Type.Object({ sourceTicket: Type.String({ maxLength: 8192 }) }, { additionalProperties: false });

/**
 * Repair: main orders this server to copy a chunk from a healthy replica. The write
 * ticket names the source (signed, so nobody else can point it anywhere); the read
 * ticket for the source rides in the body. The copy is hashed as it arrives, like any
 * write, and answered with this server's receipt.
 */
export function replicateChunkRoute(app: FastifyInstance, ctx: FileServerContext): void {
  app.post<{ Params: { id: string }; Body: { sourceTicket: string } }>(
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
      let res: Awaited<ReturnType<typeof request>>;
      try {
        res = await request(url, {
          dispatcher: ctx.agent,
          headers: { [TICKET_HEADER]: req.body.sourceTicket },
        });
      } catch (err) {
        throw unreachable(url, err);
      }
      if (res.statusCode >= 400) throw await errorFromResponse(res, url);
      const size = Number(res.headers['content-length']);
      if (!Number.isSafeInteger(size) || size > ctx.store.maxChunkBytes) {
        res.body.destroy();
        throw new SedfsError(
          'SEDFS_ERR_BODY_TOO_LARGE',
          'the source sent a chunk larger than this server accepts',
        );
      }
      const write = await ctx.store.beginWrite(id, size);
      try {
        await pump(res.body, (piece) => write.append(piece));
        await write.commit();
      } catch (err) {
        await write.abort();
        throw err;
      }
      req.log.info({ chunk: id, size, from: ticket.from }, 'chunk copied for repair');
      return {
        receipts: [{ server: ctx.serverId, receipt: receiptFor(keys.receiptKey, ctx.serverId, id, size) }],
        failed: [],
      };
    },
  );
}

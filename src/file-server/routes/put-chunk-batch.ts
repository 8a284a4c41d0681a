import type { FastifyInstance } from 'fastify';
import { pump } from '../../common/pump.js';
import { receiptFor } from '../../crypto/receipts.js';
import { uploadOf } from '../../crypto/tickets.js';
import { assertChunkId } from '../../protocol/chunk-id.js';
import { SedfsError } from '../../protocol/errors.js';
import {
  MAX_BATCH_BYTES,
  MAX_BATCH_CHUNKS,
  type PutBatchResponse,
  type PutChunkResponse,
  SIZES_HEADER,
} from '../../protocol/file-server-api.js';
import { TICKET_HEADER } from '../../protocol/ticket.js';
import { chainPlace, forward, restFailed } from '../chain-forward.js';
import { type FileServerContext, requireKeys } from '../context.js';

/**
 * Small chunks in one request (see SIZES_HEADER): the ticket names every chunk in body
 * order, and the whole body goes down the chain as one request too. Each chunk is
 * checked as its last byte arrives, and the batch is stored as one pack file with one
 * fsync (chunk-packs.ts); a batch that fails stores nothing here. A piece of the body
 * goes on down the chain only after every chunk it completes has been checked here, so
 * the next server (which, fed by a verified upstream, does not hash) never completes a
 * chunk that failed here.
 */
export function putChunkBatchRoute(app: FastifyInstance, ctx: FileServerContext): void {
  app.put('/v1/chunks', async (req): Promise<PutBatchResponse> => {
    if (req.headers['content-type'] !== 'application/octet-stream') {
      throw new SedfsError('SEDFS_ERR_UNSUPPORTED_MEDIA', 'chunks are sent as application/octet-stream');
    }
    const token = req.headers[TICKET_HEADER] as string | undefined;
    const ticket = requireKeys(ctx).verifyTicket(token, {
      op: 'write',
      batch: true,
      server: ctx.serverId,
      now: ctx.now(),
    });
    const ids = ticket.chunks.map(assertChunkId);
    if (ids.length > MAX_BATCH_CHUNKS)
      throw new SedfsError('SEDFS_ERR_BAD_REQUEST', `a batch holds at most ${MAX_BATCH_CHUNKS} chunks`);
    // Two writes of one chunk in one batch would race to place the same file.
    if (new Set(ids).size !== ids.length)
      throw new SedfsError('SEDFS_ERR_BAD_REQUEST', 'a batch names each chunk once');
    const sizesHeader = String(req.headers[SIZES_HEADER] ?? '');
    const sizes = parseSizes(sizesHeader, ids.length, ctx.store.maxChunkBytes);
    const total = sizes.reduce((a, b) => a + b, 0);
    if (total > MAX_BATCH_BYTES)
      throw new SedfsError('SEDFS_ERR_BODY_TOO_LARGE', `a batch may be at most ${MAX_BATCH_BYTES} bytes`);
    if (Number(req.headers['content-length']) !== total)
      throw new SedfsError('SEDFS_ERR_BAD_REQUEST', `content-length must be the sum of ${SIZES_HEADER}`);

    const { rest, verifiedUpstream } = chainPlace(ctx, ticket, req.raw);
    // Refused before anything goes down the chain, as a single chunk is (put-chunk.ts);
    // the chunks held here already need no room (a pack leaves them out).
    await ctx.store.ensureRoomFor(ids.map((id, i) => ({ id, size: sizes[i] as number })));
    const next = rest[0];
    const downstream = next?.url
      ? forward<PutBatchResponse>(
          ctx,
          `${next.url}/v1/chunks`,
          {
            'content-length': String(total),
            [TICKET_HEADER]: token as string,
            [SIZES_HEADER]: sizesHeader,
          },
          next.server,
        )
      : undefined;

    const pack = ctx.store.beginPack(ids, sizes, { verifiedUpstream });
    try {
      await pump(req.raw, (piece) => {
        pack.append(piece);
        // Every chunk this piece completed is checked by now: the next server may have it.
        return downstream?.push(piece);
      });
      if (!req.raw.complete || !pack.complete) throw new SedfsError('SEDFS_ERR_BODY_INCOMPLETE');
      downstream?.end();
      await pack.commit();
    } catch (err) {
      downstream?.abort();
      throw err;
    }

    const keys = requireKeys(ctx);
    const own = ids.map((id, i) => ({
      server: ctx.serverId,
      receipt: receiptFor(keys.receiptKey, ctx.serverId, id, sizes[i] as number, uploadOf(ticket)),
    }));
    req.log.debug({ chunks: ids.length, bytes: total, chainRest: rest.length }, 'chunk batch stored');
    if (!downstream) return { results: own.map((o) => ({ receipts: [o], failed: restFailed(rest) })) };
    const down = await downstream.result();
    if ('results' in down && down.results.length === ids.length) {
      return {
        results: own.map((o, i) => {
          const theirs = down.results[i] as PutChunkResponse;
          return { receipts: [o, ...theirs.receipts], failed: theirs.failed };
        }),
      };
    }
    const why =
      'error' in down ? down.error : new SedfsError('SEDFS_ERR_REPLICATION_FAILED', 'a short answer');
    req.log.warn(
      { chunks: ids.length, next: next?.server, code: why.code },
      'chain replication of a batch failed',
    );
    const failed = restFailed(rest, why);
    return { results: own.map((o) => ({ receipts: [o], failed })) };
  });
}

/** The sizes header: one positive size per chunk, none above the server's limit. */
function parseSizes(header: string, count: number, maxChunkBytes: number): number[] {
  const sizes = header.split(',').map(Number);
  if (
    sizes.length !== count ||
    sizes.some((n) => !Number.isSafeInteger(n) || n < 1 || n > maxChunkBytes) ||
    !/^[0-9,]+$/.test(header)
  ) {
    throw new SedfsError(
      'SEDFS_ERR_BAD_REQUEST',
      `${SIZES_HEADER} must give one size per chunk in the ticket`,
    );
  }
  return sizes;
}

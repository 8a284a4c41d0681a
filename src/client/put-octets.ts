import type { Readable } from 'node:stream';
import { errorFromResponse } from '../common/http-client.js';
import { unreachable } from '../common/http-errors.js';
import { uploadWatch } from '../common/stall-watch.js';
import { request } from '../common/undici.js';
import type { ClusterClient } from './cluster-client.js';

/**
 * A body goes to the socket in pieces of at most this size, each once the last has left.
 * Over TLS, Node encrypts all of a write before any of it is sent, into memory of its
 * own: written whole, each 4 MiB chunk in flight held a second, encrypted copy until the
 * socket took it. A 1 GiB put's client peaked at 169-181 MiB resident that way, at
 * 117-121 MiB in pieces, in the same time.
 */
const SEND_PIECE_BYTES = 256 * 1024;

/** `bodies` one after the other, in pieces of at most SEND_PIECE_BYTES, none copied. */
function* inPieces(bodies: Buffer[]): Generator<Buffer> {
  for (const body of bodies)
    for (let at = 0; at < body.length; at += SEND_PIECE_BYTES) yield body.subarray(at, at + SEND_PIECE_BYTES);
}

/**
 * A PUT of raw bytes (`bodies` sent one after the other) to file server `serverId`; its
 * JSON answer, or its error as a SedfsError.
 */
export async function putOctets<T>(
  client: ClusterClient,
  url: string,
  bodies: Buffer[],
  headers: Record<string, string>,
  serverId: string,
): Promise<T> {
  client.chunkUrl(url);
  const agent = await client.fileServerAgent();
  // A server that hangs fails the upload within seconds, not at undici's 60 s.
  const watch = uploadWatch(agent, url, [serverId]);
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(url, {
      dispatcher: agent,
      // A new connection there must show the certificate of the server main placed it on.
      expectedIds: [serverId],
      method: 'PUT',
      headers: {
        'content-type': 'application/octet-stream',
        'content-length': String(bodies.reduce((n, b) => n + b.length, 0)),
        ...headers,
      },
      // undici sends an iterable body piece by piece, waiting for the socket to drain
      // (documented; its type declarations leave iterables out).
      body: watch.watching(inPieces(bodies)) as unknown as Readable,
      signal: watch.signal,
    });
  } catch (err) {
    const failed = watch.failure ?? unreachable(url, err);
    // A batch's head too: its chunks, sent again one by one, pass it over.
    if (failed.code === 'SEDFS_ERR_UNREACHABLE') client.unanswering.note(serverId, failed.message);
    throw failed;
  } finally {
    watch.finish();
  }
  if (res.statusCode >= 400) throw await errorFromResponse(res, url);
  return (await res.body.json()) as T;
}

import { connect as connectTcp, isIP, type Socket } from 'node:net';
import { type ConnectionOptions, connect as connectTls, type PeerCertificate } from 'node:tls';
import { SedfsError } from '../protocol/errors.js';
import { STALL_MS } from '../protocol/limits.js';
import { TICKET_HEADER } from '../protocol/ticket.js';
import { errorFromBody, unreachable } from './http-errors.js';
import { clientTlsOptions, isServerCertificate, type TlsIdentity } from './tls.js';

/** An answer's head (status line and headers) may be at most this long. */
const HEAD_LIMIT = 16 * 1024;
/** An error answer's JSON body may be at most this long. */
const ERROR_BODY_LIMIT = 64 * 1024;
/** Kept connections per server. */
const IDLE_PER_ORIGIN = 8;
/** A kept connection unused this long is closed. */
const IDLE_MS = 10_000;
/**
 * Each connection's reused receive buffer. Read into one buffer, not a new one per TLS
 * record (Node's default), a 1 GiB get's client took ~0.13 s less CPU and peaked ~13 MiB
 * lower: no allocation per record, nothing left for the collector.
 */
const RECEIVE_BYTES = 64 * 1024;

/** Where a connection's received bytes go now; the piece is valid only during the call. */
type Receiver = (piece: Buffer) => void;

/**
 * GETs of stored chunks (`GET /v1/chunks/:id`) on keep-alive connections of our own, the
 * body read straight from the socket into the caller's buffer. A download's client thread
 * is its bottleneck, and receiving was most of it: through undici a GiB over TLS took
 * 1.25–1.40 s of client CPU (its HTTP parser copies every byte into WebAssembly memory,
 * and each 16 KiB TLS record passes through its body stream), read this way 0.62–0.74 s
 * (0.3 s over plain TCP against 0.7). Everything else (main's API, uploads, servers
 * among themselves) stays on undici. The exchange is the narrow one our file servers
 * speak: HTTP/1.1, a `content-length` on every answer, a JSON body on errors; anything
 * else is refused, and a connection is kept only after a complete, exact answer.
 */
export class ChunkReader {
  /** kept connections by `poolKey` (origin and the ids checked for), each with the listener that drops it while it waits */
  private readonly idle = new Map<string, { socket: Socket; drop: () => void }[]>();
  private closed = false;
  /** each connection's `poolKey`, fixed when it was made */
  private readonly keptUnder = new WeakMap<Socket, string>();

  /**
   * `tls`: whom https servers must chain to (the cluster CA); none trusts the system's CAs.
   * `httpsOnly` (with `tls`, unless told otherwise): a plain http:// URL is refused
   * (`SEDFS_ERR_INSECURE_URL`) before any connection, so a URL main or a ticket carries
   * cannot send a ticket, or get bytes, in the clear in a cluster that runs over TLS.
   */
  constructor(
    private readonly tls?: TlsIdentity,
    private readonly opts: { httpsOnly?: boolean } = {},
  ) {}

  /**
   * Reads the chunk at `url` into `into`; an answer longer than `size` (or than `into`)
   * is wrong bytes, returned as an empty buffer, not read. `expected`: the server ids of
   * which the certificate shown there must name one (see `tlsConnector`), as the ticket
   * or manifest names them: given with each read, not looked up in a map that other
   * reads under way change.
   */
  async get(
    url: string,
    ticket: string,
    size: number,
    into: Buffer,
    expected?: readonly string[],
  ): Promise<Buffer> {
    const target = new URL(url);
    if ((this.opts.httpsOnly ?? this.tls !== undefined) && target.protocol !== 'https:')
      throw new SedfsError('SEDFS_ERR_INSECURE_URL', undefined, { url: target.origin });
    // The ticket goes into the request's head as it is: it must not be able to end a line.
    if (/[\r\n]/.test(ticket))
      throw new SedfsError('SEDFS_ERR_BAD_REQUEST', 'a ticket cannot hold a line break');
    // Fixed now, for this read: the same after any wait, whatever others expect there.
    const names = this.expectedAt(target, expected);
    const kept = this.takeIdle(this.poolKey(target, names));
    if (kept) {
      try {
        return await this.exchange(kept, target, ticket, size, into, true);
      } catch (err) {
        // The server closed a kept connection before we used it: once more, on a new one.
        if (!(err instanceof StaleConnection)) throw err;
      }
    }
    return this.exchange(await this.connect(target, names), target, ticket, size, into, false);
  }

  /** Closes every kept connection, and each one still in use once its answer is read. */
  close(): void {
    this.closed = true;
    for (const kept of this.idle.values()) for (const { socket } of kept) socket.destroy();
    this.idle.clear();
  }

  /** The server ids a connection to `target` must show a certificate for, if any. */
  private expectedAt(target: URL, expected: readonly string[] | undefined): readonly string[] | undefined {
    return target.protocol === 'https:' ? expected : undefined;
  }

  /**
   * Where a connection is kept: its origin and the ids its certificate was checked for.
   * A certificate is checked once, at connect: a connection checked for server X must
   * not carry a read meant for Y once Y is expected at that address instead.
   */
  private poolKey(target: URL, names: readonly string[] | undefined): string {
    return `${target.origin} ${names ? [...names].sort().join(',') : ''}`;
  }

  private connect(target: URL, names: readonly string[] | undefined): Promise<Socket> {
    const secure = target.protocol === 'https:';
    const host = target.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(target.port || (secure ? 443 : 80));
    const onread = {
      buffer: Buffer.allocUnsafe(RECEIVE_BYTES),
      callback: (n: number, buffer: Uint8Array) => {
        const receiver = receivers.get(socket);
        // Bytes no exchange asked for: the connection is out of step, and of no more use.
        if (receiver) receiver((buffer as Buffer).subarray(0, n));
        else socket.destroy();
        return true;
      },
    };
    const socket = secure
      ? connectTls({
          host,
          port,
          // SNI takes names only; an address is checked against the certificate's IP entries.
          ...(isIP(host) ? {} : { servername: host }),
          ...(this.tls ? clientTlsOptions(this.tls) : {}),
          ...(names
            ? {
                checkServerIdentity: (name: string, cert: PeerCertificate) =>
                  isServerCertificate(name, cert, names),
              }
            : {}),
          // Node takes it for TLS sockets too (nodejs/node#35753); its types list it only for net.
          ...({ onread } as ConnectionOptions),
        })
      : connectTcp({ host, port, onread });
    this.keptUnder.set(socket, this.poolKey(target, names));
    return new Promise((resolve, reject) => {
      const fail = (err: Error) => {
        socket.destroy();
        reject(unreachable(target.href, err));
      };
      socket.setNoDelay(true);
      socket.setTimeout(STALL_MS, () => {
        socket.destroy();
        reject(silent(target, 'did not complete a connection'));
      });
      socket.once('error', fail);
      socket.once(secure ? 'secureConnect' : 'connect', () => {
        socket.off('error', fail);
        socket.setTimeout(0);
        socket.removeAllListeners('timeout');
        resolve(socket);
      });
    });
  }

  /** One request and its answer on `socket`, which is kept afterwards only if all went exactly right. */
  private exchange(
    socket: Socket,
    target: URL,
    ticket: string,
    size: number,
    into: Buffer,
    reused: boolean,
  ): Promise<Buffer> {
    const url = target.href;
    return new Promise<Buffer>((resolve, reject) => {
      let head: Buffer | undefined;
      let answered = false;
      let status: number = 0;
      let length = 0;
      let keep = true;
      let fill = 0;
      let errorBody: Buffer | undefined;
      let settled = false;

      const finish = (err: Error | undefined, result?: Buffer) => {
        if (settled) return;
        settled = true;
        receivers.delete(socket);
        socket.off('error', onError);
        socket.off('close', onClose);
        socket.off('timeout', onSilent);
        if (err) {
          socket.destroy();
          reject(err);
        } else {
          if (keep) this.keep(this.keptUnder.get(socket) as string, socket);
          else socket.destroy();
          resolve(result as Buffer);
        }
      };

      const onAnswerHead = (text: string): Error | undefined => {
        const lines = text.split('\r\n');
        const statusLine = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
        if (!statusLine) return answerError(target, 'a malformed status line');
        status = Number(statusLine[1]);
        let declared: string | undefined;
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(':');
          if (colon <= 0) return answerError(target, 'a malformed header');
          const name = line.slice(0, colon).trim().toLowerCase();
          const value = line.slice(colon + 1).trim();
          if (name === 'content-length') declared = value;
          else if (name === 'transfer-encoding') return answerError(target, `transfer-encoding ${value}`);
          else if (name === 'connection' && value.toLowerCase() === 'close') keep = false;
        }
        if (declared === undefined || !/^\d+$/.test(declared))
          return answerError(target, 'no content-length');
        length = Number(declared);
        if (status === 200) return undefined;
        if (length > ERROR_BODY_LIMIT) return errorFromBody(status, undefined, url);
        errorBody = Buffer.allocUnsafe(length);
        return undefined;
      };

      const onBody = (piece: Buffer) => {
        const sink = errorBody ?? into;
        const n = Math.min(piece.length, length - fill);
        piece.copy(sink, fill, 0, n);
        fill += n;
        // Bytes beyond the answer: the connection is out of step, not to be used again.
        if (piece.length > n) keep = false;
        if (fill < length) return;
        if (!errorBody) {
          finish(undefined, into.subarray(0, length));
          return;
        }
        let body: unknown;
        try {
          body = JSON.parse(errorBody.toString('utf8'));
        } catch {
          body = undefined;
        }
        finish(errorFromBody(status, body, url));
      };

      const onData = (piece: Buffer) => {
        answered = true;
        if (status !== 0) {
          onBody(piece);
          return;
        }
        // The piece is the connection's receive buffer, valid only during this call: an
        // unfinished head is copied to wait for the rest, a finished one used as it is.
        const seen = head ? Buffer.concat([head, piece]) : piece;
        const end = seen.indexOf('\r\n\r\n');
        if (end < 0) {
          head = head ? seen : Buffer.from(piece);
          if (head.length > HEAD_LIMIT) finish(answerError(target, 'a head over 16 KiB'));
          return;
        }
        head = undefined;
        const bad = onAnswerHead(seen.subarray(0, end).toString('latin1'));
        if (bad) {
          finish(bad);
          return;
        }
        const rest = seen.subarray(end + 4);
        if (!errorBody && length > Math.min(size, into.length)) {
          // Longer than the chunk can be: wrong bytes, and not worth reading.
          keep = false;
          finish(undefined, Buffer.alloc(0));
          return;
        }
        onBody(rest);
      };

      const onError = (err: Error) =>
        finish(reused && !answered ? new StaleConnection() : unreachable(url, err));
      const onClose = () =>
        finish(
          reused && !answered
            ? new StaleConnection()
            : new SedfsError(
                'SEDFS_ERR_UNREACHABLE',
                `${target.origin} closed the connection before the whole chunk arrived`,
                { url },
              ),
        );
      const onSilent = () => finish(silent(target, 'sent nothing'));

      receivers.set(socket, onData);
      socket.once('error', onError);
      socket.once('close', onClose);
      socket.setTimeout(STALL_MS);
      socket.once('timeout', onSilent);
      socket.ref();
      socket.write(
        `GET ${target.pathname} HTTP/1.1\r\nhost: ${target.host}\r\n${TICKET_HEADER}: ${ticket}\r\n\r\n`,
        'latin1',
      );
    });
  }

  /** Keeps a connection for the next chunk from the same server, or closes it if enough are kept. */
  private keep(key: string, socket: Socket): void {
    const list = this.idle.get(key) ?? [];
    if (this.closed || list.length >= IDLE_PER_ORIGIN || socket.destroyed) {
      socket.destroy();
      return;
    }
    const kept = {
      socket,
      drop: () => {
        socket.destroy();
        const at = list.indexOf(kept);
        if (at >= 0) list.splice(at, 1);
        // No empty list left behind: keys change with the ids expected at an address.
        if (list.length === 0 && this.idle.get(key) === list) this.idle.delete(key);
      },
    };
    // While kept: an error, a close, silence or stray bytes just drop it; it does not
    // hold the process open.
    for (const event of KEPT_EVENTS) socket.on(event, kept.drop);
    receivers.set(socket, kept.drop);
    socket.setTimeout(IDLE_MS);
    socket.unref();
    list.push(kept);
    this.idle.set(key, list);
  }

  private takeIdle(key: string): Socket | undefined {
    const list = this.idle.get(key);
    for (let kept = list?.pop(); kept; kept = list?.pop()) {
      for (const event of KEPT_EVENTS) kept.socket.off(event, kept.drop);
      receivers.delete(kept.socket);
      if (list?.length === 0) this.idle.delete(key);
      if (!kept.socket.destroyed) return kept.socket;
    }
    return undefined;
  }
}

const KEPT_EVENTS = ['error', 'close', 'timeout'] as const;

/** Each connection's receiver: the exchange waiting on it, or the drop of a kept one. */
const receivers = new WeakMap<Socket, Receiver>();

/** A server that let STALL_MS pass without `what` (it may hang): the next copy is tried. */
const silent = (target: URL, what: string) =>
  new SedfsError('SEDFS_ERR_UNREACHABLE', `${target.origin} ${what} in ${STALL_MS / 1000} s`, {
    url: target.href,
  });

/** A kept connection that turned out closed before it answered: worth one retry on a new one. */
class StaleConnection extends Error {}

function answerError(target: URL, what: string): SedfsError {
  return new SedfsError('SEDFS_ERR_UNREACHABLE', `${target.origin} answered with ${what}`, {
    url: target.href,
  });
}

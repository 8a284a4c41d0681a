import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { errorFromBody, notJson, unreachable } from '../common/http-errors.js';
import { clientTlsOptions, isMainCertificate, type TlsIdentity } from '../common/tls.js';

/** How long main may go silent on a call before it counts as unreachable (0: as long as it takes). */
const SILENCE_MS = 60_000;

/** How long a connection to main is kept unused before it is closed. */
const KEPT_IDLE_MS = 10_000;

/** How long making a connection (TCP and the TLS handshake) may take, as undici's connector had it. */
const CONNECT_MS = 10_000;

/** Connections to main at once at most, as undici's pool had it: calls beyond wait for one. */
const CONNECTIONS = 64;

export interface MainCallOptions {
  /** the session token, sent as a bearer credential */
  token?: string | undefined;
  /** how long main may be silent, ms; 0 = as long as it takes (long jobs) */
  silenceMs?: number;
}

/**
 * A client's JSON calls to main, over node's own https (or http, with --insecure-http),
 * on kept-alive connections that must show main's own certificate from the cluster CA.
 * Not undici, which uploads to file servers use: a command that only talks to main
 * (ls, mkdir, share…) then never loads it, 20-25 ms of every such command's start
 * (docs/performance.md, W4).
 */
export class MainCalls {
  private readonly agent: HttpAgent;
  private readonly send: typeof httpRequest;
  private closed = false;

  /**
   * `tls`: the cluster CA to trust; `'unverified'`: trust any certificate, only to fetch
   * the CA itself, which is then checked against the fingerprint given (trust.ts).
   * `connectMs`: how long making a connection may take (a seam for tests).
   */
  constructor(
    private readonly mainUrl: string,
    tls?: TlsIdentity | 'unverified',
    private readonly connectMs = CONNECT_MS,
  ) {
    const common = { keepAlive: true, timeout: KEPT_IDLE_MS, maxSockets: CONNECTIONS };
    if (mainUrl.startsWith('https://')) {
      this.agent = new HttpsAgent({
        ...common,
        ...(tls === 'unverified'
          ? { rejectUnauthorized: false }
          : {
              ...(tls ? clientTlsOptions(tls) : {}),
              // The host check alone is not enough: see tlsConnector (common/http-client.ts).
              checkServerIdentity: isMainCertificate,
            }),
      });
      this.send = httpsRequest;
    } else {
      this.agent = new HttpAgent(common);
      this.send = httpRequest;
    }
  }

  /** JSON in and out; errors come back as SedfsError with main's code. */
  async call<T>(method: string, path: string, body?: unknown, opts: MainCallOptions = {}): Promise<T> {
    const url = `${this.mainUrl}${path}`;
    if (this.closed) throw unreachable(url, Object.assign(new Error('closed'), { code: 'CLIENT_CLOSED' }));
    const text = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = {
      ...(text === undefined ? {} : { 'content-type': 'application/json' }),
      ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
    };
    let answer: { res: IncomingMessage; body: Buffer };
    try {
      answer = await this.exchange(url, method, headers, text, opts.silenceMs ?? SILENCE_MS);
    } catch (err) {
      throw unreachable(url, err);
    }
    const { res } = answer;
    const status = res.statusCode ?? 0;
    let parsed: unknown;
    try {
      parsed = JSON.parse(answer.body.toString('utf8'));
    } catch {
      if (status < 400) throw notJson(url, status, res.headers['content-type']);
    }
    if (status >= 400) {
      // Seconds main asks us to wait before trying again (`retryAfterS`, see retryWhileBusy).
      const after = Number(res.headers['retry-after']);
      throw errorFromBody(status, parsed, url, after > 0 ? { retryAfterS: after } : {});
    }
    return parsed as T;
  }

  /**
   * One request and its whole answer. A GET on a kept connection main closed meanwhile
   * fails before any answer (ECONNRESET) and is sent once more on a new one, as node's
   * documentation advises. Nothing else is: main may have done what another request
   * asked before the connection went (a commit, a mkdir), and must not be asked twice.
   */
  private exchange(
    url: string,
    method: string,
    headers: Record<string, string>,
    body: string | undefined,
    silenceMs: number,
    again = true,
  ): Promise<{ res: IncomingMessage; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const req = this.send(url, { agent: this.agent, method, headers }, (res) => {
        const pieces: Buffer[] = [];
        res.on('data', (piece: Buffer) => pieces.push(piece));
        res.on('end', () => resolve({ res, body: Buffer.concat(pieces) }));
        res.on('error', reject);
      });
      const fail = (why: string, code: string) => req.destroy(Object.assign(new Error(why), { code }));
      // From the connection made on, main's silence; before it, the connecting itself,
      // TLS handshake included (a new socket's timeout starts only once TCP connects).
      req.setTimeout(silenceMs, () => fail(`no answer for ${silenceMs / 1000} s`, 'ETIMEDOUT'));
      req.on('socket', (socket) => {
        if (!socket.connecting) return;
        const timer = setTimeout(
          () => fail(`no connection in ${this.connectMs / 1000} s`, 'ETIMEDOUT'),
          this.connectMs,
        );
        socket.once(this.send === httpsRequest ? 'secureConnect' : 'connect', () => clearTimeout(timer));
        socket.once('close', () => clearTimeout(timer));
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (again && !this.closed && method === 'GET' && req.reusedSocket && err.code === 'ECONNRESET')
          resolve(this.exchange(url, method, headers, body, silenceMs, false));
        else reject(err);
      });
      req.end(body);
    });
  }

  /** Closes its connections; calls under way fail, and later ones too. */
  close(): void {
    this.closed = true;
    this.agent.destroy();
  }
}

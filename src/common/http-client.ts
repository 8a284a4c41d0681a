import type { PeerCertificate } from 'node:tls';
import { SedfsError } from '../protocol/errors.js';
import { noteHowToMakeAgain } from './fresh-agent.js';
import { errorFromBody, notJson, unreachable } from './http-errors.js';
import { watchedRequest } from './stall-watch.js';
import {
  clientTlsOptions,
  endpointOf,
  endpointOfUrl,
  isMainCertificate,
  isServerCertificate,
  type ServerNames,
  type TlsIdentity,
} from './tls.js';
import { Agent, buildConnector, type Connector, type Dispatcher, request } from './undici.js';

/**
 * One connection pool per process; keep-alive matters for many small chunk requests.
 * With `tls`, https connections trust only the cluster CA and show this process's
 * certificate when it has one; with `mainUrl` too, that address must show main's own,
 * and a file server's endpoint the certificate of a server expected there: one of the
 * request's own `expectedIds` (see `request`), else of those `serverNames` has there.
 */
/** Connections an agent keeps to one endpoint at most (undici's per-origin pool). */
export const CONNECTIONS_PER_ENDPOINT = 64;

export function createAgent(
  tls?: TlsIdentity,
  opts: { mainUrl?: string; serverNames?: ServerNames; maxEndpoints?: number } = {},
): Agent {
  const options: AgentOptions = {
    keepAliveTimeout: 10_000,
    connections: CONNECTIONS_PER_ENDPOINT,
    headersTimeout: 60_000,
    bodyTimeout: 60_000,
  };
  const agent = tls
    ? new ExpectedServersAgent(options, tls, opts.mainUrl, opts.serverNames, opts.maxEndpoints)
    : new Agent(options);
  // Health checks go on a new agent like it (see freshAgentLike).
  noteHowToMakeAgain(agent, () => createAgent(tls, opts));
  return agent;
}

type AgentOptions = NonNullable<ConstructorParameters<typeof Agent>[0]>;

/**
 * Pools kept per endpoint: for the ids expected there now, and for those before (a
 * handover's requests still under way, tickets still naming the server that was there).
 * Older ones are closed: each address handover made a pool that lived for ever.
 */
const POOLS_PER_ENDPOINT = 2;

/**
 * Endpoints whose pools are kept, the least recently used closed beyond that: a main
 * that lives for months sees addresses come and go (servers moved, addresses handed out
 * anew), and each kept its pools for good. Well above any cluster's file servers: a pool
 * closed while its endpoint is still in use costs a new connection and handshake.
 */
const MAX_ENDPOINTS = 1024;

/**
 * undici keeps connections by origin alone, and a certificate is checked once, when its
 * connection is made: a kept-alive connection checked for server X at an address would
 * carry requests meant for Y once Y is expected there instead (a new server id took
 * the address, a ticket names another server at a URL). So requests to an endpoint some
 * server is expected at go through a pool of their own per endpoint and set of expected
 * ids, whose connections were checked for exactly those ids.
 */
class ExpectedServersAgent extends Agent {
  /** by endpoint, its pools by the ids expected (sorted, comma-joined), least recently used first */
  private readonly pools = new Map<string, Map<string, Agent>>();
  private readonly mainEndpoint: string | undefined;

  constructor(
    private readonly options: AgentOptions,
    private readonly tls: TlsIdentity,
    mainUrl: string | undefined,
    private readonly serverNames: ServerNames | undefined,
    private readonly maxEndpoints = MAX_ENDPOINTS,
  ) {
    super({ ...options, connect: tlsConnector(tls, mainUrl) });
    this.mainEndpoint = mainUrl ? endpointOfUrl(mainUrl) : undefined;
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    // The request's own ids first: a map shared by requests under way is read when a
    // request is dispatched, not when its ticket was, and could name another server at
    // that address by then (file servers and clients give them with each request).
    const given = (opts as { expectedIds?: readonly string[] }).expectedIds;
    if (!given && !this.serverNames) return super.dispatch(opts, handler);
    const endpoint = opts.origin ? endpointOfUrl(String(opts.origin)) : undefined;
    const ids =
      endpoint === undefined || endpoint === this.mainEndpoint
        ? undefined
        : (given ?? this.serverNames?.(endpoint));
    // Closed: undici's own refusal, no new pool.
    if (!ids || this.closed || this.destroyed) return super.dispatch(opts, handler);
    return this.poolFor(endpoint as string, ids).dispatch(opts, handler);
  }

  private poolFor(endpoint: string, ids: readonly string[]): Agent {
    const key = [...ids].sort().join(',');
    const at = this.pools.get(endpoint) ?? new Map<string, Agent>();
    // Moved to the end: the endpoints stay in the order they were last used.
    this.pools.delete(endpoint);
    this.pools.set(endpoint, at);
    for (const [old, pools] of this.pools) {
      if (this.pools.size <= this.maxEndpoints) break;
      this.pools.delete(old);
      for (const stale of pools.values()) void stale.close().catch(() => undefined);
    }
    let pool = at.get(key);
    if (pool) {
      at.delete(key);
      at.set(key, pool);
      return pool;
    }
    pool = new Agent({ ...this.options, connect: tlsConnector(this.tls, undefined, ids) });
    at.set(key, pool);
    // Closing lets what was sent through a pool finish; only new requests go elsewhere.
    for (const [old, stale] of at) {
      if (at.size <= POOLS_PER_ENDPOINT) break;
      at.delete(old);
      void stale.close().catch(() => undefined);
    }
    return pool;
  }

  private allPools(): Agent[] {
    return [...this.pools.values()].flatMap((at) => [...at.values()]);
  }

  // The callback forms are how undici's promise forms call themselves: by then the
  // promise form below has closed the pools too.
  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    if (callback) return super.close(callback);
    const pools = this.allPools().map((p) => p.close());
    return Promise.all([super.close(), ...pools]).then(() => undefined);
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(errOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    if (typeof errOrCallback === 'function') return super.destroy(errOrCallback);
    const err = errOrCallback ?? null;
    if (callback) return super.destroy(err, callback);
    const pools = this.allPools().map((p) => p.destroy(err));
    return Promise.all([super.destroy(err), ...pools]).then(() => undefined);
  }
}

export interface JsonRequest {
  method?: Dispatcher.HttpMethod;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** How long to wait for the answer to start, ms; 0 = as long as it takes (long jobs). */
  headersTimeoutMs?: number;
  /** the file server whose certificate must answer (see `request`) */
  expectedIds?: readonly string[];
  /** the answer waited for under a StallWatch of this many ms (see watchedRequest): a hung server fails it */
  stallMs?: number;
}

/** Reads an error body from a response we are not going to use, as a SedfsError. */
export async function errorFromResponse(
  res: Dispatcher.ResponseData<unknown>,
  url: string,
): Promise<SedfsError> {
  let body: unknown;
  try {
    body = await res.body.json();
  } catch {
    body = undefined;
  }
  // Seconds the server asks us to wait before trying again (`retryAfterS`, see retryWhileBusy).
  const after = Number(res.headers['retry-after']);
  return errorFromBody(res.statusCode, body, url, after > 0 ? { retryAfterS: after } : {});
}

/**
 * Resolves once undici has its connection back: it frees a kept connection a turn of
 * the event loop after the answer ended (setImmediate), and a request sent before that,
 * as a command's next call is, opened another connection and TLS handshake (every
 * `sedfs ls` made two to main). Calls made one after another now share one.
 */
const connectionBack = () => new Promise((resolve) => setImmediate(resolve));

/** A JSON request to a SEDFS server; errors come back as SedfsError with the server's code. */
export async function requestJson<T>(agent: Dispatcher, url: string, opts: JsonRequest = {}): Promise<T> {
  let res: Dispatcher.ResponseData;
  const { stallMs } = opts;
  const send = stallMs
    ? (u: string, o: Parameters<typeof request>[1]) => watchedRequest(agent, u, o, stallMs)
    : request;
  try {
    res = await send(url, {
      dispatcher: agent,
      method: opts.method ?? (opts.body === undefined ? 'GET' : 'POST'),
      headers: {
        ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }),
        ...opts.headers,
      },
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
      ...(opts.headersTimeoutMs === undefined ? {} : { headersTimeout: opts.headersTimeoutMs }),
      ...(opts.expectedIds ? { expectedIds: opts.expectedIds } : {}),
    });
  } catch (err) {
    throw err instanceof SedfsError ? err : unreachable(url, err);
  }
  if (res.statusCode >= 400) {
    const err = await errorFromResponse(res, url);
    await connectionBack();
    throw err;
  }
  const text = await res.body.text();
  await connectionBack();
  try {
    return JSON.parse(text) as T;
  } catch {
    throw notJson(url, res.statusCode, res.headers['content-type']);
  }
}

/**
 * An undici connector that trusts only the cluster CA and presents this process's
 * certificate when it has one; rebuilt at its first connection after the certificate
 * was renewed. It subscribes to nothing: agents are made for a moment too (main's
 * address probe makes one per probe), and a renewal listener per connector kept every
 * one of them, and rebuilt them all at each renewal, for the life of the process.
 *
 * With `mainUrl`, connections to that address must also show main's own certificate.
 * The host check alone is not enough: a file server's certificate names the host it
 * runs on, often main's too, so whoever holds the join token could otherwise stand
 * in for main with any certificate the cluster issued. With `expectedIds`, every other
 * connection must show a certificate for one of those server ids (its CN): enrolment
 * certifies whatever host a join-token holder advertises, so the host alone does not
 * tell one server from another the cluster certified for it. Which ids are expected
 * where is the pool's business (`createAgent`): a connection is checked once, when it
 * is made, so it must only ever carry requests for the ids it was checked for.
 */
export function tlsConnector(tls: TlsIdentity, mainUrl?: string, expectedIds?: readonly string[]): Connector {
  const build = () => ({
    other: buildConnector({
      ...clientTlsOptions(tls),
      ...(expectedIds
        ? {
            checkServerIdentity: (host: string, cert: PeerCertificate) =>
              isServerCertificate(host, cert, expectedIds),
          }
        : {}),
    }),
    main: buildConnector({ ...clientTlsOptions(tls), checkServerIdentity: isMainCertificate }),
  });
  let connectors = build();
  let builtFor = tls.generation;
  const main = mainUrl ? endpointOfUrl(mainUrl) : undefined;
  return (options, callback) => {
    if (builtFor !== tls.generation) {
      connectors = build();
      builtFor = tls.generation;
    }
    if (main !== undefined && endpointOf(options) === main) return connectors.main(options, callback);
    connectors.other(options, callback);
  };
}

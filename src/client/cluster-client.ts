import { ChunkReader } from '../common/chunk-reader.js';
import { retryWhileBusy, retryWhileInstalling } from '../common/retry.js';
import { TlsIdentity } from '../common/tls.js';
import type { Agent } from '../common/undici.js';
import { fingerprintOf } from '../crypto/certificates.js';
import { SedfsError } from '../protocol/errors.js';
import { MAX_BATCHED_CHUNK_BYTES } from '../protocol/file-server-api.js';
import { MANIFEST_PAGE, MAX_EXCLUDED } from '../protocol/limits.js';
import type {
  BeginUploadResponse,
  BlobManifest,
  CommitFilesRequest,
  CommitRequest,
  CommitResponse,
  Placement,
  PlacementAnswerResponse,
  PlacementRequest,
  PlacementResponse,
  ServersResponse,
} from '../protocol/main-api.js';
import type { NodeEntry } from '../protocol/namespace-api.js';
import { MainCalls } from './main-calls.js';
import { Unanswering } from './unanswering.js';

/**
 * Typed calls to main's API (`MainCalls`), and the connections to file servers: uploads
 * through undici (`fileServerAgent`, loaded at the first), downloads through the chunk
 * reader.
 */
export class ClusterClient {
  private readonly main: MainCalls;
  private readonly tls: TlsIdentity | undefined;
  private uploads: Promise<Agent> | undefined;
  private closing: Promise<void> | undefined;
  /** Session token sent as a bearer credential once logged in. */
  token: string | undefined;
  /** The fingerprint of the cluster CA this client trusts (a login signs it); none over plain HTTP. */
  readonly caFingerprint: string | undefined;
  /** Reads stored chunks (downloads), on connections of its own: see chunk-reader.ts. */
  readonly chunks: ChunkReader;
  /** File servers that lately did not answer: tried last, placed around. */
  readonly unanswering = new Unanswering();
  /** main refused `batchTickets` (a main from before it): placements ask a ticket per chunk */
  private mainSignsEachChunk = false;

  /** `ca`: the cluster CA (PEM) every https connection must chain to. */
  constructor(
    readonly mainUrl: string,
    opts: { ca?: string } = {},
  ) {
    this.mainUrl = mainUrl.replace(/\/+$/, '');
    this.tls = opts.ca ? new TlsIdentity(opts.ca) : undefined;
    this.caFingerprint = opts.ca ? fingerprintOf(opts.ca) : undefined;
    this.main = new MainCalls(this.mainUrl, this.tls);
    this.chunks = new ChunkReader(this.tls, { httpsOnly: this.secure });
  }

  /**
   * The connection pool uploads to file servers go through, made (and undici loaded) at
   * the first. Each request there names the server expected at it (`expectedIds`).
   */
  fileServerAgent(): Promise<Agent> {
    if (this.closing) return Promise.reject(new Error('this client is closed'));
    this.uploads ??= import('../common/http-client.js').then(
      ({ createAgent }) => createAgent(this.tls, { mainUrl: this.mainUrl }),
      (err: unknown) => {
        // Tried again at the next upload, not failed for good.
        this.uploads = undefined;
        throw err;
      },
    );
    return this.uploads;
  }

  /** Over https to main, file servers are reached over https only (see `chunkUrl`). */
  get secure(): boolean {
    return this.mainUrl.startsWith('https://');
  }

  /**
   * A URL main handed out for a file server (placements, manifests), checked before any
   * ticket or chunk goes there: with a session over https, a plain http:// one is
   * refused (`SEDFS_ERR_INSECURE_URL`) rather than sent a ticket in the clear. Each
   * request there names the server main named at it (`expectedIds`, or the chunk
   * reader's `expected`), whose certificate a new connection must show.
   */
  chunkUrl(url: string): string {
    if (this.secure && !url.startsWith('https://'))
      throw new SedfsError('SEDFS_ERR_INSECURE_URL', undefined, { url: new URL(url).origin });
    return url;
  }

  /** A call to main: JSON in and out, with the session token when there is one. */
  call<T>(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
    body?: unknown,
    /** `headersTimeoutMs`: how long main may be silent, ms; 0 = as long as it takes (long jobs) */
    opts: { headersTimeoutMs?: number } = {},
  ): Promise<T> {
    // Refused before anything was done while main installs an unshare's new keys there.
    return retryWhileInstalling(() =>
      this.main.call<T>(method, path, body, {
        token: this.token,
        ...(opts.headersTimeoutMs === undefined ? {} : { silenceMs: opts.headersTimeoutMs }),
      }),
    );
  }

  servers(): Promise<ServersResponse> {
    return this.call('GET', '/v1/servers');
  }

  beginUpload(replicas?: number): Promise<BeginUploadResponse> {
    return this.call('POST', '/v1/uploads', replicas ? { replicas } : {});
  }

  /**
   * Servers for `chunks`, each with a write ticket. Where some may go in batches, main is
   * asked to sign each batch alone (`batchTickets`), and a batched chunk gets its batch's
   * ticket, which is good for it alone too: one signature per chunk was a quarter of
   * main's time placing and committing many small files.
   */
  async place(uploadId: string, chunks: PlacementRequest['chunks']): Promise<PlacementResponse> {
    const batchable =
      !this.mainSignsEachChunk && chunks.filter((c) => c.size <= MAX_BATCHED_CHUNK_BYTES).length >= 2;
    let answer: PlacementAnswerResponse;
    try {
      answer = await this.call<PlacementAnswerResponse>(
        'POST',
        `/v1/uploads/${uploadId}/placements`,
        batchable ? { chunks, batchTickets: true } : { chunks },
      );
    } catch (err) {
      // A main from before `batchTickets` refuses it as an unknown property: asked as
      // before, a ticket per chunk, from then on (clients upgraded before their main).
      if (!batchable || !refusesUnknownProperty(err)) throw err;
      this.mainSignsEachChunk = true;
      return this.place(uploadId, chunks);
    }
    const placements = answer.placements.map((p): Placement => {
      if ('ticket' in p) return p;
      const ticket = answer.batches?.[p.batch]?.ticket;
      if (ticket === undefined)
        throw new SedfsError(
          'SEDFS_ERR_BAD_ANSWER',
          `main placed chunk ${p.chunk} in a batch it did not send`,
        );
      return { chunk: p.chunk, servers: p.servers, ticket };
    });
    return { ...answer, placements };
  }

  /**
   * `place`, asking main to leave out the servers found not answering lately (`avoided`,
   * see Unanswering). With only those left, main has none to offer: asked again without
   * leaving them out, the chunks go where main says, and their sends find out.
   */
  placeAround(
    uploadId: string,
    chunks: PlacementRequest['chunks'],
    avoided = this.unanswering.list(),
  ): Promise<PlacementResponse> {
    // Only those not left out already: otherwise the second ask would be the first again.
    const widened = chunks.map((c) => {
      const more = avoided.filter((id) => !c.exclude?.includes(id));
      return more.length === 0
        ? c
        : { ...c, exclude: [...(c.exclude ?? []), ...more].slice(0, MAX_EXCLUDED) };
    });
    if (widened.every((c, i) => c === chunks[i])) return this.place(uploadId, chunks);
    return this.place(uploadId, widened).catch((err) => {
      if ((err as SedfsError).code !== 'SEDFS_ERR_NO_SERVERS') throw err;
      return this.place(uploadId, chunks);
    });
  }

  commit(
    uploadId: string,
    chunks: CommitRequest['chunks'],
    version?: CommitRequest['version'],
  ): Promise<CommitResponse & { node?: NodeEntry }> {
    const body = version ? { chunks, version } : { chunks };
    // Main reads only so many big bodies at once; one it refused as busy is sent again.
    return retryWhileBusy(() => this.call('POST', `/v1/uploads/${uploadId}/commit`, body));
  }

  /** Commits many single-upload files at once (see `FileSystem.putMany`). */
  commitFiles(uploadId: string, files: CommitFilesRequest['files']): Promise<{ nodes: NodeEntry[] }> {
    return retryWhileBusy(() => this.call('POST', `/v1/uploads/${uploadId}/commit-files`, { files }));
  }

  /** A bare blob's whole manifest, asked for a page at a time. */
  async manifest(blobId: string): Promise<BlobManifest> {
    const first = await this.call<BlobManifest>('GET', `/v1/blobs/${blobId}`);
    const chunks = [...first.chunks];
    // Pages until one comes back short of a page: the last (empty past the end).
    for (let page = first.chunks; page.length === MANIFEST_PAGE; ) {
      page = (await this.call<BlobManifest>('GET', `/v1/blobs/${blobId}?from=${chunks.length}`)).chunks;
      chunks.push(...page);
    }
    return { ...first, chunks };
  }

  reportBadReplica(chunkId: string, server: string): Promise<unknown> {
    return this.call('POST', `/v1/chunks/${chunkId}/bad-replica`, { server });
  }

  /** Closes its connections; closing again does nothing (undici's second close throws). */
  async close(): Promise<void> {
    if (this.closing) return this.closing;
    this.chunks.close();
    this.main.close();
    const uploads = this.uploads;
    this.closing = uploads
      ? uploads.then(
          (agent) => agent.close(),
          () => undefined,
        )
      : Promise.resolve();
    return this.closing;
  }
}

/** Main's refusal of a request property it does not know (its schema's, through fastify). */
function refusesUnknownProperty(err: unknown): boolean {
  return (
    err instanceof SedfsError &&
    err.code === 'SEDFS_ERR_BAD_REQUEST' &&
    err.message === 'invalid request: body must NOT have additional properties'
  );
}

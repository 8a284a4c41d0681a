import { SedfsError } from '../protocol/errors.js';
import type { ManifestChunk } from '../protocol/main-api.js';
import type { ContentResponse } from '../protocol/namespace-api.js';
import type { ChunkSource } from './fetch-blob.js';

/** Ask for the next page this many chunks before the download reaches it. */
const LOOKAHEAD = 32;
/** Chunks kept behind the one asked for last: the fetches in flight, and a renewal's. */
const KEEP_BEHIND = 64;

/**
 * A file's manifest as main gives it, a page at a time (`GET /v1/nodes/:id/content?from=`,
 * MANIFEST_PAGE chunks at most, each with a read ticket that lives minutes): the next
 * page is asked for as the download nears it, so tickets are fresh when used and main
 * signs them as they are needed. A page must be of the version the download began with:
 * a file replaced meanwhile fails the download with SEDFS_ERR_VERSION_CONFLICT (the chunks
 * of the old version are freed after a grace period, and its tickets are no longer given).
 */
export class ManifestPager implements ChunkSource {
  readonly count: number;
  readonly maxChunkBytes: number;
  private readonly versionId: string;
  private readonly chunks = new Map<number, ManifestChunk>();
  /** the page being fetched, and from which chunk */
  private loading: { from: number; page: Promise<void> } | undefined;
  /** the chunk after the last one fetched so far */
  private loadedTo = 0;

  constructor(
    first: ContentResponse,
    /** the file's chunk count, from its size */
    count: number,
    private readonly load: (from: number) => Promise<ContentResponse>,
    /** names the file in errors */
    private readonly path: string,
  ) {
    this.count = count;
    this.maxChunkBytes = first.manifest.chunks.reduce((m, c) => Math.max(m, c.size), 0);
    this.versionId = first.version.id;
    this.take(first, 0);
  }

  chunk(i: number): ManifestChunk | Promise<ManifestChunk> {
    for (const k of this.chunks.keys()) if (k < i - KEEP_BEHIND) this.chunks.delete(k);
    if (this.loadedTo < this.count && i + LOOKAHEAD >= this.loadedTo && !this.loading) {
      // Ahead of need; a failure shows when a chunk of that page is asked for.
      this.fetchFrom(this.loadedTo).catch(() => undefined);
    }
    const have = this.chunks.get(i);
    if (have) return have;
    return this.fetchFor(i);
  }

  async renew(i: number, stale: ManifestChunk): Promise<void> {
    // Chunks fetched at once meet the same expiry: one asks, the others find it done.
    while (this.loading) await this.loading.page;
    if (this.chunks.get(i) !== stale) return;
    await this.fetchFrom(i);
  }

  /** Chunk `i`, waiting for the page being fetched, or fetching one from it. */
  private async fetchFor(i: number): Promise<ManifestChunk> {
    for (;;) {
      const have = this.chunks.get(i);
      if (have) return have;
      // Either the page being fetched holds it, or a page from it is asked for (which
      // holds it, or fails).
      if (this.loading) await this.loading.page;
      else await this.fetchFrom(i);
    }
  }

  private fetchFrom(from: number): Promise<void> {
    const page = this.load(from).then((res) => this.take(res, from));
    const loading = { from, page };
    this.loading = loading;
    return page.finally(() => {
      if (this.loading === loading) this.loading = undefined;
    });
  }

  /** Keeps a page of chunks from `from`, once it is known to be the right version's. */
  private take(res: ContentResponse, from: number): void {
    if (res.version.id !== this.versionId)
      throw new SedfsError(
        'SEDFS_ERR_VERSION_CONFLICT',
        `${this.path} was replaced while it was being read: get it again`,
      );
    const page = res.manifest.chunks;
    const end = Math.min(this.count, from + page.length);
    if (page.length === 0 || from + page.length > this.count || page.some((c, k) => c.index !== from + k))
      throw new SedfsError(
        'SEDFS_ERR_CORRUPT_CHUNK',
        `${this.path}: the manifest lists chunks out of order or too few: ${page[0]?.index ?? '-'}..${page.at(-1)?.index ?? '-'} when asked for those from ${from} of ${this.count}`,
      );
    for (const c of page) this.chunks.set(c.index, c);
    this.loadedTo = Math.max(this.loadedTo, end);
  }
}

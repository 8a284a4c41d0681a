/**
 * Everything main keeps, behind one interface so that a PostgreSQL backend can stand
 * in for SQLite. Methods are synchronous because better-sqlite3 is; a networked
 * backend will wrap them in promises when it arrives. Times are milliseconds.
 */
export interface ServerRecord {
  id: string;
  url: string;
  /** HMAC key the server signs storage receipts with (given to it at registration). */
  receiptKey: string;
  totalBytes: number;
  freeBytes: number;
  usedBytes: number;
  chunkCount: number;
  registeredAt: number;
  lastHeartbeat: number;
  /** From the last inventory comparison: chunks main expects there that it lacks, and the reverse. */
  missingCount: number;
  extraCount: number;
  /** When it last sent a full inventory (0: never). */
  inventoryAt: number;
  /** When it last came back after being lost (0: never); its surplus copies are trimmed first. */
  returnedAt: number;
  /** Replicas found corrupt there so far (scrubber, verify orders, `check --verify`). */
  corruptCount: number;
  /** When an admin removed it (0: never); a removed server is never used or let back in. */
  removedAt: number;
  /** its last stats said it cannot read its free space: `freeBytes` is its estimate */
  freeUnknown?: boolean;
}

/** Fields main fills itself, not given at registration. */
type DerivedServerFields =
  | 'receiptKey'
  | 'missingCount'
  | 'extraCount'
  | 'inventoryAt'
  | 'returnedAt'
  | 'corruptCount'
  | 'removedAt';

export interface ServerStats {
  totalBytes: number;
  freeBytes: number;
  usedBytes: number;
  chunkCount: number;
  /** it cannot read its free space (`statfs` fails): `freeBytes` is its estimate */
  freeUnknown?: boolean;
}

export interface UploadRecord {
  id: string;
  /** the user who began it; only they may place, commit or read what it stores */
  userId?: string;
  replicas: number;
  createdAt: number;
  expiresAt: number;
}

export interface CommittedChunk {
  id: string;
  size: number;
  /** servers that proved (by receipt) they hold it */
  servers: string[];
}

export interface BlobChunk {
  index: number;
  id: string;
  size: number;
}

export interface BlobRecord {
  id: string;
  userId?: string;
  size: number;
  createdAt: number;
  /** every chunk, or those of the range asked for */
  chunks: BlobChunk[];
  /** how many chunks the blob has in all */
  chunkCount: number;
}

export interface InventoryDiff {
  missing: string[];
  extra: string[];
  missingCount: number;
  extraCount: number;
}

export interface MainStore {
  /**
   * Creates the server or updates its address and stats; keeps its receipt key. The
   * servers in `displaced` lose their address (as `forgetAddress`) in the same
   * transaction: an address handed over is never left with no one registered at it.
   */
  registerServer(
    rec: Omit<ServerRecord, DerivedServerFields>,
    newReceiptKey: string,
    displaced?: readonly string[],
  ): ServerRecord;
  /**
   * Removes a server for good (an admin's order); its replicas stop counting. An id that
   * only enrolled gets a row of its own, so it stays refused.
   */
  markRemoved(id: string, now: number): boolean;
  /**
   * Forgets where a server is (its URL becomes ''): another server proved it answers at
   * that address. It is not used until it registers again.
   */
  forgetAddress(id: string): void;
  /** Notes that a server came back after being lost. */
  markReturned(id: string, now: number): void;
  /** Records a heartbeat; false if the server is unknown (it must register again). */
  heartbeat(id: string, stats: ServerStats, now: number): boolean;
  getServer(id: string): ServerRecord | undefined;
  listServers(): ServerRecord[];
  /**
   * Moves whenever a server's address or removal may have changed (`registerServer`,
   * `forgetAddress`, `markRemoved`): what is derived from those alone is kept until then.
   */
  addressesVersion(): number;
  /** The key fingerprint a server id enrolled with, if it ever did. */
  enrolledKey(id: string): string | undefined;
  /** Binds an id to its key at its first enrolment; later ones with that key only note the time. */
  recordEnrolment(id: string, keyFingerprint: string, now: number): void;
  /** Ids that got a certificate but never registered (and were not removed): first and last enrolment. */
  enrolledOnly(): { id: string; firstAt: number; lastAt: number }[];

  /**
   * Inventory comparison in three steps, so a server's list of a million chunk ids
   * streams through in batches instead of sitting in memory: begin, add batches,
   * then finish, which stores the counts on the server row and returns a sample.
   * The ids come in ascending order across all batches, so the comparison is a merge
   * with main's own ordered list: no copy of either list is ever held.
   */
  /**
   * `listedAfter`: a time before the server began listing (main's clock, at most `now`);
   * replicas recorded from then on may have been written after the listing passed them.
   */
  beginInventory(serverId: string, listedAfter: number, now: number): void;
  addInventory(serverId: string, sortedIds: string[]): void;
  /**
   * Also brings the chunk map in line: replicas the server lacks are dropped (repair
   * restores them elsewhere or there), and known chunks it holds are adopted. Replicas
   * added at or after `listedAfter` (begin's) are not judged by it: the listing may predate them.
   */
  finishInventory(serverId: string, sample: number, now: number): InventoryDiff;
  /**
   * A server's own changes since its last heartbeat: chunks it gained (adopted when
   * main knows them) and chunks it lost or quarantined (no longer replicas there).
   * Returns how many replicas were adopted and dropped.
   */
  applyChanges(
    serverId: string,
    added: string[],
    removed: string[],
    now: number,
  ): { adopted: number; dropped: number };

  createUpload(rec: UploadRecord): void;
  getUpload(id: string, now: number): UploadRecord | undefined;
  /**
   * What a commit of `uploadId` may take receipts for, for one chunk: the servers the
   * upload placed it on, and among them those main will not count on a receipt (it
   * holds their replica corrupt, or has a delete order queued for their copy).
   */
  placedIn(uploadId: string, chunkId: string): { placed: string[]; barred: string[] };
  /**
   * In one transaction: the chunks and their replicas, the blob, and the upload closed.
   * A replica main holds corrupt stays corrupt, and one with a delete order queued is not
   * recorded (the order stands): a receipt never undoes what main decided about a copy.
   */
  commitBlob(blob: {
    userId?: string;
    id: string;
    uploadId: string;
    wanted: number;
    createdAt: number;
    chunks: CommittedChunk[];
  }): void;
  /** Whether the blob is the content of some file's version (not a bare blob). */
  isVersionBlob(id: string): boolean;
  /** A blob with all its chunks, or `range.count` of them from index `range.from`. */
  getBlob(id: string, range?: { from: number; count: number }): BlobRecord | undefined;
  /** Server ids holding a good copy of each chunk. */
  replicasOf(chunkIds: string[]): Map<string, string[]>;
  /**
   * Chunks with fewer good replicas on `countedServers` than wanted that have a good copy
   * on one of `liveServers` to restore them from, worst first, with the servers among the
   * counted ones that hold a good copy; and how many under-replicated chunks have no good
   * copy on a live server (left out, so they never crowd out the chunks repair can restore).
   * Only among the `span` chunks with ids after `after` in id order (all of them if no range
   * is given), so one call costs a stretch of the map, not all of it; `upTo` is the last
   * id looked at ('' if none), and `end` tells the stretch reached the end of the map.
   */
  underReplicated(
    countedServers: string[],
    liveServers: string[],
    limit: number,
    range?: { after: string; span: number },
  ): {
    chunks: { id: string; size: number; wanted: number; holders: string[] }[];
    withoutLiveCopy: number;
    upTo: string;
    end: boolean;
  };
  /**
   * As `underReplicated`, among the chunks named (each read by its id, not a stretch of the
   * map): those a heartbeat or a scrubber said lost a replica.
   */
  underReplicatedOf(
    countedServers: string[],
    liveServers: string[],
    chunkIds: string[],
    limit: number,
  ): {
    chunks: { id: string; size: number; wanted: number; holders: string[] }[];
    withoutLiveCopy: number;
  };
  /**
   * A good replica on `serverId` for an audit: the first whose chunk id is at or after
   * `from` (a random id), wrapping round to the lowest; undefined if it holds none.
   */
  replicaToAudit(serverId: string, from: string): { chunkId: string; size: number } | undefined;
  /** Records good replicas (new, or again good), in one transaction. */
  addReplicas(replicas: { chunkId: string; serverId: string }[], now: number): void;
  /**
   * A replica failed a hash check (scrubber or a verify order): it no longer counts, and
   * the server's tally of corrupt finds goes up. True if a good replica was marked.
   */
  markReplicaCorrupt(chunkId: string, serverId: string): boolean;
  /**
   * Records good replicas on `liveServers` beyond each chunk's wanted count, choosing
   * copies on servers that came back from being lost first, then the fullest servers;
   * among the chunks with ids in (`after`, `upTo`] if a range is given. Returns how many
   * new surplus copies were found.
   */
  findSurplus(
    liveServers: { id: string; freeBytes: number; returnedAt: number }[],
    now: number,
    range?: { after: string; upTo: string },
  ): number;
  /**
   * Up to `limit` surplus copies first seen before `olderThan`, with their chunk's size
   * and wanted count; the entries of chunks no longer in the map are forgotten.
   */
  dueSurplus(
    olderThan: number,
    limit: number,
  ): { chunkId: string; serverId: string; size: number; wanted: number }[];
  /**
   * Forgets a surplus copy, and queues it for deletion if it is still a good replica and
   * at least the chunk's wanted count of good replicas on other servers are among `proven`
   * (copies main has just read back whole). True if it was queued.
   */
  trimSurplus(chunkId: string, serverId: string, proven: string[], now: number): boolean;
  countSurplus(): number;
  /**
   * The size of repair's queue: how many chunks the map holds, how many of them have fewer
   * good replicas on `countedServers` than wanted, and how many of those have no good copy
   * on one of `liveServers`. Over a stretch of the map as `underReplicated` reads one
   * (all of it if no range is given), with the same `upTo` and `end`.
   */
  repairCounts(
    countedServers: string[],
    liveServers: string[],
    range?: { after: string; span: number },
  ): { chunks: number; underReplicated: number; withoutLiveCopy: number; upTo: string; end: boolean };

  /** Remembers where an upload's chunks were placed (for clean-up if it never commits). */
  recordPlacements(uploadId: string, placements: { chunkId: string; serverIds: string[] }[]): void;
  /**
   * Ends uploads that expired without committing: their placed chunks that no blob
   * uses are queued for deletion. Returns how many uploads were ended.
   */
  expireUploads(now: number): number;
  /**
   * Queues for deletion the unknown chunks servers have held since before `olderThan`,
   * never one a blob or an open upload uses. Returns how many were queued.
   */
  expireExtras(olderThan: number, now: number): number;
  /**
   * Replicas of freed chunks waiting to be deleted, due by `now`, on each of `serverIds`
   * (up to `perServer` each), those not tried yet first, then oldest first. Asked only for
   * servers that can be reached, so orders waiting for a server that is down never hold
   * up the others.
   */
  pendingDeletions(
    serverIds: string[],
    perServer: number,
    now: number,
  ): { chunkId: string; serverId: string }[];
  deletionDone(chunkId: string, serverId: string): void;
  /**
   * Drops the order for a copy the map counts as a good replica (recorded after the order
   * was queued: a repair copy, or left so by an older version): true if there was one.
   * The deleter asks just before it sends each order, so no counted copy is deleted.
   */
  dropDeletionOfGoodReplica(chunkId: string, serverId: string): boolean;
  /**
   * For each chunk, the servers a new copy of it does not count on: those main holds a
   * corrupt copy of it on, and those with a delete order queued for it (the order, perhaps
   * on its way, would delete the new copy). A commit counts no receipt of theirs
   * (`placedIn`), so placement skips them, and repair copies to no server deleting one.
   */
  barredFrom(chunkIds: string[]): Map<string, { corrupt: string[]; deleting: string[] }>;
  /** Its server refused or failed the order: it waits until `retryAt`, behind the orders not tried yet. */
  deletionDeferred(chunkId: string, serverId: string, retryAt: number): void;
  /** Drops the orders for servers an admin removed: they will never be carried out. Returns how many. */
  dropDeletionsOnRemoved(): number;

  close(): void;
}

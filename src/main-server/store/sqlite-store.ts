import Database from 'better-sqlite3';
import { MIGRATIONS } from './migrations.js';
import { cacheStatements } from './statement-cache.js';
import type {
  BlobRecord,
  InventoryDiff,
  MainStore,
  ServerRecord,
  ServerStats,
  UploadRecord,
} from './store.js';
import { inTransaction } from './transactions.js';

interface ServerRow {
  id: string;
  url: string;
  receipt_key: string;
  total_bytes: number;
  free_bytes: number;
  used_bytes: number;
  chunk_count: number;
  registered_at: number;
  last_heartbeat: number;
  missing_count: number;
  extra_count: number;
  inventory_at: number;
  returned_at: number;
  corrupt_count: number;
  removed_at: number;
  free_unknown: number;
}

function toServer(r: ServerRow): ServerRecord {
  return {
    id: r.id,
    url: r.url,
    receiptKey: r.receipt_key,
    totalBytes: r.total_bytes,
    freeBytes: r.free_bytes,
    usedBytes: r.used_bytes,
    chunkCount: r.chunk_count,
    registeredAt: r.registered_at,
    lastHeartbeat: r.last_heartbeat,
    missingCount: r.missing_count,
    extraCount: r.extra_count,
    inventoryAt: r.inventory_at,
    returnedAt: r.returned_at,
    ...(r.free_unknown ? { freeUnknown: true } : {}),
    corruptCount: r.corrupt_count,
    removedAt: r.removed_at,
  };
}

/** Replicas read per query while an inventory is merged with what main records. */
const INVENTORY_PAGE = 10_000;
/** Most ids of each kind kept to name in the log. */
const SAMPLE_CAP = 100;

/** An inventory being merged: ids arrive in ascending order, so main walks its own list alongside. */
interface InventoryScan {
  /** when main began comparing: extras seen and replicas adopted are of this time */
  began: number;
  /** replicas main recorded from this time on are not judged missing (see beginInventory) */
  listedAfter: number;
  /** the last id merged so far */
  after: string;
  missing: number;
  extra: number;
  missingSample: string[];
  extraSample: string[];
}

/**
 * A chunk main knows becomes a replica on a server (@s, at @at, chunk @c); no-op otherwise,
 * and while a delete order for that copy is queued (it stands: the copy is going).
 */
const ADOPT_REPLICA = `INSERT OR IGNORE INTO replicas (chunk_id, server_id, state, added_at)
  SELECT id, @s, 'ok', @at FROM chunks WHERE id = @c
    AND NOT EXISTS (SELECT 1 FROM chunk_deletions d WHERE d.chunk_id = @c AND d.server_id = @s)`;
const DROP_REPLICA = 'DELETE FROM replicas WHERE chunk_id = ? AND server_id = ?';

/**
 * Repair's work in one stretch of the chunk map, ids in (@after, @upTo]: the head row
 * counts the under-replicated chunks there with no good copy on a live server (nothing to
 * copy from: they wait for a holder to come back, or are lost), then up to @limit chunks
 * that can be copied now, worst first. Those without a source are left out of the page,
 * so however many there are they never crowd out the chunks repair can restore. Live
 * servers are counted ones, so a live holder is among the counted holders; the holders
 * of the few chunks in the page are read last.
 *
 * Each chunk's replicas are read through the primary key, in id order as the chunks
 * are, so the cost is that of the stretch, not of the map (the whole map in one query
 * held main's thread 4–14 s at a million chunks). The `+` before a server id keeps
 * SQLite from reading them through replicas_by_server instead: a range for each server,
 * then a sort of them all by chunk.
 */
const repairQueueOf = (chunksWhere: string) => `WITH counted(id) AS (SELECT value FROM json_each(@servers)),
  live(id) AS (SELECT value FROM json_each(@live)),
  short AS MATERIALIZED (SELECT c.id, c.size, c.wanted, c.created_at, count(r.server_id) AS n,
      coalesce(max(r.server_id IN live), 0) AS has_source
    FROM chunks c LEFT JOIN replicas r ON r.chunk_id = c.id AND r.state = 'ok' AND +r.server_id IN counted
    WHERE ${chunksWhere} GROUP BY c.id HAVING n < c.wanted)
  SELECT NULL AS id, 0 AS size, 0 AS wanted, '' AS holders, (SELECT count(*) FROM short WHERE NOT has_source) AS stuck
  UNION ALL SELECT * FROM (SELECT s.id, s.size, s.wanted, (SELECT group_concat(r.server_id) FROM replicas r
      WHERE r.chunk_id = s.id AND r.state = 'ok' AND +r.server_id IN counted), 0
    FROM short s WHERE has_source ORDER BY n, created_at LIMIT @limit)`;
const REPAIR_QUEUE = repairQueueOf('c.id > @after AND c.id <= @upTo');
/** The same, among the chunks named in @ids (a JSON array), each read by its id. */
const REPAIR_QUEUE_OF_CHUNKS = repairQueueOf('c.id IN (SELECT value FROM json_each(@ids))');

/**
 * The repair queue's size in the chunks with ids in (@after, @upTo]: under-replicated
 * chunks, and how many of them have no good copy on a live server. Read as REPAIR_QUEUE
 * reads its stretch, chunk by chunk through the primary keys.
 */
const REPAIR_COUNTS = `WITH counted(id) AS (SELECT value FROM json_each(@servers)),
  live(id) AS (SELECT value FROM json_each(@live)),
  short AS (SELECT coalesce(max(r.server_id IN live), 0) AS has_source
    FROM chunks c LEFT JOIN replicas r ON r.chunk_id = c.id AND r.state = 'ok' AND +r.server_id IN counted
    WHERE c.id > @after AND c.id <= @upTo GROUP BY c.id HAVING count(r.server_id) < c.wanted)
  SELECT count(*) AS short, coalesce(sum(NOT has_source), 0) AS stuck FROM short`;

/** How many chunks a stretch of the map holds, and its last id: up to @span ids after @after (-1: all). */
const CHUNK_RANGE = `SELECT count(*) AS n, coalesce(max(id), '') AS upTo
  FROM (SELECT id FROM chunks WHERE id > ? ORDER BY id LIMIT ?)`;

/** Above every chunk id (lowercase hex): the bound of a stretch that runs to the end of the map. */
const MAP_END = '~';

/** A row of REPAIR_QUEUE: the head row (id NULL) carries the count of chunks without a live copy. */
type QueueRow = { id: string | null; size: number; wanted: number; holders: string | null; stuck: number };

function queueFrom(rows: QueueRow[]): {
  chunks: { id: string; size: number; wanted: number; holders: string[] }[];
  withoutLiveCopy: number;
} {
  const [head, ...chunks] = rows;
  return {
    chunks: chunks.map((r) => ({
      id: r.id as string,
      size: r.size,
      wanted: r.wanted,
      holders: r.holders ? r.holders.split(',') : [],
    })),
    withoutLiveCopy: head?.stuck ?? 0,
  };
}

/** Applies the migrations that have not run yet, each in its own transaction. */
export function migrate(db: Database.Database): number {
  const current = db.pragma('user_version', { simple: true }) as number;
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v] as string);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  return MIGRATIONS.length;
}

/** The SQLite store: WAL journal, and every commit synced to disk before it returns. */
/** Due extras looked at per pass of the deleter (the rest at the next passes). */
const EXTRAS_PER_PASS = 10_000;

export class SqliteStore implements MainStore {
  /** Shared with the namespace store, so one transaction can span both. */
  readonly db: Database.Database;
  /** Inventories being compared, by server. */
  private readonly scans = new Map<string, InventoryScan>();
  /** see `addressesVersion`; moved before each write, so a failed one only costs a reread */
  private addressWrites = 0;

  /** `platform` is a parameter so that tests can open the database as on macOS. */
  constructor(path: string, platform: NodeJS.Platform = process.platform) {
    this.db = new Database(path);
    cacheStatements(this.db);
    this.db.pragma('journal_mode = WAL');
    // FULL: a commit that returned survives power loss, not only a process crash.
    this.db.pragma('synchronous = FULL');
    if (platform === 'darwin') {
      // On macOS fsync() only hands the data to the drive, whose cache a power cut can
      // lose; only F_FULLFSYNC reaches the platter or flash, for commits and checkpoints.
      this.db.pragma('fullfsync = ON');
      this.db.pragma('checkpoint_fullfsync = ON');
    }
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    migrate(this.db);
  }

  registerServer(
    rec: Parameters<MainStore['registerServer']>[0],
    newReceiptKey: string,
    displaced: readonly string[] = [],
  ) {
    this.addressWrites++;
    return this.db.transaction(() => {
      for (const id of displaced) this.forgetAddress(id);
      this.upsertServer(rec, newReceiptKey);
      return this.getServer(rec.id) as ServerRecord;
    })();
  }

  private upsertServer(rec: Parameters<MainStore['registerServer']>[0], newReceiptKey: string): void {
    this.db
      .prepare(
        `INSERT INTO servers (id, url, receipt_key, total_bytes, free_bytes, used_bytes, chunk_count, registered_at, last_heartbeat, free_unknown)
         VALUES (@id, @url, @receiptKey, @totalBytes, @freeBytes, @usedBytes, @chunkCount, @registeredAt, @lastHeartbeat, @freeUnknown)
         ON CONFLICT (id) DO UPDATE SET url = excluded.url, total_bytes = excluded.total_bytes,
           free_bytes = excluded.free_bytes, used_bytes = excluded.used_bytes, chunk_count = excluded.chunk_count,
           registered_at = excluded.registered_at, last_heartbeat = excluded.last_heartbeat,
           free_unknown = excluded.free_unknown`,
      )
      .run({ ...rec, receiptKey: newReceiptKey, freeUnknown: rec.freeUnknown ? 1 : 0 });
  }

  markRemoved(id: string, now: number): boolean {
    this.addressWrites++;
    const r = this.db
      .prepare(
        `INSERT INTO servers (id, url, receipt_key, total_bytes, free_bytes, used_bytes, chunk_count, registered_at, last_heartbeat, removed_at)
         VALUES (@id, '', '', 0, 0, 0, 0, 0, 0, @now)
         ON CONFLICT (id) DO UPDATE SET removed_at = excluded.removed_at WHERE removed_at = 0`,
      )
      .run({ id, now });
    return r.changes === 1;
  }

  enrolledKey(id: string): string | undefined {
    const row = this.db.prepare('SELECT key_fingerprint FROM enrolments WHERE server_id = ?').get(id) as
      | { key_fingerprint: string }
      | undefined;
    return row?.key_fingerprint;
  }

  recordEnrolment(id: string, keyFingerprint: string, now: number): void {
    this.db
      .prepare(
        `INSERT INTO enrolments (server_id, key_fingerprint, first_at, last_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (server_id) DO UPDATE SET last_at = excluded.last_at
         WHERE key_fingerprint = excluded.key_fingerprint`,
      )
      .run(id, keyFingerprint, now, now);
  }

  enrolledOnly(): { id: string; firstAt: number; lastAt: number }[] {
    return this.db
      .prepare(
        `SELECT server_id AS id, first_at AS firstAt, last_at AS lastAt FROM enrolments
         WHERE server_id NOT IN (SELECT id FROM servers) ORDER BY first_at, server_id`,
      )
      .all() as { id: string; firstAt: number; lastAt: number }[];
  }

  forgetAddress(id: string): void {
    this.addressWrites++;
    this.db.prepare("UPDATE servers SET url = '' WHERE id = ?").run(id);
  }

  addressesVersion(): number {
    return this.addressWrites;
  }

  markReturned(id: string, now: number): void {
    this.db.prepare('UPDATE servers SET returned_at = ? WHERE id = ?').run(now, id);
  }

  heartbeat(id: string, stats: ServerStats, now: number): boolean {
    const r = this.db
      .prepare(
        `UPDATE servers SET total_bytes = ?, free_bytes = ?, used_bytes = ?, chunk_count = ?, free_unknown = ?,
           last_heartbeat = ? WHERE id = ?`,
      )
      .run(
        stats.totalBytes,
        stats.freeBytes,
        stats.usedBytes,
        stats.chunkCount,
        stats.freeUnknown ? 1 : 0,
        now,
        id,
      );
    return r.changes === 1;
  }

  getServer(id: string): ServerRecord | undefined {
    const row = this.db.prepare('SELECT * FROM servers WHERE id = ?').get(id) as ServerRow | undefined;
    return row && toServer(row);
  }

  listServers(): ServerRecord[] {
    return (this.db.prepare('SELECT * FROM servers ORDER BY registered_at, id').all() as ServerRow[]).map(
      toServer,
    );
  }

  beginInventory(serverId: string, listedAfter: number, now: number): void {
    this.scans.set(serverId, {
      began: now,
      // Never later than now (a server's own word, see Reconciler.compare).
      listedAfter: Math.min(listedAfter, now),
      after: '',
      missing: 0,
      extra: 0,
      missingSample: [],
      extraSample: [],
    });
  }

  addInventory(serverId: string, sortedIds: string[]): void {
    const scan = this.scanOf(serverId);
    const last = sortedIds[sortedIds.length - 1];
    if (last === undefined) return;
    this.db.transaction(() => {
      let i = 0;
      for (const expected of this.expectedPages(serverId, scan.after, last)) {
        for (const row of expected) {
          while (i < sortedIds.length && (sortedIds[i] as string) < row.chunk_id)
            this.noteExtra(serverId, scan, sortedIds[i++] as string);
          if (sortedIds[i] === row.chunk_id) i++;
          else this.noteMissing(serverId, scan, row);
        }
      }
      while (i < sortedIds.length) this.noteExtra(serverId, scan, sortedIds[i++] as string);
    })();
    scan.after = last;
  }

  finishInventory(serverId: string, sample: number, now: number): InventoryDiff {
    const scan = this.scanOf(serverId);
    this.scans.delete(serverId);
    this.db.transaction(() => {
      for (const expected of this.expectedPages(serverId, scan.after, undefined))
        for (const row of expected) this.noteMissing(serverId, scan, row);
      // Unknown chunks that this inventory no longer lists are not extra any more.
      this.db.prepare('DELETE FROM extras WHERE server_id = ? AND last_seen < ?').run(serverId, scan.began);
      this.db
        .prepare('UPDATE servers SET missing_count = ?, extra_count = ?, inventory_at = ? WHERE id = ?')
        .run(scan.missing, scan.extra, now, serverId);
    })();
    return {
      missingCount: scan.missing,
      extraCount: scan.extra,
      missing: scan.missingSample.slice(0, sample),
      extra: scan.extraSample.slice(0, sample),
    };
  }

  private scanOf(serverId: string): InventoryScan {
    const scan = this.scans.get(serverId);
    if (!scan) throw new Error(`no inventory in progress for ${serverId}`);
    return scan;
  }

  /** The replicas main records on a server with ids in (after, upTo], in id order, a page at a time. */
  private *expectedPages(
    serverId: string,
    after: string,
    upTo: string | undefined,
  ): Generator<{ chunk_id: string; state: string; added_at: number }[]> {
    const page = this.db.prepare(
      `SELECT chunk_id, state, added_at FROM replicas WHERE server_id = @s AND chunk_id > @after
         AND chunk_id <= @upTo ORDER BY chunk_id LIMIT ${INVENTORY_PAGE}`,
    );
    for (;;) {
      // '~' sorts after every hex digit: the tail, with the index range still bounded.
      const rows = page.all({ s: serverId, after, upTo: upTo ?? '~' }) as {
        chunk_id: string;
        state: string;
        added_at: number;
      }[];
      if (rows.length === 0) return;
      yield rows;
      if (rows.length < INVENTORY_PAGE) return;
      after = (rows[rows.length - 1] as { chunk_id: string }).chunk_id;
    }
  }

  /**
   * A replica main records that the server did not list: it is no replica any more and
   * repair restores the count. One recorded at or after `listedAfter` is left alone (the
   * listing may predate it), and so is one already known to be corrupt.
   */
  private noteMissing(
    serverId: string,
    scan: InventoryScan,
    row: { chunk_id: string; state: string; added_at: number },
  ): void {
    if (row.state !== 'ok' || row.added_at >= scan.listedAfter) return;
    this.db.prepare(DROP_REPLICA).run(row.chunk_id, serverId);
    scan.missing++;
    if (scan.missingSample.length < SAMPLE_CAP) scan.missingSample.push(row.chunk_id);
  }

  /** A listed chunk main did not expect there: adopted if main knows it, else extra until its grace ends. */
  private noteExtra(serverId: string, scan: InventoryScan, chunkId: string): void {
    scan.extra++;
    if (scan.extraSample.length < SAMPLE_CAP) scan.extraSample.push(chunkId);
    const adopted = this.db.prepare(ADOPT_REPLICA).run({ s: serverId, at: scan.began, c: chunkId }).changes;
    if (adopted === 0)
      this.db
        .prepare(
          `INSERT INTO extras (server_id, chunk_id, first_seen, last_seen) VALUES (?, ?, ?, ?)
         ON CONFLICT (server_id, chunk_id) DO UPDATE SET last_seen = excluded.last_seen`,
        )
        .run(serverId, chunkId, scan.began, scan.began);
  }

  applyChanges(
    serverId: string,
    added: string[],
    removed: string[],
    now: number,
  ): { adopted: number; dropped: number } {
    const adopt = this.db.prepare(ADOPT_REPLICA);
    const drop = this.db.prepare(DROP_REPLICA);
    const unextra = this.db.prepare('DELETE FROM extras WHERE server_id = ? AND chunk_id = ?');
    return this.db.transaction(() => {
      let adopted = 0;
      let dropped = 0;
      for (const id of added) adopted += adopt.run({ s: serverId, at: now, c: id }).changes;
      for (const id of removed) {
        dropped += drop.run(id, serverId).changes;
        unextra.run(serverId, id);
      }
      return { adopted, dropped };
    })();
  }

  createUpload(rec: UploadRecord): void {
    this.db
      .prepare('INSERT INTO uploads (id, user_id, replicas, created_at, expires_at) VALUES (?, ?, ?, ?, ?)')
      .run(rec.id, rec.userId ?? null, rec.replicas, rec.createdAt, rec.expiresAt);
  }

  getUpload(id: string, now: number): UploadRecord | undefined {
    const row = this.db.prepare('SELECT * FROM uploads WHERE id = ? AND expires_at > ?').get(id, now) as
      | { id: string; user_id: string | null; replicas: number; created_at: number; expires_at: number }
      | undefined;
    return (
      row && {
        id: row.id,
        ...(row.user_id ? { userId: row.user_id } : {}),
        replicas: row.replicas,
        createdAt: row.created_at,
        expiresAt: row.expires_at,
      }
    );
  }

  commitBlob(blob: Parameters<MainStore['commitBlob']>[0]): void {
    const upsertChunk = this.db.prepare(
      `INSERT INTO chunks (id, size, wanted, refs, created_at) VALUES (?, ?, ?, 1, ?)
       ON CONFLICT (id) DO UPDATE SET refs = refs + 1, wanted = max(wanted, excluded.wanted)`,
    );
    // A corrupt replica stays corrupt, and a copy with a delete order queued is not
    // recorded: the order stands (the copy may be gone already, or the order in flight).
    // Repair restores the count from the good copies.
    const addReplica = this.db.prepare(
      `INSERT INTO replicas (chunk_id, server_id, state, added_at) SELECT @c, @s, 'ok', @at
       WHERE NOT EXISTS (SELECT 1 FROM chunk_deletions d WHERE d.chunk_id = @c AND d.server_id = @s)
       ON CONFLICT (chunk_id, server_id) DO NOTHING`,
    );
    const addBlobChunk = this.db.prepare(
      'INSERT INTO blob_chunks (blob_id, idx, chunk_id, size) VALUES (?, ?, ?, ?)',
    );
    // Within a batch's commit (commitVersions), part of its transaction (see inTransaction).
    inTransaction(this.db, () => {
      const size = blob.chunks.reduce((n, c) => n + c.size, 0);
      this.db
        .prepare('INSERT INTO blobs (id, user_id, size, created_at) VALUES (?, ?, ?, ?)')
        .run(blob.id, blob.userId ?? null, size, blob.createdAt);
      blob.chunks.forEach((c, i) => {
        upsertChunk.run(c.id, c.size, blob.wanted, blob.createdAt);
        for (const s of c.servers) addReplica.run({ c: c.id, s, at: blob.createdAt });
        addBlobChunk.run(blob.id, i, c.id, c.size);
      });
      this.db.prepare('DELETE FROM uploads WHERE id = ?').run(blob.uploadId);
      this.db.prepare('DELETE FROM upload_chunks WHERE upload_id = ?').run(blob.uploadId);
    });
  }

  isVersionBlob(id: string): boolean {
    return this.db.prepare('SELECT 1 FROM versions WHERE blob_id = ? LIMIT 1').get(id) !== undefined;
  }

  placedIn(uploadId: string, chunkId: string): { placed: string[]; barred: string[] } {
    const placed = this.db
      .prepare('SELECT server_id FROM upload_chunks WHERE upload_id = ? AND chunk_id = ?')
      .pluck()
      .all(uploadId, chunkId) as string[];
    if (placed.length === 0) return { placed, barred: [] };
    const { corrupt, deleting } = this.barredFrom([chunkId]).get(chunkId) as {
      corrupt: string[];
      deleting: string[];
    };
    return { placed, barred: [...new Set([...corrupt, ...deleting])] };
  }

  barredFrom(chunkIds: string[]): Map<string, { corrupt: string[]; deleting: string[] }> {
    const corrupt = this.db
      .prepare(`SELECT server_id FROM replicas WHERE chunk_id = ? AND state = 'corrupt'`)
      .pluck();
    const deleting = this.db.prepare('SELECT server_id FROM chunk_deletions WHERE chunk_id = ?').pluck();
    const out = new Map<string, { corrupt: string[]; deleting: string[] }>();
    for (const id of chunkIds)
      if (!out.has(id))
        out.set(id, { corrupt: corrupt.all(id) as string[], deleting: deleting.all(id) as string[] });
    return out;
  }

  getBlob(id: string, range?: { from: number; count: number }): BlobRecord | undefined {
    const row = this.db.prepare('SELECT id, user_id, size, created_at FROM blobs WHERE id = ?').get(id) as
      | { id: string; user_id: string | null; size: number; created_at: number }
      | undefined;
    if (!row) return undefined;
    // A range is a step into the primary key (blob_id, idx): a page of a terabyte's
    // manifest does not read the other 262,000 rows.
    const chunks = this.db
      .prepare(
        'SELECT idx AS "index", chunk_id AS id, size FROM blob_chunks WHERE blob_id = ? AND idx >= ? ORDER BY idx LIMIT ?',
      )
      .all(id, range?.from ?? 0, range?.count ?? -1) as BlobRecord['chunks'];
    const last = this.db.prepare('SELECT max(idx) FROM blob_chunks WHERE blob_id = ?').pluck().get(id) as
      | number
      | null;
    return {
      id: row.id,
      ...(row.user_id ? { userId: row.user_id } : {}),
      size: row.size,
      createdAt: row.created_at,
      chunks,
      chunkCount: last === null ? 0 : last + 1,
    };
  }

  replicasOf(chunkIds: string[]): Map<string, string[]> {
    const out = new Map<string, string[]>();
    const q = this.db.prepare(`SELECT server_id FROM replicas WHERE chunk_id = ? AND state = 'ok'`).pluck();
    for (const id of chunkIds) if (!out.has(id)) out.set(id, q.all(id) as string[]);
    return out;
  }

  repairCounts(
    countedServers: string[],
    liveServers: string[],
    range: { after: string; span: number } = { after: '', span: -1 },
  ): ReturnType<MainStore['repairCounts']> {
    const { n, upTo } = this.db.prepare(CHUNK_RANGE).get(range.after, range.span) as {
      n: number;
      upTo: string;
    };
    const end = range.span < 0 || n < range.span;
    if (n === 0) return { chunks: 0, underReplicated: 0, withoutLiveCopy: 0, upTo, end };
    const { short, stuck } = this.db.prepare(REPAIR_COUNTS).get({
      servers: JSON.stringify(countedServers),
      live: JSON.stringify(liveServers),
      after: range.after,
      upTo,
    }) as { short: number; stuck: number };
    return { chunks: n, underReplicated: short, withoutLiveCopy: stuck, upTo, end };
  }

  recordPlacements(uploadId: string, placements: { chunkId: string; serverIds: string[] }[]): void {
    const insert = this.db.prepare(
      'INSERT OR IGNORE INTO upload_chunks (upload_id, chunk_id, server_id) VALUES (?, ?, ?)',
    );
    this.db.transaction(() => {
      for (const p of placements) for (const s of p.serverIds) insert.run(uploadId, p.chunkId, s);
    })();
  }

  expireUploads(now: number): number {
    return this.db.transaction(() => {
      const expired = this.db
        .prepare('SELECT id FROM uploads WHERE expires_at <= ?')
        .pluck()
        .all(now) as string[];
      const queue = this.db.prepare(
        `INSERT OR IGNORE INTO chunk_deletions (chunk_id, server_id, queued_at)
         SELECT u.chunk_id, u.server_id, ? FROM upload_chunks u
         WHERE u.upload_id = ? AND NOT EXISTS
           (SELECT 1 FROM replicas r WHERE r.chunk_id = u.chunk_id AND r.server_id = u.server_id)`,
      );
      for (const id of expired) {
        queue.run(now, id);
        this.db.prepare('DELETE FROM upload_chunks WHERE upload_id = ?').run(id);
        this.db.prepare('DELETE FROM uploads WHERE id = ?').run(id);
      }
      return expired.length;
    })();
  }

  underReplicated(
    countedServers: string[],
    liveServers: string[],
    limit: number,
    range: { after: string; span: number } = { after: '', span: -1 },
  ): ReturnType<MainStore['underReplicated']> {
    const { n, upTo } = this.db.prepare(CHUNK_RANGE).get(range.after, range.span) as {
      n: number;
      upTo: string;
    };
    const end = range.span < 0 || n < range.span;
    if (n === 0) return { chunks: [], withoutLiveCopy: 0, upTo, end };
    const rows = this.db.prepare(REPAIR_QUEUE).all({
      servers: JSON.stringify(countedServers),
      live: JSON.stringify(liveServers),
      after: range.after,
      upTo,
      limit,
    }) as QueueRow[];
    return { ...queueFrom(rows), upTo, end };
  }

  underReplicatedOf(
    countedServers: string[],
    liveServers: string[],
    chunkIds: string[],
    limit: number,
  ): ReturnType<MainStore['underReplicatedOf']> {
    const rows = this.db.prepare(REPAIR_QUEUE_OF_CHUNKS).all({
      servers: JSON.stringify(countedServers),
      live: JSON.stringify(liveServers),
      ids: JSON.stringify(chunkIds),
      limit,
    }) as QueueRow[];
    return queueFrom(rows);
  }

  replicaToAudit(serverId: string, from: string): { chunkId: string; size: number } | undefined {
    // Through replicas_by_server: a step into the index, not a scan of the server's replicas.
    const q = this.db.prepare(
      `SELECT r.chunk_id AS chunkId, c.size AS size FROM replicas r JOIN chunks c ON c.id = r.chunk_id
       WHERE r.server_id = ? AND r.state = 'ok' AND r.chunk_id >= ? ORDER BY r.chunk_id LIMIT 1`,
    );
    return (q.get(serverId, from) ?? q.get(serverId, '')) as { chunkId: string; size: number } | undefined;
  }

  addReplicas(replicas: { chunkId: string; serverId: string }[], now: number): void {
    // Only for chunks still in the map: one freed while its copy was made (its file
    // removed or replaced) is not a replica of anything; the copy goes as an extra.
    const add = this.db.prepare(
      `INSERT INTO replicas (chunk_id, server_id, state, added_at) SELECT id, ?, 'ok', ? FROM chunks WHERE id = ?
       ON CONFLICT (chunk_id, server_id) DO UPDATE SET state = 'ok', added_at = excluded.added_at`,
    );
    this.db.transaction(() => {
      for (const r of replicas) add.run(r.serverId, now, r.chunkId);
    })();
  }

  findSurplus(
    liveServers: { id: string; freeBytes: number; returnedAt: number }[],
    now: number,
    range: { after: string; upTo: string } = { after: '', upTo: MAP_END },
  ): number {
    const rank = new Map(
      [...liveServers]
        // Copies on a server back from being lost go first, then those on the fullest servers.
        .sort((a, b) => b.returnedAt - a.returnedAt || a.freeBytes - b.freeBytes)
        .map((s, i) => [s.id, i]),
    );
    const rows = this.db
      .prepare(
        // Chunk by chunk through the primary keys, a stretch of the map at a time (all of
        // it at once held main's thread 3.5–12 s at a million chunks); the `+` as in REPAIR_QUEUE.
        `WITH live(id) AS (SELECT value FROM json_each(@live))
         SELECT c.id, c.wanted, group_concat(r.server_id) AS holders
         FROM chunks c JOIN replicas r ON r.chunk_id = c.id
         WHERE c.id > @after AND c.id <= @upTo AND r.state = 'ok' AND +r.server_id IN live
         GROUP BY c.id HAVING count(*) > c.wanted`,
      )
      .all({ live: JSON.stringify([...rank.keys()]), ...range }) as {
      id: string;
      wanted: number;
      holders: string;
    }[];
    const insert = this.db.prepare(
      'INSERT OR IGNORE INTO surplus (chunk_id, server_id, first_seen) VALUES (?, ?, ?)',
    );
    return this.db.transaction(() => {
      let found = 0;
      for (const row of rows) {
        const holders = row.holders.split(',').sort((a, b) => (rank.get(a) ?? 0) - (rank.get(b) ?? 0));
        for (const server of holders.slice(0, holders.length - row.wanted))
          found += insert.run(row.id, server, now).changes;
      }
      return found;
    })();
  }

  dueSurplus(
    olderThan: number,
    limit: number,
  ): { chunkId: string; serverId: string; size: number; wanted: number }[] {
    type Row = { chunkId: string; serverId: string; size: number | null; wanted: number | null };
    return this.db.transaction(() => {
      // Oldest first, through surplus_by_age. A freed chunk's replicas are all queued for
      // deletion already, so its rows are dropped as they come due, a bounded number a
      // call: dropping them all each pass scanned the whole table (a second at a million).
      const rows = this.db
        .prepare(
          `SELECT s.chunk_id AS chunkId, s.server_id AS serverId, c.size, c.wanted
           FROM surplus s LEFT JOIN chunks c ON c.id = s.chunk_id
           WHERE s.first_seen <= ? ORDER BY s.first_seen, s.chunk_id LIMIT ?`,
        )
        .all(olderThan, limit * 8) as Row[];
      const drop = this.db.prepare('DELETE FROM surplus WHERE chunk_id = ? AND server_id = ?');
      const due: { chunkId: string; serverId: string; size: number; wanted: number }[] = [];
      for (const r of rows) {
        if (r.size === null || r.wanted === null) drop.run(r.chunkId, r.serverId);
        else if (due.length < limit)
          due.push({ chunkId: r.chunkId, serverId: r.serverId, size: r.size, wanted: r.wanted });
      }
      return due;
    })();
  }

  trimSurplus(chunkId: string, serverId: string, proven: string[], now: number): boolean {
    const good = this.db.prepare(
      `SELECT count(*) FROM replicas WHERE chunk_id = @c AND state = 'ok' AND server_id != @s
         AND server_id IN (SELECT value FROM json_each(@proven))`,
    );
    return this.db.transaction(() => {
      this.db.prepare('DELETE FROM surplus WHERE chunk_id = ? AND server_id = ?').run(chunkId, serverId);
      const wanted = this.db.prepare('SELECT wanted FROM chunks WHERE id = ?').pluck().get(chunkId) as
        | number
        | undefined;
      if (wanted === undefined) return false;
      // Checked again now, in the transaction that deletes: the proofs were read before,
      // and a kept copy may have been dropped or marked corrupt meanwhile.
      const kept = good.pluck().get({ c: chunkId, s: serverId, proven: JSON.stringify(proven) }) as number;
      const holds = this.db
        .prepare("SELECT 1 FROM replicas WHERE chunk_id = ? AND server_id = ? AND state = 'ok'")
        .get(chunkId, serverId);
      if (!holds || kept < wanted) return false;
      this.db.prepare(DROP_REPLICA).run(chunkId, serverId);
      this.db
        .prepare('INSERT OR IGNORE INTO chunk_deletions (chunk_id, server_id, queued_at) VALUES (?, ?, ?)')
        .run(chunkId, serverId, now);
      return true;
    })();
  }

  countSurplus(): number {
    return this.db.prepare('SELECT count(*) FROM surplus').pluck().get() as number;
  }

  markReplicaCorrupt(chunkId: string, serverId: string): boolean {
    return this.db.transaction(() => {
      this.db.prepare('UPDATE servers SET corrupt_count = corrupt_count + 1 WHERE id = ?').run(serverId);
      return (
        this.db
          .prepare(
            `UPDATE replicas SET state = 'corrupt' WHERE chunk_id = ? AND server_id = ? AND state = 'ok'`,
          )
          .run(chunkId, serverId).changes === 1
      );
    })();
  }

  expireExtras(olderThan: number, now: number): number {
    type Row = { server_id: string; chunk_id: string; known: number; placed: number };
    return this.db.transaction(() => {
      // Oldest first through extras_by_age, a bounded number a pass: a server back with a
      // million unknown chunks must not hold main's thread for seconds at every pass.
      const due = this.db
        .prepare(
          `SELECT e.server_id, e.chunk_id,
             EXISTS (SELECT 1 FROM chunks c WHERE c.id = e.chunk_id) AS known,
             EXISTS (SELECT 1 FROM upload_chunks u WHERE u.chunk_id = e.chunk_id) AS placed
           FROM extras e WHERE e.first_seen <= ? ORDER BY e.first_seen LIMIT ?`,
        )
        .all(olderThan, EXTRAS_PER_PASS) as Row[];
      const queue = this.db.prepare(
        'INSERT OR IGNORE INTO chunk_deletions (chunk_id, server_id, queued_at) VALUES (?, ?, ?)',
      );
      const drop = this.db.prepare('DELETE FROM extras WHERE server_id = ? AND chunk_id = ?');
      const later = this.db.prepare('UPDATE extras SET first_seen = ? WHERE server_id = ? AND chunk_id = ?');
      let queued = 0;
      for (const d of due) {
        // Referenced meanwhile: no longer extra (never delete a chunk some blob uses).
        if (d.known) drop.run(d.server_id, d.chunk_id);
        // Placed by an upload in progress: looked at again after another grace period.
        else if (d.placed) later.run(now, d.server_id, d.chunk_id);
        else {
          queue.run(d.chunk_id, d.server_id, now);
          drop.run(d.server_id, d.chunk_id);
          queued++;
        }
      }
      return queued;
    })();
  }

  pendingDeletions(
    serverIds: string[],
    perServer: number,
    now: number,
  ): { chunkId: string; serverId: string }[] {
    // One index range per server: a queue of millions costs no more than the orders read.
    const due = this.db.prepare(
      `SELECT chunk_id AS chunkId, server_id AS serverId FROM chunk_deletions
       WHERE server_id = ? AND retry_at <= ? ORDER BY retry_at, queued_at LIMIT ?`,
    );
    return serverIds.flatMap((id) => due.all(id, now, perServer) as { chunkId: string; serverId: string }[]);
  }

  deletionDeferred(chunkId: string, serverId: string, retryAt: number): void {
    this.db
      .prepare('UPDATE chunk_deletions SET retry_at = ? WHERE chunk_id = ? AND server_id = ?')
      .run(retryAt, chunkId, serverId);
  }

  dropDeletionsOnRemoved(): number {
    return this.db
      .prepare('DELETE FROM chunk_deletions WHERE server_id IN (SELECT id FROM servers WHERE removed_at > 0)')
      .run().changes;
  }

  dropDeletionOfGoodReplica(chunkId: string, serverId: string): boolean {
    return (
      this.db
        .prepare(
          `DELETE FROM chunk_deletions WHERE chunk_id = @c AND server_id = @s AND EXISTS
             (SELECT 1 FROM replicas r WHERE r.chunk_id = @c AND r.server_id = @s AND r.state = 'ok')`,
        )
        .run({ c: chunkId, s: serverId }).changes === 1
    );
  }

  deletionDone(chunkId: string, serverId: string): void {
    this.db
      .prepare('DELETE FROM chunk_deletions WHERE chunk_id = ? AND server_id = ?')
      .run(chunkId, serverId);
  }

  close(): void {
    this.db.close();
  }
}

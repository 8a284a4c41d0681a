/**
 * Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
 * Never edit a released migration: add a new one.
 */
export const MIGRATIONS: string[] = [
  `
  CREATE TABLE servers (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    receipt_key TEXT NOT NULL,
    total_bytes INTEGER NOT NULL,
    free_bytes INTEGER NOT NULL,
    used_bytes INTEGER NOT NULL,
    chunk_count INTEGER NOT NULL,
    registered_at INTEGER NOT NULL,
    last_heartbeat INTEGER NOT NULL,
    missing_count INTEGER NOT NULL DEFAULT 0,
    extra_count INTEGER NOT NULL DEFAULT 0
  ) STRICT;

  CREATE TABLE chunks (
    id TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    wanted INTEGER NOT NULL,
    refs INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
  ) STRICT, WITHOUT ROWID;

  CREATE TABLE replicas (
    chunk_id TEXT NOT NULL REFERENCES chunks(id),
    server_id TEXT NOT NULL REFERENCES servers(id),
    state TEXT NOT NULL DEFAULT 'ok' CHECK (state IN ('ok', 'corrupt')),
    added_at INTEGER NOT NULL,
    PRIMARY KEY (chunk_id, server_id)
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX replicas_by_server ON replicas(server_id, chunk_id);

  CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    replicas INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE blobs (
    id TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    created_at INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE blob_chunks (
    blob_id TEXT NOT NULL REFERENCES blobs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    chunk_id TEXT NOT NULL REFERENCES chunks(id),
    size INTEGER NOT NULL,
    PRIMARY KEY (blob_id, idx)
  ) STRICT, WITHOUT ROWID;
  `,
];

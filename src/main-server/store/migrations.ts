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
  `
  CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    sign_key TEXT NOT NULL,
    box_key TEXT NOT NULL,
    admin INTEGER NOT NULL,
    root_id TEXT NOT NULL,
    root_sealed TEXT NOT NULL,
    created_at INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE invites (
    code_hash TEXT PRIMARY KEY,
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_by TEXT REFERENCES users(id)
  ) STRICT;

  CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  ) STRICT;

  -- A user's home folder is a node with no parent and no name.
  CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL REFERENCES users(id),
    parent_id TEXT REFERENCES nodes(id),
    kind TEXT NOT NULL CHECK (kind IN ('dir', 'file')),
    name_mac TEXT,
    name_enc TEXT,
    wrapped_key TEXT,
    version_id TEXT,
    size INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    modified_at INTEGER NOT NULL,
    UNIQUE (parent_id, name_mac)
  ) STRICT;
  CREATE INDEX nodes_by_parent ON nodes(parent_id);

  CREATE TABLE versions (
    id TEXT PRIMARY KEY,
    node_id TEXT NOT NULL REFERENCES nodes(id),
    blob_id TEXT NOT NULL REFERENCES blobs(id),
    size INTEGER NOT NULL,
    chunk_bytes INTEGER NOT NULL,
    content_key TEXT NOT NULL,
    created_at INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX versions_by_node ON versions(node_id);

  -- Chunk replicas that no blob needs any more, waiting for their server to delete them.
  CREATE TABLE chunk_deletions (
    chunk_id TEXT NOT NULL,
    server_id TEXT NOT NULL,
    queued_at INTEGER NOT NULL,
    PRIMARY KEY (chunk_id, server_id)
  ) STRICT, WITHOUT ROWID;

  -- Where each upload's chunks were placed, so an upload that never commits can be cleaned up.
  CREATE TABLE upload_chunks (
    upload_id TEXT NOT NULL,
    chunk_id TEXT NOT NULL,
    server_id TEXT NOT NULL,
    PRIMARY KEY (upload_id, chunk_id, server_id)
  ) STRICT, WITHOUT ROWID;

  ALTER TABLE uploads ADD COLUMN user_id TEXT;
  ALTER TABLE blobs ADD COLUMN user_id TEXT;
  `,
  `
  -- A node shared with a user: its key and name sealed to their X25519 key.
  CREATE TABLE grants (
    node_id TEXT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    grantee_id TEXT NOT NULL REFERENCES users(id),
    perm TEXT NOT NULL CHECK (perm IN ('read', 'write')),
    sealed_key TEXT NOT NULL,
    sealed_name TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (node_id, grantee_id)
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX grants_by_grantee ON grants(grantee_id);

  CREATE TABLE locks (
    node_id TEXT PRIMARY KEY REFERENCES nodes(id) ON DELETE CASCADE,
    holder_id TEXT NOT NULL REFERENCES users(id),
    expires_at INTEGER NOT NULL
  ) STRICT;
  `,
  `
  -- Chunks a server holds that no blob uses, first seen when; deleted after a grace period.
  CREATE TABLE extras (
    server_id TEXT NOT NULL,
    chunk_id TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (server_id, chunk_id)
  ) STRICT, WITHOUT ROWID;
  `,
  `
  -- When each server last sent a full inventory, when it last came back after being
  -- lost, and how many of its replicas have failed a hash check so far.
  ALTER TABLE servers ADD COLUMN inventory_at INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE servers ADD COLUMN returned_at INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE servers ADD COLUMN corrupt_count INTEGER NOT NULL DEFAULT 0;
  -- When an admin removed the server from the cluster (0: never); it may not come back.
  ALTER TABLE servers ADD COLUMN removed_at INTEGER NOT NULL DEFAULT 0;
  -- When an unknown chunk was last listed by its server; one no longer listed is forgotten.
  ALTER TABLE extras ADD COLUMN last_seen INTEGER NOT NULL DEFAULT 0;

  -- Good replicas beyond a chunk's wanted count, first seen when; trimmed after a grace period.
  CREATE TABLE surplus (
    chunk_id TEXT NOT NULL,
    server_id TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (chunk_id, server_id)
  ) STRICT, WITHOUT ROWID;
  `,
  `
  -- The TLS key each server id first enrolled with: an id stays bound to it, so the join
  -- token cannot get anyone a certificate naming a server that already exists.
  CREATE TABLE enrolments (
    server_id TEXT PRIMARY KEY,
    key_fingerprint TEXT NOT NULL,
    first_at INTEGER NOT NULL,
    last_at INTEGER NOT NULL
  ) STRICT;
  `,
  `
  -- When a delete order may be tried again (0: not tried yet): one its server refused goes
  -- behind the others instead of being tried first at every pass. The deleter reads each
  -- live server's due orders through the index, so orders for servers that are down, or
  -- that refuse, never hold up the rest of the queue.
  ALTER TABLE chunk_deletions ADD COLUMN retry_at INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX chunk_deletions_by_server ON chunk_deletions(server_id, retry_at, queued_at);
  `,
  `
  -- Due surplus copies and extras are read oldest first through these, a bounded number
  -- per pass (sorting a million rows each pass held main's thread for a second); an extra's
  -- chunk is looked up among uploads' chunks by its id before the extra is deleted.
  CREATE INDEX surplus_by_age ON surplus(first_seen);
  CREATE INDEX extras_by_age ON extras(first_seen);
  CREATE INDEX upload_chunks_by_chunk ON upload_chunks(chunk_id);
  -- Whether a blob is some file's version: such a blob's chunks are read through the file.
  CREATE INDEX versions_by_blob ON versions(blob_id);
  `,
  `
  -- An unshare's key rotation not finished yet: the grant is gone (main refuses the
  -- revoked user from then on), every key under root_id is still to be replaced. Until
  -- it is, main refuses changes under root_id. attempt is the client's current try,
  -- whose parts are kept in rotation_nodes and rotation_grants until its last one lands.
  CREATE TABLE rotations (
    root_id TEXT PRIMARY KEY REFERENCES nodes(id) ON DELETE CASCADE,
    started_at INTEGER NOT NULL,
    attempt TEXT
  ) STRICT;
  CREATE TABLE rotation_nodes (
    root_id TEXT NOT NULL REFERENCES rotations(root_id) ON DELETE CASCADE,
    node_id TEXT NOT NULL,
    wrapped_key TEXT NOT NULL,
    name_enc TEXT,
    name_mac TEXT,
    content_key TEXT,
    version_id TEXT,
    expect_wrapped_key TEXT,
    PRIMARY KEY (root_id, node_id)
  ) STRICT, WITHOUT ROWID;
  CREATE TABLE rotation_grants (
    root_id TEXT NOT NULL REFERENCES rotations(root_id) ON DELETE CASCADE,
    node_id TEXT NOT NULL,
    grantee_id TEXT NOT NULL,
    sealed_key TEXT NOT NULL,
    PRIMARY KEY (root_id, node_id, grantee_id)
  ) STRICT, WITHOUT ROWID;
  `,
  `
  -- How many parts the rotation's current attempt has sent: a client that finds another
  -- attempt under way waits while this grows, and takes the rotation over if it stops.
  ALTER TABLE rotations ADD COLUMN parts INTEGER NOT NULL DEFAULT 0;
  `,
  `
  -- The server's last stats said it cannot read its free space: free_bytes is its estimate.
  ALTER TABLE servers ADD COLUMN free_unknown INTEGER NOT NULL DEFAULT 0;
  `,
  `
  -- The owner's Ed25519 signature over a grant's sealed key and name: a grantee opens
  -- only a share its owner signed. Grants from before stay NULL until shared again.
  ALTER TABLE grants ADD COLUMN signature TEXT;
  ALTER TABLE rotation_grants ADD COLUMN signature TEXT;
  `,
  `
  -- When the owner signed a grant (ms, in the signature): a grantee refuses a grant older
  -- than one it has seen of the same share. NULL on grants signed before they were dated.
  ALTER TABLE grants ADD COLUMN signed_at INTEGER;
  ALTER TABLE rotation_grants ADD COLUMN signed_at INTEGER;
  `,
  `
  -- A rotation's grant carries the node's name sealed afresh by the owner (NULL from a
  -- client before: the grant keeps its old sealed name).
  ALTER TABLE rotation_grants ADD COLUMN sealed_name TEXT;
  `,
  `
  -- A rotation whose new keys are being installed, a step at a time: '' once its parts
  -- were checked, then the last node id (in id order) whose keys are in. NULL: parts are
  -- still coming. Main refuses every request under root_id while it is set, and at start
  -- goes on installing where it stopped.
  ALTER TABLE rotations ADD COLUMN installed_upto TEXT;
  -- New names alike in a rotation's parts are looked for along this, not by a sort.
  CREATE INDEX rotation_nodes_by_mac ON rotation_nodes(root_id, name_mac);
  `,
];

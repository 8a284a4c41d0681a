import { SedfsError } from '../protocol/errors.js';
import type { ServerRef } from '../protocol/main-api.js';

export interface Candidate extends ServerRef {
  freeBytes: number;
}

/**
 * Picks up to `replicas` distinct servers for one chunk. Servers are drawn without
 * replacement with probability proportional to free space, so emptier servers fill
 * first while no single server takes every chunk; the chain head varies too.
 */
/**
 * As `chooseReplicas`, but servers not `trusted` (one failed a storage audit lately:
 * it lost or dropped a copy it was counted for) only make up what the others cannot.
 * A server that lies about its free space would otherwise draw most new copies.
 */
export function chooseTrustedFirst(
  candidates: Candidate[],
  replicas: number,
  random: () => number,
  trusted: (id: string) => boolean,
): ServerRef[] {
  const first = chooseReplicas(
    candidates.filter((c) => trusted(c.id)),
    replicas,
    random,
  );
  if (first.length === replicas) return first;
  return first.concat(
    chooseReplicas(
      candidates.filter((c) => !trusted(c.id)),
      replicas - first.length,
      random,
    ),
  );
}

/**
 * The candidates with room for a chunk of `bytes`, by the free space each last reported
 * (a file server reports what is left above its reserve). One without room would only
 * refuse the chunk (SEDFS_ERR_NO_SPACE) and cost the client a retry elsewhere.
 */
export function withRoomFor<C extends Candidate>(candidates: C[], bytes: number): C[] {
  return candidates.filter((c) => c.freeBytes >= bytes);
}

/** Servers a new copy of one chunk does not count on (`MainStore.barredFrom`). */
export interface Barred {
  corrupt: string[];
  deleting: string[];
}

/**
 * The candidates that may take a new copy of a chunk: none holding a corrupt copy of it
 * or deleting one. A commit counts no receipt of theirs, so a chunk placed only there
 * had its commit refused though every receipt was in.
 */
export function notBarred<C extends Candidate>(candidates: C[], barred: Barred | undefined): C[] {
  if (!barred) return candidates;
  return candidates.filter((c) => !barred.corrupt.includes(c.id) && !barred.deleting.includes(c.id));
}

/** What placement says when every live server with room for a chunk is barred from it. */
export function allBarred(chunkId: string): SedfsError {
  return new SedfsError(
    'SEDFS_ERR_NO_SERVERS',
    `no live file server with room can take chunk ${chunkId.slice(0, 12)} now: each holds a corrupt copy of it or is deleting one; try again later`,
  );
}

/**
 * What placement says when every live server with room for a chunk is one the client
 * asked to leave out (the chain that failed to store it): not the cluster being full.
 */
export function noneOutside(chunkId: string, excluded: number): SedfsError {
  return new SedfsError(
    'SEDFS_ERR_NO_SERVERS',
    `no live file server with room for chunk ${chunkId.slice(0, 12)} is outside the ${excluded} asked to be left out`,
  );
}

/** What placement and repair say when no live server has room for a chunk. */
export function clusterFull(bytes: number): SedfsError {
  return new SedfsError(
    'SEDFS_ERR_NO_SPACE',
    `the cluster is out of space: no live file server has room for a chunk of ${bytes} bytes`,
  );
}

export function chooseReplicas(candidates: Candidate[], replicas: number, random: () => number): ServerRef[] {
  const pool = [...candidates];
  const chosen: ServerRef[] = [];
  while (chosen.length < replicas && pool.length > 0) {
    // +1 byte keeps a full server possible when nothing else is left.
    const total = pool.reduce((n, c) => n + c.freeBytes + 1, 0);
    let pick = random() * total;
    let i = 0;
    for (; i < pool.length - 1; i++) {
      pick -= (pool[i] as Candidate).freeBytes + 1;
      if (pick < 0) break;
    }
    const [c] = pool.splice(i, 1) as [Candidate];
    chosen.push({ id: c.id, url: c.url });
  }
  return chosen;
}

import { fingerprint } from '../crypto/identity.js';
import { SedfsError } from '../protocol/errors.js';
import type { UserKeysResponse } from '../protocol/namespace-api.js';
import type { ClusterClient } from './cluster-client.js';
import type { Pin } from './profile.js';

/**
 * What a client remembers so that main cannot fool it later: other users' public keys as
 * first seen, and when the latest grant each user has seen of each share was signed. The
 * CLI keeps both in the profile, by cluster.
 */
export interface PinStore {
  pins(): Promise<Record<string, Pin>>;
  savePin(user: string, pin: Pin): Promise<void>;
  /** the signing time of the latest grant `grantee` (their own signing key) has seen of each share, by `ownerKey:nodeId` */
  grantsSeen(grantee: string): Promise<Record<string, number>>;
  /** remembers these signing times for `grantee`, keeping the later of two for one share */
  saveGrantsSeen(grantee: string, seen: Record<string, number>): Promise<void>;
}

/** The later signing time of each share of two records of them. */
export function laterGrants(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out = { ...a };
  for (const [nodeId, at] of Object.entries(b)) out[nodeId] = Math.max(out[nodeId] ?? 0, at);
  return out;
}

/** Pins kept for as long as the process runs: for a client with no profile. */
export class MemoryPins implements PinStore {
  readonly map: Record<string, Pin> = {};
  private readonly seen = new Map<string, Record<string, number>>();
  async pins() {
    return this.map;
  }
  async savePin(user: string, pin: Pin) {
    this.map[user] = pin;
  }
  async grantsSeen(grantee: string) {
    return this.seen.get(grantee) ?? {};
  }
  async saveGrantsSeen(grantee: string, seen: Record<string, number>) {
    this.seen.set(grantee, laterGrants(this.seen.get(grantee) ?? {}, seen));
  }
}

export interface KeyCheck {
  fingerprint: string;
  /** true the first time this user's key is seen (it is pinned now) */
  newlyPinned: boolean;
  /** the pin held before this check, if any */
  before?: Pin;
}

/** `map[key]` if the map has it as its own: never what every object has (`constructor`, a user may be named so). */
export function ownEntry<T>(map: Record<string, T> | undefined, key: string): T | undefined {
  return map && Object.hasOwn(map, key) ? map[key] : undefined;
}

/**
 * A user's public keys, checked against the pinned ones: seen for the first time they
 * are pinned; if they changed since, this stops with SEDFS_ERR_KEY_CHANGED unless the
 * caller confirmed the new key (`acceptNewKey`).
 */
export async function checkedUserKeys(
  client: ClusterClient,
  pins: PinStore,
  name: string,
  acceptNewKey = false,
  /** what to do if the user really made a new key */
  ifNew = 'run again with --accept-new-key',
): Promise<UserKeysResponse & KeyCheck> {
  const keys = await client.call<UserKeysResponse>('GET', `/v1/users/${encodeURIComponent(name)}`);
  const fp = fingerprint(keys);
  const pinned = ownEntry(await pins.pins(), name);
  if (pinned && pinned.fingerprint !== fp && !acceptNewKey) {
    throw new SedfsError(
      'SEDFS_ERR_KEY_CHANGED',
      `WARNING: ${name}'s key changed from ${pinned.fingerprint} to ${fp}. If ${name} really made a new key, ${ifNew}; otherwise someone may be impersonating them.`,
    );
  }
  const pin = {
    fingerprint: fp,
    signKey: keys.signKey,
    boxKey: keys.boxKey,
    pinnedAt: new Date().toISOString(),
  };
  if (!pinned || pinned.fingerprint !== fp) await pins.savePin(name, pin);
  return { ...keys, fingerprint: fp, newlyPinned: !pinned, ...(pinned ? { before: pinned } : {}) };
}

import { randomHexId, sha256Hex } from '../crypto/hash.js';
import { generateIdentity, type SecretIdentity, sealTo, signMessage } from '../crypto/identity.js';
import { newNodeKey } from '../crypto/node-keys.js';
import type {
  ChallengeResponse,
  LoginResponse,
  MeResponse,
  SignupRequest,
  UserInfo,
} from '../protocol/account-api.js';
import { loginMessage, NO_CLUSTER_CA, signupMessage } from '../protocol/account-messages.js';
import type { ClusterClient } from './cluster-client.js';

/** Context label under which a home folder's key is sealed to its owner. */
export const rootSealContext = (rootId: string) => `root:${rootId}`;

/**
 * Makes a user's keys and home folder on the client and registers the public half.
 * The home folder's node key is sealed to the user's own X25519 key: only they can open it.
 */
export async function signup(
  client: ClusterClient,
  name: string,
  invite?: string,
  identity: SecretIdentity = generateIdentity(),
): Promise<{ user: UserInfo; identity: SecretIdentity; root: RootPin }> {
  const rootId = randomHexId();
  const rootKey = newNodeKey();
  const req: SignupRequest = {
    name,
    signKey: identity.signKey,
    boxKey: identity.boxKey,
    signature: signMessage(identity, Buffer.from(signupMessage(name, identity.signKey, identity.boxKey))),
    rootId,
    rootSealed: sealTo(identity.boxKey, rootKey, rootSealContext(rootId)).toString('base64url'),
    ...(invite ? { invite } : {}),
  };
  const user = await client.call<UserInfo>('POST', '/v1/users', req);
  return { user, identity, root: rootPinOf(rootId, req.rootSealed) };
}

/**
 * What a profile remembers of a user's home folder on a cluster: its id and the hash of
 * its sealed key as main handed it out. Anyone who knows the user's public box key,
 * main included, can seal a key to it: a home folder main swapped in later (its own
 * key, so that it could read what the user writes next) is refused.
 */
export interface RootPin {
  id: string;
  /** SHA-256 (hex) of the sealed home-folder key, as main gives it out */
  sealed: string;
}

export function rootPinOf(rootId: string, rootSealed: string): RootPin {
  return { id: rootId, sealed: sha256Hex(Buffer.from(rootSealed, 'base64url')) };
}

/** Signs main's challenge with the user's key; on success the client carries the session token. */
export async function login(
  client: ClusterClient,
  name: string,
  identity: SecretIdentity,
): Promise<LoginResponse> {
  const { challenge } = await client.call<ChallengeResponse>('POST', '/v1/sessions/challenge', { name });
  const signed = loginMessage(name, challenge, client.caFingerprint ?? NO_CLUSTER_CA);
  const signature = signMessage(identity, Buffer.from(signed));
  const res = await client.call<LoginResponse>('POST', '/v1/sessions', { name, challenge, signature });
  client.token = res.token;
  return res;
}

export function me(client: ClusterClient): Promise<MeResponse> {
  return client.call('GET', '/v1/me');
}

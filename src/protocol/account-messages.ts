/*
 * What signups and logins sign. Kept apart from account-api.ts so the CLI, which needs
 * these but not the request schemas, does not load the schema library at every start.
 */

/** What a signup signs, proving it holds the signing key it registers. */
export function signupMessage(name: string, signKey: string, boxKey: string): string {
  return `sedfs-signup-v1\n${name}\n${signKey}\n${boxKey}`;
}

/** What stands for the cluster CA's fingerprint in a login to a main without TLS. */
export const NO_CLUSTER_CA = 'insecure-http';

/**
 * What a login signs: the challenge main issued, bound to the user name and to the main
 * the client believes it is talking to (its cluster CA's fingerprint). Without that, a
 * server a user was talked into logging in to could ask the real main for a challenge,
 * pass it on as its own, and log in there with the user's signature.
 */
export function loginMessage(name: string, challenge: string, clusterCa: string): string {
  return `sedfs-login-v2\n${clusterCa}\n${name}\n${challenge}`;
}

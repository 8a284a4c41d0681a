/*
 * What signups and logins sign. Kept apart from account-api.ts so the CLI, which needs
 * these but not the request schemas, does not load the schema library at every start.
 */

/** What a signup signs, proving it holds the signing key it registers. */
export function signupMessage(name: string, signKey: string, boxKey: string): string {
  return `sedfs-signup-v1\n${name}\n${signKey}\n${boxKey}`;
}

/** What a login signs: the challenge main issued, bound to the user name. */
export function loginMessage(name: string, challenge: string): string {
  return `sedfs-login-v1\n${name}\n${challenge}`;
}

import { join } from 'node:path';
import { login, signup } from '../src/client/account.js';
import { Profile } from '../src/client/profile.js';
import { fingerprintOf } from '../src/crypto/certificates.js';
import type { TestCluster } from '../test/helpers/cluster.js';

/**
 * Signs `user` up on a test cluster and leaves a profile (session and trusted CA) in
 * `<cluster root>/profile`, so the real CLI (SEDFS_HOME) and bench/client.js can use it.
 * Returns main's URL and the session file.
 */
export async function benchSession(cluster: TestCluster, user = 'bench'): Promise<string[]> {
  const c = cluster.newClient();
  const { identity } = await signup(c, user);
  const s = await login(c, user, identity);
  await c.close();
  const profile = new Profile(join(cluster.root, 'profile'));
  await profile.saveSession({
    main: cluster.mainUrl,
    user,
    userId: s.user.id,
    token: s.token,
    expiresAt: s.expiresAt,
    identity,
  });
  if (cluster.ca)
    await profile.saveTrust(cluster.mainUrl, { fingerprint: fingerprintOf(cluster.ca), ca: cluster.ca });
  return [cluster.mainUrl, join(cluster.root, 'profile', 'session.json')];
}

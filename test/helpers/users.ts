import { login, signup } from '../../src/client/account.js';
import type { ClusterClient } from '../../src/client/cluster-client.js';
import { FileSystem } from '../../src/client/file-system.js';
import type { SecretIdentity } from '../../src/crypto/identity.js';

export interface TestUser {
  client: ClusterClient;
  identity: SecretIdentity;
  fs: FileSystem;
}

/** Signs a new user up, logs them in, and opens their file system. Close `client` when done. */
export async function newUser(cluster: { newClient(): ClusterClient }, name: string): Promise<TestUser> {
  const client = cluster.newClient();
  const { identity } = await signup(client, name);
  await login(client, name, identity);
  return { client, identity, fs: await FileSystem.open(client, identity) };
}

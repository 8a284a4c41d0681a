import { beginUploadRoute } from './begin-upload.js';
import { checkRoute } from './check.js';
import { commitFilesRoute } from './commit-files.js';
import { commitUploadRoute } from './commit-upload.js';
import { createInviteRoute } from './create-invite.js';
import { deleteNodeRoute } from './delete-node.js';
import { enrollServerRoute } from './enroll-server.js';
import { getBlobRoute } from './get-blob.js';
import { getCaRoute } from './get-ca.js';
import { getContentRoute } from './get-content.js';
import { getContentsRoute } from './get-contents.js';
import { getNodeRoute } from './get-node.js';
import { getPermsRoute } from './get-perms.js';
import { getSubtreeRoute } from './get-subtree.js';
import { getUserKeysRoute } from './get-user-keys.js';
import { listChildrenRoute } from './list-children.js';
import { listRotationsRoute } from './list-rotations.js';
import { listServersRoute } from './list-servers.js';
import { listSharesRoute } from './list-shares.js';
import { lockNodeRoute } from './lock-node.js';
import { loginRoute } from './login.js';
import { loginChallengeRoute } from './login-challenge.js';
import { logoutRoute } from './logout.js';
import { lookupChildRoute } from './lookup-child.js';
import { makeFolderRoute } from './make-folder.js';
import { meRoute } from './me.js';
import { moveNodeRoute } from './move-node.js';
import { placeChunksRoute } from './place-chunks.js';
import { registerServerRoute } from './register-server.js';
import { rekeyNodeRoute } from './rekey-node.js';
import { removeServerRoute } from './remove-server.js';
import { reportBadReplicaRoute } from './report-bad-replica.js';
import { rotateJoinTokenRoute } from './rotate-join-token.js';
import { serverCorruptRoute } from './server-corrupt.js';
import { serverHeartbeatRoute } from './server-heartbeat.js';
import { serverInventoryRoute } from './server-inventory.js';
import { shareNodeRoute } from './share-node.js';
import { signupRoute } from './signup.js';
import { unlockNodeRoute } from './unlock-node.js';
import { unshareNodeRoute } from './unshare-node.js';

/** Every route main serves, one file each. */
export const MAIN_ROUTES = [
  // file servers (join token)
  getCaRoute,
  enrollServerRoute,
  registerServerRoute,
  removeServerRoute,
  rotateJoinTokenRoute,
  serverInventoryRoute,
  serverHeartbeatRoute,
  serverCorruptRoute,
  // accounts
  signupRoute,
  loginChallengeRoute,
  loginRoute,
  logoutRoute,
  meRoute,
  createInviteRoute,
  // cluster and storage (session)
  listServersRoute,
  beginUploadRoute,
  placeChunksRoute,
  commitUploadRoute,
  commitFilesRoute,
  getBlobRoute,
  reportBadReplicaRoute,
  // namespace (session)
  getNodeRoute,
  listChildrenRoute,
  lookupChildRoute,
  makeFolderRoute,
  moveNodeRoute,
  deleteNodeRoute,
  getContentRoute,
  getContentsRoute,
  // sharing and locks (session)
  getUserKeysRoute,
  shareNodeRoute,
  listSharesRoute,
  getPermsRoute,
  getSubtreeRoute,
  unshareNodeRoute,
  rekeyNodeRoute,
  listRotationsRoute,
  lockNodeRoute,
  unlockNodeRoute,
  // cluster health (admin)
  checkRoute,
];

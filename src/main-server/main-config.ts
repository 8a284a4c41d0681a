import type { ConfigOf } from '../common/config.js';
import { REPAIR_COPIES_AT_ONCE } from '../protocol/file-server-api.js';
import { DEFAULT_TICKET_TTL_MS } from '../protocol/ticket.js';

/** `sedfs main`'s settings: flags, SEDFS_* variables and config-file keys come from here. */
export const MAIN_CONFIG = {
  host: { kind: 'string', default: '0.0.0.0', help: 'address to bind; 0.0.0.0 is all interfaces' },
  port: { kind: 'int', default: 0, min: 0, max: 65535, help: 'port to bind; 0 picks a free one' },
  data: { kind: 'string', default: 'sedfs-main', help: 'data folder: state, keys, log' },
  replicas: {
    kind: 'int',
    default: 3,
    min: 1,
    max: 16,
    env: 'SEDFS_REPLICAS',
    help: 'copies of every chunk',
  },
  heartbeatTimeout: {
    kind: 'number',
    default: 15,
    min: 0.2,
    env: 'SEDFS_HEARTBEAT_TIMEOUT',
    help: 'seconds of silence before a file server is down',
  },
  lostAfter: {
    kind: 'number',
    default: 600,
    min: 0,
    env: 'SEDFS_LOST_AFTER',
    help: 'seconds a server may stay down before its chunks are re-replicated elsewhere',
  },
  extraGrace: {
    kind: 'number',
    default: 3600,
    min: 0,
    env: 'SEDFS_EXTRA_GRACE',
    help: 'seconds an unknown chunk on a file server waits before it is deleted',
  },
  inventoryInterval: {
    kind: 'number',
    default: 6 * 3600,
    min: 0,
    env: 'SEDFS_INVENTORY_INTERVAL',
    help: 'seconds between full inventories asked of each file server (0 = only at registration)',
  },
  // No default of its own: a read ticket's lifetime (--ticket-ttl), so any reader handed
  // the chunks can still fetch them.
  freedGrace: {
    kind: 'number',
    min: 0,
    env: 'SEDFS_FREED_GRACE',
    help: 'seconds the chunks of a replaced or removed file are kept, so readers that started before can finish (default: --ticket-ttl)',
  },
  auditInterval: {
    kind: 'number',
    default: 60,
    min: 0,
    env: 'SEDFS_AUDIT_INTERVAL',
    help: 'seconds between audits, each reading back one replica (the next in turn) from every live file server (0 = none)',
  },
  surplusReadRate: {
    kind: 'number',
    default: 32,
    min: 0,
    help: 'MiB/s main reads back, on average, proving the copies it keeps before it deletes surplus ones (0 = no limit)',
  },
  // Measured (docs/performance.md): a body costs main ~4-5 times its bytes while it is
  // read and parsed, so 96 MiB of them kept main under 500 MiB where 192 reached 629.
  bigBodiesMib: {
    kind: 'number',
    default: 96,
    min: 1,
    help: 'MiB of big request bodies (commits, key rotations) main reads at once, half of it at most for one user; more are refused for now (SEDFS_ERR_BUSY) and clients retry',
  },
  repairConcurrency: {
    kind: 'int',
    default: REPAIR_COPIES_AT_ONCE,
    min: 1,
    max: 64,
    help: 'repair copies in flight at once',
  },
  repairRate: { kind: 'number', default: 0, min: 0, help: 'repair bandwidth cap in MiB/s (0 = none)' },
  joinToken: {
    kind: 'string',
    env: 'SEDFS_JOIN_TOKEN',
    help: 'cluster join token (default: made at first start)',
  },
  ticketTtl: {
    kind: 'number',
    default: DEFAULT_TICKET_TTL_MS / 1000,
    min: 1,
    help: 'seconds a chunk ticket lives',
  },
  openSignup: {
    kind: 'bool',
    default: false,
    env: 'SEDFS_OPEN_SIGNUP',
    help: 'let anyone sign up without an invite',
  },
  uploadTtl: {
    kind: 'number',
    default: 24 * 3600,
    min: 1,
    help: 'seconds an upload may take to commit; its chunks are then collected as orphans',
  },
  sessionTtl: { kind: 'number', default: 12 * 3600, min: 1, help: 'seconds a login session lasts' },
  insecureHttp: {
    kind: 'bool',
    default: false,
    env: 'SEDFS_INSECURE_HTTP',
    help: 'DEBUGGING ONLY: plain HTTP, so tokens and tickets cross the network readable',
  },
  certLifetime: {
    kind: 'number',
    default: 90 * 24 * 3600,
    min: 5,
    help: "seconds main's and file servers' certificates live; renewed with a third left",
  },
  logLevel: { kind: 'string', default: 'info', env: 'SEDFS_LOG_LEVEL', help: 'log level' },
} as const;
export type MainConfig = ConfigOf<typeof MAIN_CONFIG>;

import type { ConfigOf } from '../common/config.js';

/** `sedfs fileserver`'s settings: flags, SEDFS_* variables and config-file keys come from here. */
export const FILE_SERVER_CONFIG = {
  join: {
    kind: 'string',
    env: 'SEDFS_JOIN',
    help: "main's join string, sedfs://TOKEN@HOST:PORT#FINGERPRINT (in main's <data>/join)",
  },
  main: { kind: 'url', env: 'SEDFS_MAIN', help: 'main server URL (when not given by --join)' },
  joinToken: { kind: 'string', env: 'SEDFS_JOIN_TOKEN', help: 'cluster join token printed by main' },
  caFingerprint: {
    kind: 'string',
    env: 'SEDFS_CA_FINGERPRINT',
    help: 'SHA-256 fingerprint of the cluster CA main printed (needed the first time)',
  },
  insecureHttp: {
    kind: 'bool',
    default: false,
    env: 'SEDFS_INSECURE_HTTP',
    help: 'DEBUGGING ONLY: plain HTTP, for a main started with --insecure-http',
  },
  host: { kind: 'string', default: '0.0.0.0', help: 'address to bind; 0.0.0.0 is all interfaces' },
  port: { kind: 'int', default: 50000, min: 0, max: 65535, help: 'port to bind; 0 picks a free one' },
  advertise: { kind: 'url', help: 'URL other machines use to reach this server (default: as main sees it)' },
  data: { kind: 'string', default: 'sedfs-fileserver', help: 'data folder: chunks, id, log' },
  scrubInterval: {
    kind: 'number',
    default: 7 * 24 * 3600,
    min: 0,
    help: 'seconds per full re-hash pass over every stored chunk (0 = off)',
  },
  scrubRate: { kind: 'number', default: 32, min: 0, help: 'MiB/s the scrubber reads at most (0 = no limit)' },
  reserveMib: {
    kind: 'int',
    default: 256,
    min: 0,
    help: 'MiB of the data disk new chunks must leave free (for the log and temporary files); a chunk that would leave less is refused',
  },
  maxChunkMib: { kind: 'int', default: 16, min: 1, max: 256, help: 'largest chunk accepted, MiB' },
  logLevel: { kind: 'string', default: 'info', env: 'SEDFS_LOG_LEVEL', help: 'log level' },
} as const;
export type FileServerConfig = ConfigOf<typeof FILE_SERVER_CONFIG> & { main: string; joinToken: string };

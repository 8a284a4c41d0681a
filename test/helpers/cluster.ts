import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Agent } from 'undici';
import { login, signup } from '../../src/client/account.js';
import { ClusterClient } from '../../src/client/cluster-client.js';
import { createAgent } from '../../src/common/http-client.js';
import { TlsIdentity } from '../../src/common/tls.js';
import type { ServerView } from '../../src/protocol/main-api.js';
import { unlessGone } from './files.js';

/** The `sedfs` command as users run it: bin/sedfs.js, which loads the bundled CLI (tests run from dist/test). */
export const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '../../../bin/sedfs.js');

export interface SedfsProcess {
  proc: ChildProcess;
  /** everything it printed so far, stdout and stderr */
  output: () => string;
  exited: Promise<number | null>;
}

/** Starts `sedfs ARGS` as a real process, under `prefix` if given (e.g. `ip netns exec NS`). */
export function spawnSedfs(
  args: string[],
  env: Record<string, string> = {},
  prefix: string[] = [],
): SedfsProcess {
  // SEDFS_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles every process started.
  const nodeArgs = process.env.SEDFS_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const command = [...prefix, process.execPath, '--enable-source-maps', ...nodeArgs, CLI, ...args];
  const proc = spawn(command[0] as string, command.slice(1), {
    env: { ...process.env, SEDFS_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  // 'close', not 'exit': what it printed last has been read by then.
  const exited = new Promise<number | null>((res) => proc.on('close', (code) => res(code)));
  return { proc, output: () => out, exited };
}

/** Runs `sedfs ARGS` to completion. */
export async function runSedfs(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  proc.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  // 'close', not 'exit': a process can exit before its output has been read from the
  // pipes (a `--help` came back empty once under load).
  const code = await new Promise<number | null>((res) => proc.on('close', (c) => res(c)));
  return { code, stdout, stderr };
}

/** Polls until `check` returns a value (not undefined/false), or fails after `ms`. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  ms = 15_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastErr = err;
    }
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}${lastErr ? `: ${(lastErr as Error).message}` : ''}`);
}

export interface FileServerHandle {
  index: number;
  data: string;
  id: string;
  process: SedfsProcess;
  /** set when it runs in another network namespace, at this address there */
  place?: FileServerPlace;
}

export interface FileServerPlace {
  netns: string;
  host: string;
}

export interface ClusterOptions {
  servers?: number;
  replicas?: number;
  /**
   * seconds of silence before main calls a file server down (4 unless told: short, so a
   * killed server is seen down soon; long enough that a loaded machine's pause of a
   * second or two does not make a live one look down, nor leave no server to write to)
   */
  heartbeatTimeout?: number;
  /** extra flags for every file server */
  fileServerArgs?: string[];
  /** start main with --open-signup (default true) */
  openSignup?: boolean;
  /** extra flags for main */
  mainArgs?: string[];
  /** address main and the file servers bind (default 127.0.0.1) */
  host?: string;
  /** plain HTTP everywhere (--insecure-http), to compare with TLS */
  insecureHttp?: boolean;
  /** runs once main is up, before any file server or user: a user it signs up is the admin */
  whenMainIsUp?: (cluster: TestCluster) => Promise<void>;
  /** runs before anything starts, with the cluster's folder (to mount a small disk at `main/`) */
  beforeStart?: (root: string) => void;
}

/**
 * A cluster of real `sedfs` processes on 127.0.0.1 in a temporary folder: one main and
 * N file servers, with helpers to kill, restart and inspect them.
 */
export class TestCluster {
  readonly root: string;
  mainUrl = '';
  mainPort = 0;
  joinToken = '';
  main!: SedfsProcess;
  readonly fileServers: FileServerHandle[] = [];
  /** the cluster CA (PEM); undefined with insecureHttp */
  ca: string | undefined;
  private agentInstance: Agent | undefined;
  private readonly opts: Required<ClusterOptions>;
  private clientInstance: ClusterClient | undefined;

  private constructor(opts: ClusterOptions) {
    this.root = mkdtempSync(join(tmpdir(), 'sedfs-test-'));
    this.opts = {
      servers: 3,
      replicas: 3,
      heartbeatTimeout: 4,
      fileServerArgs: [],
      openSignup: true,
      mainArgs: [],
      host: '127.0.0.1',
      insecureHttp: false,
      whenMainIsUp: async () => {},
      beforeStart: () => {},
      ...opts,
    };
  }

  static async start(opts: ClusterOptions = {}): Promise<TestCluster> {
    const c = new TestCluster(opts);
    c.opts.beforeStart(c.root);
    await c.startMain();
    await c.opts.whenMainIsUp(c);
    for (let i = 0; i < c.opts.servers; i++) await c.addFileServer();
    await c.waitUp(c.opts.servers);
    return c;
  }

  get mainData(): string {
    return join(this.root, 'main');
  }

  async startMain(): Promise<void> {
    const addr = join(this.mainData, 'main.addr');
    const joinFile = join(this.mainData, 'join');
    rmSync(addr, { force: true });
    rmSync(joinFile, { force: true });
    this.main = spawnSedfs([
      'main',
      '--host',
      this.opts.host,
      '--port',
      String(this.mainPort),
      '--data',
      this.mainData,
      '--replicas',
      String(this.opts.replicas),
      '--heartbeat-timeout',
      String(this.opts.heartbeatTimeout),
      ...(this.opts.openSignup ? ['--open-signup'] : []),
      ...(this.opts.insecureHttp ? ['--insecure-http'] : []),
      ...this.opts.mainArgs,
    ]);
    this.mainUrl = await waitFor(
      'main.addr',
      () => (existsSync(addr) && readFileSync(addr, 'utf8').trim()) || undefined,
    );
    // Main writes the join string last (after main.addr): file servers need it.
    if (!this.opts.insecureHttp) await waitFor('main join string', () => existsSync(joinFile) || undefined);
    this.mainPort = Number(new URL(this.mainUrl).port);
    this.joinToken = readFileSync(join(this.mainData, 'join-token'), 'utf8').trim();
    this.ca = this.opts.insecureHttp ? undefined : readFileSync(join(this.mainData, 'tls', 'ca.pem'), 'utf8');
    this.agentInstance = undefined;
  }

  /** What a file server needs to join: main's join string, or for plain HTTP its URL and token. */
  private joinEnv(): Record<string, string> {
    if (this.opts.insecureHttp)
      return { SEDFS_MAIN: this.mainUrl, SEDFS_JOIN_TOKEN: this.joinToken, SEDFS_INSECURE_HTTP: 'true' };
    return { SEDFS_JOIN: readFileSync(join(this.mainData, 'join'), 'utf8').trim() };
  }

  /** A connection pool that shows file server `index`'s own certificate, as that server would. */
  serverAgent(index: number): Agent {
    const tlsDir = join((this.fileServers[index] as FileServerHandle).data, 'tls');
    return createAgent(
      new TlsIdentity(this.ca as string, {
        certPem: readFileSync(join(tlsDir, 'cert.pem'), 'utf8'),
        keyPem: readFileSync(join(tlsDir, 'key.pem'), 'utf8'),
      }),
    );
  }

  /** A client of main that trusts the cluster CA (not signed in). */
  newClient(): ClusterClient {
    return new ClusterClient(this.mainUrl, this.ca ? { ca: this.ca } : {});
  }

  /** A connection pool for raw requests to main and the file servers, trusting the cluster CA. */
  get agent(): Agent {
    this.agentInstance ??= createAgent(this.ca ? new TlsIdentity(this.ca) : undefined);
    return this.agentInstance;
  }

  async stopMain(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    this.main.proc.kill(signal);
    await this.main.exited;
  }

  async addFileServer(place?: FileServerPlace): Promise<FileServerHandle> {
    const index = this.fileServers.length;
    const handle: FileServerHandle = {
      index,
      data: join(this.root, `fs${index}`),
      id: '',
      process: undefined as never,
      ...(place ? { place } : {}),
    };
    this.fileServers.push(handle);
    await this.startFileServer(index);
    return handle;
  }

  /** (Re)starts file server `index`; `joinEnv` replaces what it is told to join with. */
  async startFileServer(index: number, joinEnv: Record<string, string> = this.joinEnv()): Promise<void> {
    const fs = this.fileServers[index] as FileServerHandle;
    rmSync(join(fs.data, 'fileserver.addr'), { force: true });
    const host = fs.place?.host ?? this.opts.host;
    fs.process = spawnSedfs(
      ['fileserver', '--host', host, '--port', '0', '--data', fs.data, ...this.opts.fileServerArgs],
      joinEnv,
      fs.place ? ['ip', 'netns', 'exec', fs.place.netns] : [],
    );
    await waitFor(`file server ${index} to listen`, () => existsSync(join(fs.data, 'fileserver.addr')));
    fs.id = readFileSync(join(fs.data, 'server-id'), 'utf8').trim();
  }

  async killFileServer(index: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const fs = this.fileServers[index] as FileServerHandle;
    fs.process.proc.kill(signal);
    await fs.process.exited;
  }

  /** A client logged in as a test user (the first user, so the admin), made on first use. */
  async client(): Promise<ClusterClient> {
    if (!this.clientInstance) {
      const c = this.newClient();
      const { identity } = await signup(c, 'tester');
      await login(c, 'tester', identity);
      this.clientInstance = c;
    }
    return this.clientInstance;
  }

  async servers(): Promise<ServerView[]> {
    return (await (await this.client()).servers()).servers;
  }

  /** Waits until exactly `n` file servers are up. */
  async waitUp(n: number, ms = 15_000): Promise<ServerView[]> {
    return waitFor(
      `${n} file servers up`,
      async () => {
        const s = await this.servers();
        return s.filter((x) => x.state === 'up').length === n && s;
      },
      ms,
    );
  }

  /** Path of a chunk file on a file server's disk, per the documented layout. */
  chunkPath(index: number, chunkId: string): string {
    const fs = this.fileServers[index] as FileServerHandle;
    return join(fs.data, 'chunks', chunkId.slice(0, 2), chunkId);
  }

  /**
   * A chunk's bytes as a file server's disk holds them, in a chunk file or a pack (read
   * here from the documented pack format, not through the server's code), or undefined.
   */
  storedChunk(index: number, chunkId: string): Buffer | undefined {
    const file = this.chunkPath(index, chunkId);
    if (existsSync(file)) return readFileSync(file);
    const packs = join((this.fileServers[index] as FileServerHandle).data, 'packs');
    // A pack compacted away while we look has its live chunks in a pack written before it
    // went, which a listing taken after it went shows: look again.
    for (let tries = 0; ; tries++) {
      const found = this.chunkInPacks(packs, chunkId);
      if (found !== 'a pack went') return found;
      if (tries === 9)
        throw new Error(`packs on server ${index} kept changing while chunk ${chunkId} was looked for`);
    }
  }

  private chunkInPacks(packs: string, chunkId: string): Buffer | undefined | 'a pack went' {
    for (const name of existsSync(packs) ? readdirSync(packs) : []) {
      if (!name.endsWith('.pack')) continue;
      const dead = unlessGone(() => readFileSync(join(packs, name.replace(/\.pack$/, '.dead')), 'latin1'));
      if (dead?.split('\n').includes(chunkId)) continue;
      const pack = unlessGone(() => readFileSync(join(packs, name)));
      if (!pack) return 'a pack went';
      const count = pack.readUInt32BE(8);
      let offset = 12 + 36 * count;
      for (let i = 0; i < count; i++) {
        const size = pack.readUInt32BE(12 + 36 * i + 32);
        if (pack.toString('hex', 12 + 36 * i, 12 + 36 * i + 32) === chunkId)
          return pack.subarray(offset, offset + size);
        offset += size;
      }
    }
    return undefined;
  }

  async stop(): Promise<void> {
    await this.clientInstance?.close();
    await this.agentInstance?.close();
    const procs = [this.main, ...this.fileServers.map((f) => f.process)].filter(
      (p) => p && p.proc.exitCode === null && p.proc.signalCode === null,
    );
    // A profiled process writes its profile only when it exits by itself: ask first.
    const profiling = Boolean(process.env.SEDFS_NODE_ARGS);
    for (const p of procs) p.proc.kill(profiling ? 'SIGTERM' : 'SIGKILL');
    if (profiling) {
      const timer = setTimeout(() => {
        for (const p of procs) p.proc.kill('SIGKILL');
      }, 10_000);
      await Promise.all(procs.map((p) => p.exited));
      clearTimeout(timer);
    }
    await Promise.all(procs.map((p) => p.exited));
    rmSync(this.root, { recursive: true, force: true });
  }
}

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ServerView } from '../../src/protocol/main-api.js';
import { runSedfs, type SedfsProcess, spawnSedfs, TestCluster, waitFor } from '../helpers/cluster.js';

describe('file servers register, go down when silent, and come back as themselves', () => {
  // Long enough that a loaded machine's pause between the kill and the first look does
  // not pass for the silence itself.
  const HEARTBEAT_TIMEOUT_S = 4;
  let cluster: TestCluster;
  let profile: string;
  let env: Record<string, string>;

  /** `sedfs servers --json` through the real CLI. */
  async function servers(): Promise<ServerView[]> {
    const res = await runSedfs(['servers', '--json'], env);
    assert.equal(res.code, 0, res.stderr);
    return JSON.parse(res.stdout).servers;
  }

  before(async () => {
    cluster = await TestCluster.start({ servers: 3, heartbeatTimeout: HEARTBEAT_TIMEOUT_S });
    profile = mkdtempSync(join(tmpdir(), 'sedfs-prof-'));
    env = { SEDFS_HOME: profile, SEDFS_MAIN: cluster.mainUrl, SEDFS_PASSPHRASE: 'pw' };
    assert.equal((await runSedfs(['signup', 'ops'], env)).code, 0);
  });
  after(async () => {
    await cluster?.stop();
    rmSync(profile, { recursive: true, force: true });
  });

  test('sedfs servers shows the three file servers up, with their ids and addresses', async () => {
    const list = await servers();
    assert.equal(list.length, 3);
    assert.ok(list.every((s) => s.state === 'up'));
    assert.deepEqual(list.map((s) => s.id).sort(), cluster.fileServers.map((f) => f.id).sort());
    const human = await runSedfs(['servers'], env);
    assert.match(human.stdout, /^ID\s+ADDRESS\s+STATE\s+USED\s+FREE\s+CHUNKS\s+LAST HEARTBEAT/m);
    assert.match(human.stdout, /3 of 3 up/);
  });

  test('a second server started on a data folder a running one holds is refused at once, and the first runs on', async () => {
    const held = cluster.fileServers[0] as { data: string; id: string };
    const joinString = readFileSync(join(cluster.mainData, 'join'), 'utf8').trim();
    /** Starts a server and waits for it to end by itself; one still running after 30 s is killed. */
    const startedAgain = async (args: string[], env: Record<string, string> = {}) => {
      const second = spawnSedfs(args, env);
      const ended = await Promise.race([second.exited, sleep(30_000).then(() => 'still running' as const)]);
      if (ended === 'still running') second.proc.kill('SIGKILL');
      return { ended, output: second.output() };
    };
    const second = await startedAgain(['fileserver', '--data', held.data, '--port', '0'], {
      SEDFS_JOIN: joinString,
    });
    assert.equal(typeof second.ended === 'number' && second.ended !== 0, true, `ended: ${second.ended}`);
    // Held by the folder's lock, which the system lets go with its process: no file to remove.
    assert.match(
      second.output,
      /another server \(process \d+\) is using the data folder .*: two would destroy each other's work\. Stop it first \(SEDFS_ERR_CONFIG\)/,
    );
    const mainAgain = await startedAgain(['main', '--data', cluster.mainData, '--port', '0']);
    assert.equal(
      typeof mainAgain.ended === 'number' && mainAgain.ended !== 0,
      true,
      `ended: ${mainAgain.ended}`,
    );
    assert.match(mainAgain.output, /another server \(process \d+\) is using the data folder/);
    assert.equal((await servers()).find((s) => s.id === held.id)?.state, 'up');
  });

  test('a server killed with SIGKILL is shown down once the configured silence has passed', async () => {
    const victim = cluster.fileServers[1]?.id as string;
    await cluster.killFileServer(1);
    const killedAt = Date.now();
    // Right after the kill it is still within its silence allowance (asked in-process: a CLI start is slower).
    assert.equal((await cluster.servers()).find((s) => s.id === victim)?.state, 'up');
    // Watched in-process, so the time a CLI takes to start is not counted as main's.
    await waitFor(
      'the killed server to be down',
      async () => (await cluster.servers()).find((s) => s.id === victim)?.state === 'down',
    );
    const downAfter = (Date.now() - killedAt) / 1000;
    // It may go down up to one heartbeat interval early (timeout/3), never much later.
    assert.ok(downAfter <= HEARTBEAT_TIMEOUT_S + 2, `down after ${downAfter}s`);
    assert.ok(downAfter >= HEARTBEAT_TIMEOUT_S * (2 / 3) - 0.5, `down after ${downAfter}s`);
    assert.equal((await servers()).find((s) => s.id === victim)?.state, 'down', 'and so the CLI shows it');
  });

  test('restarted on the same data folder, it is up again with the same id', async () => {
    const victim = cluster.fileServers[1]?.id as string;
    await cluster.startFileServer(1);
    assert.equal(cluster.fileServers[1]?.id, victim);
    await waitFor(
      'it to be up again',
      async () => (await servers()).find((s) => s.id === victim)?.state === 'up',
    );
    const list = await servers();
    assert.equal(list.length, 3);
    assert.ok(list.every((s) => s.state === 'up'));
    await waitFor('main to log the return', () =>
      mainLog(cluster.mainData).includes('file server is up again'),
    );
  });
});

describe('a new server id at an address another server still holds joins only if it is what answers there', () => {
  let cluster: TestCluster;
  let profile: string;
  let env: Record<string, string>;
  const started: SedfsProcess[] = [];
  /** the server started afresh at the first one's address, and its process */
  let freshId = '';
  let fresh: SedfsProcess;
  let intruderProc: SedfsProcess;

  const servers = async (): Promise<ServerView[]> => {
    const res = await runSedfs(['servers', '--json'], env);
    assert.equal(res.code, 0, res.stderr);
    return JSON.parse(res.stdout).servers;
  };

  /** `sedfs fileserver` on `data` at `port`, joining with main's join string. */
  function startServer(data: string, port: number, advertise?: string): SedfsProcess {
    const proc = spawnSedfs(
      [
        'fileserver',
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '--data',
        data,
        ...(advertise ? ['--advertise', advertise] : []),
      ],
      { SEDFS_JOIN: readFileSync(join(cluster.mainData, 'join'), 'utf8').trim() },
    );
    started.push(proc);
    return proc;
  }

  const idIn = (data: string) =>
    waitFor(
      'the server id',
      () => existsSync(join(data, 'server-id')) && readFileSync(join(data, 'server-id'), 'utf8').trim(),
    );

  before(async () => {
    // Copies of a silent server count for --lost-after (10 minutes): the old id below is
    // down but far from lost all through.
    cluster = await TestCluster.start({ servers: 1, replicas: 1 });
    profile = mkdtempSync(join(tmpdir(), 'sedfs-prof-'));
    env = { SEDFS_HOME: profile, SEDFS_MAIN: cluster.mainUrl, SEDFS_PASSPHRASE: 'pw' };
    assert.equal((await runSedfs(['signup', 'ops'], env)).code, 0);
  });
  after(async () => {
    for (const p of started) p.proc.kill('SIGKILL');
    await Promise.all(started.map((p) => p.exited));
    await cluster?.stop();
    rmSync(profile, { recursive: true, force: true });
  });

  test('a server started afresh on a wiped data folder at the same host and port takes the address over at once, and the old id is used nowhere', async () => {
    const old = cluster.fileServers[0] as { id: string; data: string };
    const url = readFileSync(join(old.data, 'fileserver.addr'), 'utf8').trim();
    await cluster.killFileServer(0);
    rmSync(old.data, { recursive: true, force: true });
    fresh = startServer(old.data, Number(new URL(url).port));
    freshId = await idIn(old.data);
    assert.notEqual(freshId, old.id);
    const list = await waitFor('the new server up at the old address', async () => {
      const now = await servers();
      return now.some((s) => s.id === freshId && s.state === 'up') && now;
    });
    assert.equal(list.find((s) => s.id === freshId)?.url, url);
    assert.equal(list.find((s) => s.id === old.id)?.url, '', 'no address is kept for the old id');
    assert.match(mainLog(cluster.mainData), /no longer at its address/);
    // The cluster stores on and reads from the new server there.
    assert.equal((await runSedfs(['write', '/after-wipe.txt', 'kept'], env)).code, 0);
    assert.equal((await runSedfs(['cat', '/after-wipe.txt'], env)).stdout, 'kept\n');
  });

  test('a server the cluster certified for the same host cannot register at that address while another server answers there, and says why it waits', async () => {
    const holder = (await servers()).find((s) => s.id === freshId) as ServerView;
    const data = join(cluster.root, 'intruder');
    // It listens elsewhere and says it is at the holder's address.
    const proc = startServer(data, 0, holder.url);
    intruderProc = proc;
    const intruder = await idIn(data);
    await waitFor('main to refuse its registration', () =>
      mainLog(cluster.mainData)
        .split('\n')
        .some((l) => l.includes('registration refused') && l.includes(intruder)),
    );
    // It says why it waits, not that main is unreachable.
    await waitFor('the refused server to say why it waits', () =>
      proc.output().includes('main does not let this server register at its address yet'),
    );
    assert.doesNotMatch(proc.output(), /main is unreachable/);
    const list = await servers();
    assert.equal(list.find((s) => s.id === holder.id)?.url, holder.url);
    assert.notEqual(list.find((s) => s.id === intruder)?.state, 'up');
    assert.equal((await runSedfs(['cat', '/after-wipe.txt'], env)).stdout, 'kept\n');
  });

  test("two servers restarted on each other's addresses (addresses handed out anew) both join at once, each at its new one", async () => {
    const stop = async (p: SedfsProcess) => {
      p.proc.kill('SIGKILL');
      await p.exited;
    };
    await stop(intruderProc);
    const otherData = join(cluster.root, 'other');
    const other = startServer(otherData, 0);
    const otherId = await idIn(otherData);
    const urlOf = (data: string) => readFileSync(join(data, 'fileserver.addr'), 'utf8').trim();
    await waitFor('the other server to listen', () => existsSync(join(otherData, 'fileserver.addr')));
    const freshData = (cluster.fileServers[0] as { data: string }).data;
    const [freshUrl, otherUrl] = [urlOf(freshData), urlOf(otherData)];
    await waitFor('both up', async () => (await servers()).filter((s) => s.state === 'up').length === 2);
    await stop(fresh);
    await stop(other);
    startServer(freshData, Number(new URL(otherUrl).port));
    startServer(otherData, Number(new URL(freshUrl).port));
    await waitFor("each up at the other's old address", async () => {
      const now = await servers();
      const at = (id: string) => now.find((s) => s.id === id && s.state === 'up')?.url;
      return at(freshId) === otherUrl && at(otherId) === freshUrl;
    });
    // Reads reach the file's server at its new address, expecting its certificate there.
    assert.equal((await runSedfs(['cat', '/after-wipe.txt'], env)).stdout, 'kept\n');
  });
});

function mainLog(mainData: string): string {
  return readFileSync(join(mainData, 'main.log'), 'utf8');
}

test('main keeps its ticket key and join token, and a file server its id, readable by their owner only', async () => {
  const cluster = await TestCluster.start({ servers: 1, replicas: 1 });
  try {
    const mode = (p: string) => statSync(p).mode & 0o777;
    assert.equal(mode(join(cluster.mainData, 'ticket-key.pem')), 0o600);
    assert.equal(mode(join(cluster.mainData, 'join-token')), 0o600);
    assert.equal(mode(join(cluster.fileServers[0]?.data as string, 'server-id')), 0o600);
    // TLS keys and the join string (which holds the token) too; certificates are public.
    assert.equal(mode(join(cluster.mainData, 'tls', 'ca-key.pem')), 0o600);
    assert.equal(mode(join(cluster.mainData, 'tls', 'main-key.pem')), 0o600);
    assert.equal(mode(join(cluster.mainData, 'join')), 0o600);
    assert.equal(mode(join(cluster.fileServers[0]?.data as string, 'tls', 'key.pem')), 0o600);
    assert.match(readFileSync(join(cluster.mainData, 'main.addr'), 'utf8'), /^https:\/\/127\.0\.0\.1:\d+\n$/);
    // The CA fingerprint is printed with the URL, for clients to check.
    assert.match(cluster.main.output(), /Cluster CA fingerprint \(clients check it\): [0-9a-f]{64}/);
    // The token printed at first start is the one kept.
    assert.ok(cluster.main.output().includes(cluster.joinToken));
  } finally {
    await cluster.stop();
  }
});

test('a join token given by flag or SEDFS_JOIN_TOKEN is used instead of a made one', async () => {
  const data = mkdtempSync(join(tmpdir(), 'sedfs-token-'));
  const main = spawnSedfs([
    'main',
    '--host',
    '127.0.0.1',
    '--data',
    join(data, 'flag'),
    '--join-token',
    'from-the-flag',
  ]);
  const viaEnv = spawnSedfs(['main', '--host', '127.0.0.1', '--data', join(data, 'env')], {
    SEDFS_JOIN_TOKEN: 'from-env',
  });
  try {
    await waitFor(
      'both mains',
      () => existsSync(join(data, 'flag', 'main.addr')) && existsSync(join(data, 'env', 'main.addr')),
    );
    assert.equal(readFileSync(join(data, 'flag', 'join-token'), 'utf8').trim(), 'from-the-flag');
    assert.equal(readFileSync(join(data, 'env', 'join-token'), 'utf8').trim(), 'from-env');
    // Rotating it would not last (the setting brings it back at the next start): refused.
    await waitFor('the join string', () => existsSync(join(data, 'flag', 'join')));
    const env = {
      SEDFS_HOME: join(data, 'profile'),
      SEDFS_MAIN: readFileSync(join(data, 'flag', 'main.addr'), 'utf8').trim(),
      SEDFS_PASSPHRASE: 'pw',
    };
    assert.equal((await runSedfs(['signup', 'admin'], env)).code, 0);
    const rotate = await runSedfs(['admin', 'rotate-join-token'], env);
    assert.notEqual(rotate.code, 0);
    assert.match(rotate.stderr, /--join-token/);
    assert.equal(readFileSync(join(data, 'flag', 'join-token'), 'utf8').trim(), 'from-the-flag');
  } finally {
    main.proc.kill('SIGKILL');
    viaEnv.proc.kill('SIGKILL');
    await Promise.all([main.exited, viaEnv.exited]);
    rmSync(data, { recursive: true, force: true });
  }
});

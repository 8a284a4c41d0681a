import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { request } from 'undici';
import { runSedfs, spawnSedfs, waitFor } from '../helpers/cluster.js';

test('sedfs dev starts main and N file servers with open signup, and SIGTERM stops them all cleanly', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sedfs-dev-'));
  const dev = spawnSedfs(['dev', '--servers', '2', '--data', root]);
  try {
    await waitFor('the dev cluster', () => dev.output().includes('dev cluster is up'), 20_000);
    const url = readFileSync(join(root, 'main', 'main.addr'), 'utf8').trim();
    const env = {
      SEDFS_HOME: join(root, 'profile'),
      SEDFS_PASSPHRASE: 'dev-test-passphrase',
      SEDFS_MAIN: url,
    };
    const signup = await runSedfs(['signup', 'tester'], env);
    assert.equal(signup.code, 0, signup.stderr);
    const res = await runSedfs(['servers', '--json'], env);
    assert.equal(res.code, 0, res.stderr);
    const servers = JSON.parse(res.stdout).servers as { state: string; url: string }[];
    assert.equal(servers.length, 2);
    assert.ok(servers.every((s) => s.state === 'up'));
    for (const dir of ['main/main.log', 'fs1/fileserver.log', 'fs2/fileserver.log']) {
      assert.ok(existsSync(join(root, dir)), `${dir} exists`);
    }

    dev.proc.kill('SIGTERM');
    assert.equal(await dev.exited, 0);
    // Nothing answers any more: main and the file servers were in the process that exited.
    for (const u of [url, ...servers.map((s) => s.url)]) {
      await assert.rejects(request(`${u}/v1/health`));
    }
  } finally {
    dev.proc.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  }
});

/**
 * Starts `sedfs` on a fresh data folder, sends `signal` once `ready` holds, and returns
 * its exit code and, if named, the log file it left.
 */
async function exitOnSignal(
  args: (data: string) => string[],
  until: string,
  ready: (data: string, output: string) => boolean,
  signal: NodeJS.Signals,
  logFile?: string,
): Promise<{ code: number | null; log: string }> {
  const root = mkdtempSync(join(tmpdir(), 'sedfs-signal-'));
  const server = spawnSedfs(args(root));
  try {
    await waitFor(until, () => ready(root, server.output()), 20_000);
    server.proc.kill(signal);
    const code = await server.exited;
    return { code, log: logFile ? readFileSync(join(root, logFile), 'utf8') : '' };
  } finally {
    server.proc.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  }
}

const mainIn = (data: string) => ['main', '--host', '127.0.0.1', '--port', '0', '--data', data];

test('a signal that comes while main is still starting stops it cleanly once it is up', async () => {
  // Its log is opened first thing: keys, the store and the listening socket come after.
  const { code, log } = await exitOnSignal(
    mainIn,
    'main to begin starting',
    (data) => existsSync(join(data, 'main.log')),
    'SIGTERM',
    'main.log',
  );
  assert.equal(code, 0);
  assert.match(log, /main server stopped/);
});

test('sedfs dev that cannot start a file server says why and closes main and the servers it started', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sedfs-dev-fail-'));
  try {
    // The second file server's data folder cannot be made: a file is in its place.
    writeFileSync(join(root, 'fs2'), 'not a folder');
    const res = await runSedfs(['dev', '--servers', '3', '--data', root]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /fs2/);
    assert.match(readFileSync(join(root, 'main', 'main.log'), 'utf8'), /main server stopped/);
    assert.match(readFileSync(join(root, 'fs1', 'fileserver.log'), 'utf8'), /file server stopped/);
    assert.equal(existsSync(join(root, 'fs3')), false);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a file server still waiting for an unreachable main stops at the first SIGTERM', async () => {
  // Port 9 on 127.0.0.1 (discard): nothing listens there, so every try is refused.
  const join9 = `sedfs://some-token@127.0.0.1:9#${'ab'.repeat(32)}`;
  const { code } = await exitOnSignal(
    (data) => ['fileserver', '--join', join9, '--host', '127.0.0.1', '--port', '0', '--data', data],
    'it to wait for main',
    (_data, output) => output.includes('main is unreachable; retrying'),
    'SIGTERM',
  );
  assert.equal(code, 0);
});

test('a server whose console goes away (SIGHUP) stops cleanly, as on SIGTERM', async () => {
  const { code, log } = await exitOnSignal(
    mainIn,
    'main to start',
    (data) => existsSync(join(data, 'join')),
    'SIGHUP',
    'main.log',
  );
  assert.equal(code, 0);
  assert.match(log, /main server stopped/);
});

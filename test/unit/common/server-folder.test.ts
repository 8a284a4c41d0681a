import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { lockEndpoint } from '../../../src/common/folder-lock.js';
import { holdDataFolder } from '../../../src/common/server-folder.js';

let data: string;
beforeEach(() => {
  data = mkdtempSync(join(tmpdir(), 'sedfs-held-'));
});
afterEach(() => rmSync(data, { recursive: true, force: true }));

const mark = () => join(data, 'server.pid');

/** The id of a process that has ended (a child run to its end). */
function endedProcess(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(child.stdout.toString());
}

test('a data folder is marked with the process that holds it, and the mark goes when it is let go', async () => {
  const release = await holdDataFolder(data, 'main');
  assert.equal(readFileSync(mark(), 'utf8'), `${process.pid}\nmain\nlocked\n`);
  release();
  assert.equal(existsSync(mark()), false);
});

test('a mark without the lock (a server from before it) whose process runs is refused, and left as it was', async () => {
  writeFileSync(mark(), `${process.ppid}\nfileserver\n`);
  await assert.rejects(holdDataFolder(data, 'fileserver'), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'SEDFS_ERR_CONFIG');
    assert.match(
      err.message,
      new RegExp(`another server \\(process ${process.ppid}\\) is using the data folder`),
    );
    return true;
  });
  assert.equal(readFileSync(mark(), 'utf8'), `${process.ppid}\nfileserver\n`);
});

test('a mark left by a process that has ended is taken over', async () => {
  writeFileSync(mark(), `${endedProcess()}\nfileserver\n`);
  const release = await holdDataFolder(data, 'fileserver');
  assert.equal(readFileSync(mark(), 'utf8'), `${process.pid}\nfileserver\nlocked\n`);
  release();
});

test('a mark written before the machine last started is taken over though its process id is in use again', async () => {
  writeFileSync(mark(), `${process.ppid}\nfileserver\n`);
  const longAgo = new Date('2001-01-01T00:00:00Z');
  utimesSync(mark(), longAgo, longAgo);
  const release = await holdDataFolder(data, 'fileserver');
  assert.equal(readFileSync(mark(), 'utf8'), `${process.pid}\nfileserver\nlocked\n`);
  release();
});

test('letting go leaves a mark that another process has written since in place', async () => {
  const release = await holdDataFolder(data, 'main');
  writeFileSync(mark(), `${process.ppid}\nmain\n`);
  release();
  assert.equal(readFileSync(mark(), 'utf8'), `${process.ppid}\nmain\n`);
});

/**
 * Another process holding `folder` as a server would (`platform` picks the kind of lock),
 * until it is killed: resolves once it holds it.
 */
async function holderProcess(
  folder: string,
  platform: NodeJS.Platform = process.platform,
): Promise<ChildProcess> {
  const module = new URL('../../../src/common/server-folder.js', import.meta.url).href;
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const { holdDataFolder } = await import(${JSON.stringify(module)});
       await holdDataFolder(${JSON.stringify(folder)}, 'fileserver', ${JSON.stringify(platform)});
       process.stdout.write('held\\n');
       setInterval(() => {}, 1000);`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const [line] = (await once(child.stdout as NodeJS.ReadableStream, 'data')) as [Buffer];
  assert.equal(line.toString(), 'held\n');
  return child;
}

async function killed(child: ChildProcess): Promise<void> {
  const gone = once(child, 'exit');
  child.kill('SIGKILL');
  await gone;
}

const refusedAsHeld = (pid: number | undefined) => (err: Error & { code?: string }) => {
  assert.equal(err.code, 'SEDFS_ERR_CONFIG');
  assert.match(err.message, new RegExp(`another server \\(process ${pid}\\) is using the data folder`));
  assert.doesNotMatch(err.message, /remove/);
  return true;
};

for (const platform of ['linux', 'darwin'] as const) {
  const kind = platform === 'linux' ? "Linux's abstract socket" : "a socket file (macOS's)";
  test(`with ${kind}, a folder another process holds is refused; once that process is killed it is taken over, though its mark names a running process`, async () => {
    const child = await holderProcess(data, platform);
    try {
      await assert.rejects(holdDataFolder(data, 'fileserver', platform), refusedAsHeld(child.pid));
    } finally {
      await killed(child);
    }
    // Killed, it left its mark; as on Windows, where ids are handed out again soon, the
    // id in it now belongs to a running process.
    assert.equal(readFileSync(mark(), 'utf8'), `${child.pid}\nfileserver\nlocked\n`);
    writeFileSync(mark(), `${process.ppid}\nfileserver\nlocked\n`);
    if (platform === 'darwin')
      assert.ok(existsSync(lockEndpoint(data, platform).path), 'the socket file was left');
    const release = await holdDataFolder(data, 'main', platform);
    assert.equal(readFileSync(mark(), 'utf8'), `${process.pid}\nmain\nlocked\n`);
    release();
    if (platform === 'darwin') assert.equal(existsSync(lockEndpoint(data, platform).path), false);
  });
}

test('two holds in one process: the second is refused until the first lets go', async () => {
  const release = await holdDataFolder(data, 'main');
  await assert.rejects(holdDataFolder(data, 'main'), refusedAsHeld(process.pid));
  release();
  (await holdDataFolder(data, 'main'))();
});

test("a folder's lock is named by a key only its user can read and by its path: a copy elsewhere is another folder", async () => {
  const child = await holderProcess(data);
  try {
    assert.equal(statSync(join(data, 'lock.key')).mode & 0o777, 0o600);
    const copy = `${data}-copy`;
    cpSync(data, copy, { recursive: true });
    try {
      assert.notEqual(lockEndpoint(copy, 'linux').path, lockEndpoint(data, 'linux').path);
      writeFileSync(join(copy, 'server.pid'), `${endedProcess()}\nfileserver\nlocked\n`);
      (await holdDataFolder(copy, 'fileserver'))();
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
    // Another key at the same path is another name: nobody can guess the name without it.
    const before = lockEndpoint(data, 'linux').path;
    writeFileSync(join(data, 'lock.key'), `${'0'.repeat(32)}\n`);
    assert.notEqual(lockEndpoint(data, 'linux').path, before);
  } finally {
    await killed(child);
  }
});

test('on Windows the lock is a named pipe named for the folder', () => {
  const endpoint = lockEndpoint(data, 'win32');
  assert.match(endpoint.path, /^\\\\\.\\pipe\\sedfs-[0-9a-f]{32}$/);
  assert.equal(endpoint.file, false);
});

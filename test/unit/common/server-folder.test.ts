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
  assert.match(readFileSync(mark(), 'utf8'), new RegExp(`^${process.pid}\nmain\nlock sedfs-[0-9a-f]{64}\n$`));
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
  assert.match(readFileSync(mark(), 'utf8'), new RegExp(`^${process.pid}\nfileserver\nlock sedfs-`));
  release();
});

test('a mark written before the machine last started is taken over though its process id is in use again', async () => {
  writeFileSync(mark(), `${process.ppid}\nfileserver\n`);
  const longAgo = new Date('2001-01-01T00:00:00Z');
  utimesSync(mark(), longAgo, longAgo);
  const release = await holdDataFolder(data, 'fileserver');
  assert.match(readFileSync(mark(), 'utf8'), new RegExp(`^${process.pid}\nfileserver\nlock sedfs-`));
  release();
});

test('letting go leaves a mark that another process has written since in place', async () => {
  const release = await holdDataFolder(data, 'main');
  writeFileSync(mark(), `${process.ppid}\nmain\n`);
  release();
  assert.equal(readFileSync(mark(), 'utf8'), `${process.ppid}\nmain\n`);
});

/** Runs, in another process, a start holding `folder` (`platform` picks the lock); its first line says how it went. */
function starter(
  folder: string,
  platform: NodeJS.Platform = process.platform,
  /** when to start (Date.now()), so that several start in the same millisecond */
  at = 0,
): { child: ChildProcess; said: Promise<string> } {
  const module = new URL('../../../src/common/server-folder.js', import.meta.url).href;
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const { holdDataFolder } = await import(${JSON.stringify(module)});
       while (Date.now() < ${at});
       try {
         await holdDataFolder(${JSON.stringify(folder)}, 'fileserver', ${JSON.stringify(platform)});
         process.stdout.write('held\\n');
         setInterval(() => {}, 1000);
       } catch (err) {
         process.stdout.write('refused: ' + err.message + '\\n');
       }`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const said = once(child.stdout as NodeJS.ReadableStream, 'data').then(([line]) => String(line).trim());
  return { child, said };
}

/** Another process holding `folder` as a server would, until it is killed. */
async function holderProcess(
  folder: string,
  platform: NodeJS.Platform = process.platform,
): Promise<ChildProcess> {
  const { child, said } = starter(folder, platform);
  assert.equal(await said, 'held');
  return child;
}

async function killed(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const gone = once(child, 'exit');
  child.kill('SIGKILL');
  await gone;
}

/** Refused, naming `pid`; `sure`: held by a lock, so no file to remove is suggested. */
const refusedBy = (pid: number | undefined, sure: boolean) => (err: Error & { code?: string }) => {
  assert.equal(err.code, 'SEDFS_ERR_CONFIG');
  assert.match(err.message, new RegExp(`another server \\(process ${pid}\\) is using the data folder`));
  if (sure) assert.doesNotMatch(err.message, /remove/);
  else assert.match(err.message, /if no server runs there, remove .*server\.pid/);
  return true;
};

test("with Linux's lock, a folder another process holds is refused; once that process is killed the folder is taken over, though its process id is in use again", async () => {
  const child = await holderProcess(data, 'linux');
  try {
    await assert.rejects(holdDataFolder(data, 'fileserver', 'linux'), refusedBy(child.pid, true));
  } finally {
    await killed(child);
  }
  const left = readFileSync(mark(), 'utf8');
  assert.match(left, new RegExp(`^${child.pid}\nfileserver\nlock sedfs-`));
  // As on Windows, where ids are handed out again soon: the mark's id is a running process's.
  writeFileSync(mark(), left.replace(String(child.pid), String(process.ppid)));
  const release = await holdDataFolder(data, 'main', 'linux');
  assert.match(readFileSync(mark(), 'utf8'), new RegExp(`^${process.pid}\nmain\nlock sedfs-`));
  release();
});

test('where the system gives no lock (macOS), the mark alone decides: refused while its process runs, taken over once it is killed', async () => {
  const child = await holderProcess(data, 'darwin');
  try {
    assert.equal(readFileSync(mark(), 'utf8'), `${child.pid}\nfileserver\n`);
    await assert.rejects(holdDataFolder(data, 'fileserver', 'darwin'), refusedBy(child.pid, false));
  } finally {
    await killed(child);
  }
  (await holdDataFolder(data, 'main', 'darwin'))();
});

test('two starts at once on one folder: exactly one holds it', async () => {
  for (let round = 0; round < 3; round++) {
    const folder = mkdtempSync(join(tmpdir(), 'sedfs-race-'));
    const at = Date.now() + 500;
    const starts = [starter(folder, 'linux', at), starter(folder, 'linux', at)];
    try {
      const said = await Promise.all(starts.map((s) => s.said));
      assert.equal(said.filter((l) => l === 'held').length, 1, said.join(' | '));
      assert.match(said.find((l) => l !== 'held') ?? '', /^refused: another server \(process \d+\)/);
    } finally {
      for (const s of starts) await killed(s.child);
      rmSync(folder, { recursive: true, force: true });
    }
  }
});

test('a lock name taken by a program that is no server here refuses nothing by itself: the start goes on without it, or is refused by a running mark as before the lock', async () => {
  const squatter = spawn(
    process.execPath,
    [
      '-e',
      `require('node:net').createServer().listen(${JSON.stringify(lockEndpoint(data, 'linux')?.path)}, () => process.stdout.write('listening\\n'))`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    await once(squatter.stdout as NodeJS.ReadableStream, 'data');
    const release = await holdDataFolder(data, 'fileserver', 'linux');
    assert.equal(readFileSync(mark(), 'utf8'), `${process.pid}\nfileserver\n`);
    release();
    writeFileSync(mark(), `${process.ppid}\nfileserver\n`);
    await assert.rejects(holdDataFolder(data, 'fileserver', 'linux'), refusedBy(process.ppid, false));
  } finally {
    await killed(squatter);
  }
});

test('a running mark that names another lock than the one this start takes (its key replaced) is refused', async () => {
  writeFileSync(mark(), `${process.ppid}\nfileserver\nlock sedfs-${'0'.repeat(64)}\n`);
  await assert.rejects(holdDataFolder(data, 'fileserver', 'linux'), refusedBy(process.ppid, false));
  // The lock it took on the way was let go: another process takes it.
  rmSync(mark());
  const child = await holderProcess(data, 'linux');
  try {
    assert.match(readFileSync(mark(), 'utf8'), new RegExp(`^${child.pid}\\nfileserver\\nlock sedfs-`));
  } finally {
    await killed(child);
  }
});

test("a folder's lock is named by a key only its user can read and by the folder itself: a copy is another folder", async () => {
  const child = await holderProcess(data, 'linux');
  try {
    assert.equal(statSync(join(data, 'lock.key')).mode & 0o777, 0o600);
    const copy = `${data}-copy`;
    cpSync(data, copy, { recursive: true });
    try {
      assert.notEqual(lockEndpoint(copy, 'linux')?.path, lockEndpoint(data, 'linux')?.path);
      writeFileSync(join(copy, 'server.pid'), `${endedProcess()}\nfileserver\n`);
      (await holdDataFolder(copy, 'fileserver', 'linux'))();
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
    const before = lockEndpoint(data, 'linux')?.path;
    writeFileSync(join(data, 'lock.key'), `${'0'.repeat(32)}\n`);
    assert.notEqual(lockEndpoint(data, 'linux')?.path, before);
  } finally {
    await killed(child);
  }
});

test('the lock is a named pipe on Windows, an abstract socket name of the full 107 bytes on Linux, and none on macOS', () => {
  assert.match(lockEndpoint(data, 'win32')?.path ?? '', /^\\\\\.\\pipe\\sedfs-[0-9a-f]{64}$/);
  const linux = lockEndpoint(data, 'linux')?.path ?? '';
  assert.equal(linux.length, 108);
  assert.ok(linux.startsWith('\0sedfs-'));
  assert.equal(lockEndpoint(data, 'darwin'), undefined);
});

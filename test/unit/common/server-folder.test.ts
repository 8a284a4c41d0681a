import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
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
  assert.equal(readFileSync(mark(), 'utf8'), `${process.pid}\nmain\n`);
  release();
  assert.equal(existsSync(mark()), false);
});

test('a folder another running process holds is refused, and its mark is left as it was', async () => {
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
  assert.equal(readFileSync(mark(), 'utf8'), `${process.pid}\nfileserver\n`);
  release();
});

test('a mark written before the machine last started is taken over though its process id is in use again', async () => {
  writeFileSync(mark(), `${process.ppid}\nfileserver\n`);
  const longAgo = new Date('2001-01-01T00:00:00Z');
  utimesSync(mark(), longAgo, longAgo);
  const release = await holdDataFolder(data, 'fileserver');
  assert.equal(readFileSync(mark(), 'utf8'), `${process.pid}\nfileserver\n`);
  release();
});

test('letting go leaves a mark that another process has written since in place', async () => {
  const release = await holdDataFolder(data, 'main');
  writeFileSync(mark(), `${process.ppid}\nmain\n`);
  release();
  assert.equal(readFileSync(mark(), 'utf8'), `${process.ppid}\nmain\n`);
});

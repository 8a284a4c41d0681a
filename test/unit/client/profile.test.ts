import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Profile } from '../../../src/client/profile.js';
import { generateIdentity } from '../../../src/crypto/identity.js';

/** Directory fsyncs fail with `code`, as on a FUSE or network file system. */
function refusing(code: string) {
  const refused: string[] = [];
  const sync = async (dir: string) => {
    refused.push(dir);
    throw Object.assign(new Error(`${code}: fsync '${dir}'`), { code });
  };
  return { refused, sync };
}

describe('a profile on a file system that cannot fsync directories', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sedfs-profile-nodirsync-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('(EINVAL) saves and reads back every file, and is told once', async () => {
    const { refused, sync } = refusing('EINVAL');
    const told: [string, string][] = [];
    const profile = new Profile(dir, {
      syncDir: sync,
      onDirSyncUnsupported: (d, code) => told.push([d, code]),
    });
    const identity = generateIdentity();
    await profile.saveConfig({ main: 'https://m:1' });
    await profile.saveKeys('ann', identity, 'pass phrase');
    await profile.saveTrust('https://m:1', { fingerprint: 'ab', ca: 'CA' });
    await profile
      .pinsFor('c1')
      .savePin('bob', { fingerprint: 'f', signKey: 's', boxKey: 'b', pinnedAt: 'now' });
    const session = { main: 'https://m:1', user: 'ann', userId: 'u1', token: 't', expiresAt: 1, identity };
    await profile.saveSession(session);
    assert.deepEqual(await profile.config(), { main: 'https://m:1' });
    assert.deepEqual(await profile.unlockKeys('ann', 'pass phrase'), identity);
    assert.equal((await profile.trustFor('https://m:1'))?.ca, 'CA');
    assert.equal((await profile.pinsFor('c1').pins()).bob?.fingerprint, 'f');
    assert.deepEqual(await profile.session(), session);
    // Four saves into the profile's folder, one into keys/, and keys/ made into its parent.
    assert.deepEqual(refused.sort(), [dir, dir, dir, dir, dir, join(dir, 'keys')].sort(), 'every save asked');
    assert.deepEqual(told, [[dir, 'EINVAL']]);
  });

  test('(EIO) fails the save: only a file system that cannot sync directories is let off', async () => {
    const { sync } = refusing('EIO');
    const profile = new Profile(dir, { syncDir: sync, onDirSyncUnsupported: () => assert.fail('told') });
    await assert.rejects(profile.saveConfig({ main: 'https://m:1' }), { code: 'EIO' });
  });

  test("(EINVAL) profiles made without a sync of their own (the CLI's) share one for the process, noted once and only with NODE_DEBUG=sedfs", () => {
    const profileJs = fileURLToPath(new URL('../../../src/client/profile.js', import.meta.url));
    // A process whose directory fsyncs fail as on a FUSE file system; file fsyncs still work.
    const script = `
      import { open } from 'node:fs/promises';
      const probe = await open(${JSON.stringify(profileJs)}, 'r');
      const proto = Object.getPrototypeOf(probe);
      await probe.close();
      const fileSync = proto.sync;
      proto.sync = async function () {
        if ((await this.stat()).isDirectory())
          throw Object.assign(new Error('EINVAL: invalid argument, fsync'), { code: 'EINVAL' });
        return fileSync.call(this);
      };
      const { Profile } = await import(${JSON.stringify(profileJs)});
      const dir = process.argv[1];
      await new Profile(dir).saveConfig({ main: 'https://m:1' });
      await new Profile(dir).saveTrust('https://m:1', { fingerprint: 'ab', ca: 'CA' });
    `;
    const run = (env: NodeJS.ProcessEnv) =>
      spawnSync(process.execPath, ['--input-type=module', '-e', script, dir], {
        env: { ...process.env, NODE_DEBUG: '', ...env },
        encoding: 'utf8',
      });
    const quiet = run({});
    assert.equal(quiet.status, 0, quiet.stderr);
    assert.equal(quiet.stderr, '', 'nothing said on an ordinary run');
    const debug = run({ NODE_DEBUG: 'sedfs' });
    assert.equal(debug.status, 0, debug.stderr);
    const notes = debug.stderr.split('\n').filter((l) => l.includes('cannot fsync directories'));
    assert.equal(notes.length, 1, debug.stderr);
    assert.match(notes[0] as string, /^SEDFS \d+: .*EINVAL/);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), { main: 'https://m:1' });
  });
});

test('servers found not answering are handed from one command to the next; a damaged file, or entries that are not, count as none', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sedfs-profile-unanswering-'));
  try {
    const profile = new Profile(dir);
    assert.deepEqual(await profile.unanswering(), []);
    const found = [{ server: 'a'.repeat(32), at: 1_795_000_000_000 }];
    await profile.noteUnanswering(found);
    assert.deepEqual(await new Profile(dir).unanswering(), found);
    // Another command's findings join them; an older finding of the same server does not
    // move it back.
    const other = { server: 'c'.repeat(32), at: 1_795_000_000_500 };
    await new Profile(dir).noteUnanswering([other, { server: 'a'.repeat(32), at: 1 }]);
    assert.deepEqual(await profile.unanswering(), [other, ...found]);
    writeFileSync(join(dir, 'unanswering.json'), '{"not": "a list"');
    assert.deepEqual(await profile.unanswering(), []);
    await profile.noteUnanswering(found);
    assert.deepEqual(await profile.unanswering(), found, 'a damaged file is written anew');
    writeFileSync(join(dir, 'unanswering.json'), '[1, 2');
    assert.deepEqual(await profile.unanswering(), []);
    writeFileSync(
      join(dir, 'unanswering.json'),
      JSON.stringify([null, { server: '../x', at: 1 }, { server: 'b'.repeat(32), at: 'soon' }, ...found]),
    );
    assert.deepEqual(await profile.unanswering(), found);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a passphrase is used as given, spaces and all; keys locked under a trimmed one (typed before 2026-11-28) still open with it typed as then', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sedfs-profile-spaces-'));
  try {
    const profile = new Profile(dir);
    const identity = generateIdentity();
    await profile.saveKeys('ann', identity, ' with spaces ');
    assert.equal((await profile.unlockKeys('ann', ' with spaces ')).signSecret, identity.signSecret);
    await assert.rejects(profile.unlockKeys('ann', 'with spaces'), { code: 'SEDFS_ERR_BAD_PASSPHRASE' });
    await profile.saveKeys('bo', identity, 'trimmed');
    assert.equal((await profile.unlockKeys('bo', '  trimmed ')).signSecret, identity.signSecret);
    await assert.rejects(profile.unlockKeys('bo', 'trimmed!'), { code: 'SEDFS_ERR_BAD_PASSPHRASE' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('pins saved by two commands at once are both kept, and a lock left by a command that died is taken over', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sedfs-profile-pins-'));
  try {
    const pin = (name: string) => ({ fingerprint: name, signKey: 's', boxKey: 'b', pinnedAt: 'now' });
    const a = new Profile(dir).pinsFor('c1');
    const b = new Profile(dir).pinsFor('c1');
    await Promise.all([a.savePin('bob', pin('bob')), b.savePin('carol', pin('carol'))]);
    assert.deepEqual(Object.keys(await a.pins()).sort(), ['bob', 'carol']);
    const profile = new Profile(dir);
    await Promise.all([
      profile.saveTrust('https://m1:1', { fingerprint: 'f1', ca: 'c1' }),
      new Profile(dir).saveTrust('https://m2:1', { fingerprint: 'f2', ca: 'c2' }),
    ]);
    assert.equal((await profile.trustFor('https://m1:1'))?.fingerprint, 'f1');
    assert.equal((await profile.trustFor('https://m2:1'))?.fingerprint, 'f2');
    // A lock file from a command killed long ago.
    const lock = join(dir, 'pins.json.lock');
    writeFileSync(lock, '');
    const { utimesSync } = await import('node:fs');
    utimesSync(lock, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    await a.savePin('dave', pin('dave'));
    assert.deepEqual(Object.keys(await a.pins()).sort(), ['bob', 'carol', 'dave']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("pins are kept by cluster: one cluster's user says nothing of the same name on another; a pin from before pins were kept by cluster stands for every cluster that has none of its own", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sedfs-profile-pins-'));
  try {
    const pin = (fingerprint: string) => ({ fingerprint, signKey: 's', boxKey: 'b', pinnedAt: 'now' });
    // As a profile from before 2026-11-29 kept them: by name alone.
    writeFileSync(join(dir, 'pins.json'), JSON.stringify({ alice: pin('old-alice'), bob: pin('old-bob') }));
    const profile = new Profile(dir);
    const one = profile.pinsFor('cluster-1');
    const two = profile.pinsFor('cluster-2');
    await one.savePin('alice', pin('alice-on-1'));
    await two.savePin('carol', pin('carol-on-2'));
    const fingerprints = async (store: typeof one) =>
      Object.fromEntries(Object.entries(await store.pins()).map(([user, p]) => [user, p.fingerprint]));
    assert.deepEqual(await fingerprints(one), { alice: 'alice-on-1', bob: 'old-bob' });
    assert.deepEqual(await fingerprints(two), { alice: 'old-alice', bob: 'old-bob', carol: 'carol-on-2' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the latest grant each user has seen of each share is remembered by cluster and by user, never moves back, and survives commands ending together', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sedfs-profile-seen-'));
  try {
    const one = new Profile(dir).pinsFor('cluster-1');
    await one.saveGrantsSeen('carol', { a: 20, b: 5 });
    await one.saveGrantsSeen('carol', { a: 10, c: 7 });
    // Another user of the same profile: a grant seen by carol says nothing of dave's.
    await one.saveGrantsSeen('dave', { a: 3 });
    await new Profile(dir).pinsFor('cluster-2').saveGrantsSeen('carol', { a: 1 });
    // Two commands ending together each keep what they saw (the file is changed in turns).
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        new Profile(dir).pinsFor('cluster-1').saveGrantsSeen('carol', { [`n${i}`]: i + 1 }),
      ),
    );
    const seen = (cluster: string, user: string) => new Profile(dir).pinsFor(cluster).grantsSeen(user);
    assert.deepEqual(await seen('cluster-1', 'carol'), {
      a: 20,
      b: 5,
      c: 7,
      ...Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`n${i}`, i + 1])),
    });
    assert.deepEqual(await seen('cluster-1', 'dave'), { a: 3 });
    assert.deepEqual(await seen('cluster-2', 'carol'), { a: 1 });
    assert.deepEqual(await seen('cluster-3', 'carol'), {});
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('on Windows a new profile folder is restricted with icacls before anything is written in it, as a server data folder is; one that existed is left as it is', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sedfs-profile-acl-'));
  try {
    const ran: string[][] = [];
    const run = async (file: string, args: string[]) => {
      ran.push([file, ...args]);
      return file.endsWith('whoami.exe') ? '"pc\\bob","S-1-5-21-1-2-3-1001"\r\n' : '';
    };
    const dir = join(root, 'profile');
    const profile = new Profile(dir, { platform: 'win32', run, syncDir: async () => undefined });
    await profile.saveConfig({ main: 'https://m:1' });
    await profile.saveKeys('ann', generateIdentity(), 'pass phrase');
    const icacls = ran.filter(([file]) => file?.endsWith('icacls.exe'));
    assert.equal(icacls.length, 2, 'restricted once, before the first file');
    assert.match(icacls[0]?.[1] as string, /[/\\]profile\.new-[0-9a-f]{8}$/);
    assert.deepEqual(icacls[0]?.slice(2), [
      '/grant:r',
      '*S-1-5-21-1-2-3-1001:(OI)(CI)F',
      '*S-1-5-18:(OI)(CI)F',
      '*S-1-5-32-544:(OI)(CI)F',
    ]);
    assert.deepEqual(icacls[1]?.slice(2), ['/inheritance:r']);
    assert.deepEqual((await profile.config()).main, 'https://m:1');
    ran.length = 0;
    await new Profile(dir, { platform: 'win32', run, syncDir: async () => undefined }).saveConfig({});
    assert.deepEqual(ran, [], 'a folder that existed keeps its permissions');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a profile's config.json saved by a person's editor with a byte-order mark (Notepad, PowerShell 5.1) or as UTF-16 is read, not refused as not JSON", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sedfs-profile-bom-'));
  try {
    const json = '{ "main": "https://main.example:7000" }';
    for (const bytes of [
      Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(json)]),
      Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(json, 'utf16le')]),
    ]) {
      writeFileSync(join(dir, 'config.json'), bytes);
      assert.deepEqual(await new Profile(dir).config(), { main: 'https://main.example:7000' });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

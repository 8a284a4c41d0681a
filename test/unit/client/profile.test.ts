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
    await profile.savePin('bob', { fingerprint: 'f', signKey: 's', boxKey: 'b', pinnedAt: 'now' });
    const session = { main: 'https://m:1', user: 'ann', userId: 'u1', token: 't', expiresAt: 1, identity };
    await profile.saveSession(session);
    assert.deepEqual(await profile.config(), { main: 'https://m:1' });
    assert.deepEqual(await profile.unlockKeys('ann', 'pass phrase'), identity);
    assert.equal((await profile.trustFor('https://m:1'))?.ca, 'CA');
    assert.equal((await profile.pins()).bob?.fingerprint, 'f');
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

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { syncDirWhereSupported } from '../../../src/common/files.js';
import { JoinToken } from '../../../src/main-server/join-token.js';
import { SedfsError } from '../../../src/protocol/errors.js';

describe('JoinToken', () => {
  let dir: string;
  const saved = () => readFileSync(join(dir, 'join-token'), 'utf8').trim();
  const joinFile = () => readFileSync(join(dir, 'join'), 'utf8').trim();
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sedfs-join-token-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('is made at first start and read back at the next, and matches only itself', async () => {
    const first = await JoinToken.load(dir, undefined);
    assert.ok(first.created);
    const again = await JoinToken.load(dir, undefined);
    assert.equal(again.created, false);
    assert.equal(again.current, first.current);
    assert.ok(again.matches(first.current));
    assert.equal(again.matches(''), false);
    assert.equal(again.matches(`${first.current}x`), false);
  });

  test('a rotation takes effect at once: the old token stops matching, both files name the new one', async () => {
    const token = await JoinToken.load(dir, undefined);
    await token.publish((t) => `sedfs://${t}@h:1#f`);
    const old = token.current;
    await token.rotate();
    assert.notEqual(token.current, old);
    assert.equal(token.matches(old), false);
    assert.ok(token.matches(token.current));
    assert.equal(saved(), token.current);
    assert.equal(joinFile(), `sedfs://${token.current}@h:1#f`);
    assert.equal((await JoinToken.load(dir, undefined)).current, token.current);
  });

  test('rotations at the same moment run one after another, so the files end with the token in force', async () => {
    const token = await JoinToken.load(dir, undefined);
    await token.publish((t) => `sedfs://${t}@h:1#f`);
    const seen = new Set<string>();
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        await token.rotate();
        seen.add(token.current);
      }),
    );
    assert.equal(seen.size, 8, 'each rotation made its own token');
    assert.equal(saved(), token.current);
    assert.equal(joinFile(), `sedfs://${token.current}@h:1#f`);
  });

  test('a token given by flag is not rotated (the next start would bring it back)', async () => {
    const token = await JoinToken.load(dir, 'from-flag');
    assert.equal(saved(), 'from-flag');
    await assert.rejects(
      token.rotate(),
      (err) => err instanceof SedfsError && err.code === 'SEDFS_ERR_JOIN_TOKEN_FIXED',
    );
    assert.equal(token.current, 'from-flag');
    assert.equal(saved(), 'from-flag');
  });

  test("rotations and join strings are saved through main's directory sync, so a folder that cannot fsync directories does not stop them", async () => {
    const asked: string[] = [];
    const told: string[] = [];
    const sync = syncDirWhereSupported(
      (_dir, code) => told.push(code),
      async (d) => {
        asked.push(d);
        throw Object.assign(new Error(`EINVAL: fsync '${d}'`), { code: 'EINVAL' });
      },
    );
    const token = await JoinToken.load(dir, undefined, sync);
    assert.equal(asked.length, 1, 'the first token');
    await token.publish((t) => `sedfs://${t}@h:1#f`);
    assert.equal(asked.length, 2, 'the join string');
    await token.rotate();
    assert.equal(asked.length, 4, 'the new token, then the join string made from it');
    assert.deepEqual(new Set(asked), new Set([dir]));
    assert.deepEqual(told, ['EINVAL']);
    assert.equal(saved(), token.current);
    assert.equal(joinFile(), `sedfs://${token.current}@h:1#f`);
  });
});

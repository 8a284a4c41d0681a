import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { me } from '../../src/client/account.js';
import type { InviteResponse } from '../../src/protocol/account-api.js';
import { CLI, runSedfs, spawnSedfs, TestCluster, waitFor } from '../helpers/cluster.js';
import { sedfsOnTerminal } from '../helpers/terminal.js';

describe('accounts, invites, edit, folders and the shell through the real CLI', () => {
  let cluster: TestCluster;
  let work: string;
  const as = (user: string, extra: Record<string, string> = {}) => ({
    SEDFS_HOME: join(work, user),
    SEDFS_MAIN: cluster.mainUrl,
    SEDFS_PASSPHRASE: `${user}-passphrase`,
    ...extra,
  });

  before(async () => {
    // Signup is closed here: after the first user, invites are needed.
    cluster = await TestCluster.start({ servers: 2, replicas: 2, openSignup: false });
    work = mkdtempSync(join(tmpdir(), 'sedfs-cli2-'));
  });
  after(async () => {
    await cluster?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('the first user is the admin; later ones need a one-time invite from an admin', async () => {
    // The cluster helper signed up its own user first, to watch the servers come up.
    const admin = await cluster.client();
    assert.equal((await me(admin)).admin, true);
    const refused = await runSedfs(['signup', 'bob'], as('bob'));
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /invite code/);
    const { code } = await admin.call<InviteResponse>('POST', '/v1/invites', {});
    const bob = await runSedfs(['signup', 'bob', '--invite', code], as('bob'));
    assert.equal(bob.code, 0, bob.stderr);
    assert.doesNotMatch(bob.stdout, /admin/);
    const again = await runSedfs(['signup', 'carl', '--invite', code], as('carl'));
    assert.match(again.stderr, /unknown, used or expired/);
    const notAdmin = await runSedfs(['invite'], as('bob'));
    assert.match(notAdmin.stderr, /only an admin/);
  });

  test('signup tells whether a name is taken only to someone holding a good invite, and keeps the invite then', async () => {
    const admin = await cluster.client();
    const stranger = (name: string, extra: string[] = []) =>
      runSedfs(['signup', name, ...extra], as(`s-${name}`));
    // bob exists, zed does not: without an invite, or with a bad one, they answer alike.
    for (const extra of [[], ['--invite', 'not-a-real-invite-code']]) {
      const taken = await stranger('bob', extra);
      const free = await stranger('zed', extra);
      assert.notEqual(taken.code, 0);
      assert.equal(taken.stderr, free.stderr);
      assert.match(taken.stderr, /invite/);
    }
    const { code } = await admin.call<InviteResponse>('POST', '/v1/invites', {});
    const taken = await stranger('bob', ['--invite', code]);
    assert.match(taken.stderr, /SEDFS_ERR_USER_EXISTS/);
    const zed = await stranger('zed', ['--invite', code]);
    assert.equal(zed.code, 0, `the invite was not used up by the refused signup: ${zed.stderr}`);
  });

  test('signup saves the keys before main hears of them, never replaces keys the profile holds, and leaves none main refused', async () => {
    const admin = await cluster.client();
    const invite = async () => (await admin.call<InviteResponse>('POST', '/v1/invites', {})).code;
    const code = await invite();
    // Keys that cannot be saved: main must not hear of the signup (the name and invite stay free).
    mkdirSync(join(work, 'dan'), { recursive: true });
    writeFileSync(join(work, 'dan', 'keys'), 'not a folder');
    const unsaved = await runSedfs(['signup', 'dan', '--invite', code], as('dan'));
    assert.notEqual(unsaved.code, 0);
    rmSync(join(work, 'dan', 'keys'));
    const saved = await runSedfs(['signup', 'dan', '--invite', code], as('dan'));
    assert.equal(saved.code, 0, `name and invite still free: ${saved.stderr}`);
    const keyFile = join(work, 'dan', 'keys', 'dan.json');
    const keys = readFileSync(keyFile, 'utf8');
    // Again from the same profile (as after a signup main took but did not answer): the
    // name is taken by these very keys, so it logs in with them.
    const again = await runSedfs(['signup', 'dan', '--invite', await invite()], as('dan'));
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /already signed up with these keys; logged in as dan/);
    // Under another passphrase: refused, the keys left as they were.
    const other = await runSedfs(['signup', 'dan'], as('dan', { SEDFS_PASSPHRASE: 'another one' }));
    assert.notEqual(other.code, 0);
    assert.match(other.stderr, /holds keys for dan already, locked under another passphrase/);
    assert.equal(readFileSync(keyFile, 'utf8'), keys);
    // Another profile's fresh keys for a taken name: refused by main, and not left behind.
    const taken = await runSedfs(['signup', 'dan', '--invite', await invite()], as('dan2'));
    assert.match(taken.stderr, /SEDFS_ERR_USER_EXISTS/);
    assert.equal(existsSync(join(work, 'dan2', 'keys', 'dan.json')), false);
    assert.equal((await runSedfs(['whoami'], as('dan'))).code, 0);
  });

  test('whoami shows the user and the same fingerprint signup printed', async () => {
    const who = await runSedfs(['whoami', '--json'], as('bob'));
    const info = JSON.parse(who.stdout) as { user: string; fingerprint: string; admin: boolean };
    assert.equal(info.user, 'bob');
    assert.equal(info.admin, false);
    assert.match(info.fingerprint, /^([0-9a-f]{4}:){7}[0-9a-f]{4}$/);
  });

  test('logout removes the session and the unlocked keys; login brings them back', async () => {
    assert.equal((await runSedfs(['logout'], as('bob'))).code, 0);
    assert.throws(() => readFileSync(join(work, 'bob', 'session.json')));
    assert.match((await runSedfs(['ls'], as('bob'))).stderr, /not logged in/);
    assert.equal((await runSedfs(['login', 'bob'], as('bob'))).code, 0);
    assert.equal((await runSedfs(['ls'], as('bob'))).code, 0);
  });

  test('passwd locks the keys under a new passphrase: login takes it and refuses the old; a wrong current one changes nothing', async () => {
    const keyFile = join(work, 'bob', 'keys', 'bob.json');
    const before = readFileSync(keyFile, 'utf8');
    const wrong = await runSedfs(
      ['passwd', 'bob'],
      as('bob', { SEDFS_PASSPHRASE: 'not-bobs', SEDFS_NEW_PASSPHRASE: 'bob-new-passphrase' }),
    );
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /SEDFS_ERR_BAD_PASSPHRASE/);
    assert.equal(readFileSync(keyFile, 'utf8'), before);
    const same = await runSedfs(['passwd', 'bob'], as('bob', { SEDFS_NEW_PASSPHRASE: 'bob-passphrase' }));
    assert.match(same.stderr, /the new passphrase is the current one/);

    const changed = await runSedfs(
      ['passwd', 'bob'],
      as('bob', { SEDFS_NEW_PASSPHRASE: 'bob-new-passphrase' }),
    );
    assert.equal(changed.code, 0, changed.stderr);
    assert.match(changed.stdout, /passphrase changed for bob/);
    // The session signed in before goes on.
    assert.equal((await runSedfs(['ls'], as('bob'))).code, 0);
    const old = await runSedfs(['login', 'bob'], as('bob'));
    assert.match(old.stderr, /SEDFS_ERR_BAD_PASSPHRASE/);
    const fresh = await runSedfs(['login', 'bob'], as('bob', { SEDFS_PASSPHRASE: 'bob-new-passphrase' }));
    assert.equal(fresh.code, 0, fresh.stderr);
    // Back to what the other tests use.
    const back = await runSedfs(
      ['passwd', 'bob'],
      as('bob', { SEDFS_PASSPHRASE: 'bob-new-passphrase', SEDFS_NEW_PASSPHRASE: 'bob-passphrase' }),
    );
    assert.equal(back.code, 0, back.stderr);
  });

  test('edit uploads what the editor changed, and nothing when the editor fails', async () => {
    assert.equal((await runSedfs(['write', '/e.txt', 'hello world'], as('bob'))).code, 0);
    // The editor is run without a shell: these words are its argv.
    const edited = await runSedfs(['edit', '/e.txt'], as('bob', { EDITOR: 'sed -i s/world/there/' }));
    assert.equal(edited.code, 0, edited.stderr);
    assert.equal((await runSedfs(['cat', '/e.txt'], as('bob'))).stdout, 'hello there\n');
    const failed = await runSedfs(['edit', '/e.txt'], as('bob', { EDITOR: 'false' }));
    assert.notEqual(failed.code, 0);
    assert.match(failed.stderr, /the editor exited with 1; nothing uploaded/);
    assert.equal((await runSedfs(['cat', '/e.txt'], as('bob'))).stdout, 'hello there\n');
  });

  test('an editor that saves and then fails (vi after an error, one killed) uploads nothing and keeps the edited copy', async () => {
    assert.equal((await runSedfs(['write', '/saved-then-failed.txt', 'before'], as('bob'))).code, 0);
    const editor = join(work, 'save-then-fail.sh');
    for (const [end, said] of [
      ['exit 1', 'exited with 1'],
      ['kill -TERM $$', 'was ended by SIGTERM'],
    ]) {
      writeFileSync(editor, `printf 'after' > "$1"\n${end}\n`);
      const res = await runSedfs(['edit', '/saved-then-failed.txt'], as('bob', { EDITOR: `sh ${editor}` }));
      assert.equal(res.code, 1, res.stderr);
      const kept = new RegExp(
        `the editor ${said}, so what it saved was not uploaded; your edited copy is kept at (\\S+) \\(check it, then upload it with: sedfs put \\1 /saved-then-failed\\.txt\\)`,
      ).exec(res.stderr)?.[1];
      assert.ok(kept, res.stderr);
      try {
        assert.equal(readFileSync(kept, 'utf8'), 'after');
        assert.equal((await runSedfs(['cat', '/saved-then-failed.txt'], as('bob'))).stdout, 'before\n');
      } finally {
        rmSync(dirname(kept), { recursive: true, force: true });
      }
    }
  });

  test('an editor that returns at once without a change (code without --wait) fails the edit, keeping the copy, with how to check and upload it', async () => {
    assert.equal((await runSedfs(['write', '/quick.txt', 'as it was'], as('bob'))).code, 0);
    // `true` returns at once, as `code` does once it has handed the file to its window.
    const res = await runSedfs(['edit', '/quick.txt'], as('bob', { EDITOR: 'true' }));
    // Not "no changes" with status 0: a script would take the edit for done.
    assert.equal(res.code, 1, res.stderr);
    assert.equal(res.stdout, '');
    const kept =
      /nothing was uploaded, and the copy is kept at (\S+)\. Once it is saved there, see what others saved meanwhile \(sedfs cat \/quick\.txt\), then upload it with: sedfs put \1 \/quick\.txt\./.exec(
        res.stderr,
      )?.[1];
    assert.ok(kept, res.stderr);
    try {
      assert.match(res.stderr, /make the editor wait: EDITOR="code --wait"/);
      // Saved later in the editor's window, then put back as the warning says.
      writeFileSync(kept, 'saved in the window');
      assert.equal((await runSedfs(['put', kept, '/quick.txt'], as('bob'))).code, 0);
      assert.equal((await runSedfs(['cat', '/quick.txt'], as('bob'))).stdout, 'saved in the window');
    } finally {
      rmSync(dirname(kept), { recursive: true, force: true });
    }
  });

  test('on a terminal, an editor that returned at once is waited for: Enter uploads what it saved since, Enter alone changes nothing', async () => {
    assert.equal((await runSedfs(['write', '/waited.txt', 'as it was'], as('bob'))).code, 0);
    const marks = mkdtempSync(join(work, 'quick-'));
    // Returns at once, leaving word of where the copy is, as a GUI editor's window would know.
    const editor = join(marks, 'editor.sh');
    writeFileSync(editor, `printf '%s' "$1" > "${marks}/at"\n`);
    for (const saves of [true, false]) {
      const edit = sedfsOnTerminal(['edit', '/waited.txt'], {
        ...process.env,
        ...as('bob', { EDITOR: `sh ${editor}` }),
      });
      await waitFor('the question', () => edit.shown().includes('press Enter here'), 20_000);
      const copy = readFileSync(join(marks, 'at'), 'utf8');
      if (saves) writeFileSync(copy, 'saved in the window');
      edit.type('\r');
      assert.equal(await edit.status, 0, edit.shown());
      assert.match(edit.shown(), saves ? /saved 19 bytes/ : /no changes/);
      assert.equal(existsSync(copy), false, 'the copy goes once the edit is done');
    }
    assert.equal((await runSedfs(['cat', '/waited.txt'], as('bob'))).stdout, 'saved in the window');
    // No answer (the terminal's input ends, Ctrl-D): the copy may still be open, so it stays.
    const unanswered = sedfsOnTerminal(['edit', '/waited.txt'], {
      ...process.env,
      ...as('bob', { EDITOR: `sh ${editor}` }),
    });
    await waitFor('the question', () => unanswered.shown().includes('press Enter here'), 20_000);
    unanswered.type('\x04');
    assert.equal(await unanswered.status, 1, unanswered.shown());
    const copy = readFileSync(join(marks, 'at'), 'utf8');
    assert.ok(existsSync(copy), 'the copy is kept');
    assert.match(unanswered.shown(), /nothing was uploaded, and the copy is kept at/);
    rmSync(dirname(copy), { recursive: true, force: true });
  });

  test('an edit whose upload fails keeps the edited copy and says where it is', async () => {
    assert.equal((await runSedfs(['write', '/kept.txt', 'draft one'], as('bob'))).code, 0);
    // The "editor" saves new text, then ends the session: the upload after it must fail.
    const editor = join(work, 'edit-then-logout.sh');
    writeFileSync(editor, `printf 'draft two' > "$1"\n"${process.execPath}" "${CLI}" logout\n`);
    const res = await runSedfs(['edit', '/kept.txt'], as('bob', { EDITOR: `sh ${editor}` }));
    assert.equal((await runSedfs(['login', 'bob'], as('bob'))).code, 0);
    assert.notEqual(res.code, 0);
    const kept = /your edited copy is kept at (\S+) \(upload it with: sedfs put /.exec(res.stderr)?.[1];
    assert.ok(kept, res.stderr);
    try {
      assert.equal(readFileSync(kept, 'utf8'), 'draft two');
      assert.equal((await runSedfs(['cat', '/kept.txt'], as('bob'))).stdout, 'draft one\n');
      assert.equal((await runSedfs(['put', kept, '/kept.txt'], as('bob'))).code, 0);
      assert.equal((await runSedfs(['cat', '/kept.txt'], as('bob'))).stdout, 'draft two');
    } finally {
      rmSync(dirname(kept), { recursive: true, force: true });
    }
  });

  test('an edit is not saved over a version that landed while the editor was open: the copy is kept and the clash said', async () => {
    assert.equal((await runSedfs(['write', '/raced.txt', 'first'], as('bob'))).code, 0);
    // Another version lands while the editor is open, as anyone's may once the edit's
    // lock has lapsed (a laptop asleep); bob's own write passes his lock meanwhile.
    const editor = join(work, 'edit-while-another-saves.sh');
    writeFileSync(editor, `"${process.execPath}" "${CLI}" write /raced.txt theirs\nprintf 'mine' > "$1"\n`);
    const res = await runSedfs(['edit', '/raced.txt'], as('bob', { EDITOR: `sh ${editor}` }));
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^sedfs: \/raced\.txt was changed or removed while you edited it \(/);
    assert.match(res.stderr, /\(SEDFS_ERR_VERSION_CONFLICT\)\n$/);
    const kept =
      /your edited copy is kept at (\S+) \(compare it with sedfs cat \/raced\.txt, then upload it/.exec(
        res.stderr,
      )?.[1];
    assert.ok(kept, res.stderr);
    try {
      assert.equal(readFileSync(kept, 'utf8'), 'mine');
      assert.equal((await runSedfs(['cat', '/raced.txt'], as('bob'))).stdout, 'theirs\n');
    } finally {
      rmSync(dirname(kept), { recursive: true, force: true });
    }
  });

  test('Ctrl-C while the editor is open goes to the editor: sedfs waits and uploads what it saves', async () => {
    assert.equal((await runSedfs(['write', '/ctrlc.txt', 'before'], as('bob'))).code, 0);
    const started = join(work, 'editor-started');
    const editor = join(work, 'slow-editor.sh');
    // Like vi, the editor itself ignores Ctrl-C; it saves once the test has sent it.
    writeFileSync(
      editor,
      `trap '' INT\n: > "${started}"\nwhile [ ! -e "${started}.sent" ]; do sleep 0.05; done\nprintf 'after' > "$1"\n`,
    );
    const proc = spawnSedfs(['edit', '/ctrlc.txt'], as('bob', { EDITOR: `sh ${editor}` }));
    await waitFor('the editor to start', () => existsSync(started), 20_000);
    proc.proc.kill('SIGINT');
    writeFileSync(`${started}.sent`, '');
    assert.equal(await proc.exited, 0, proc.output());
    assert.equal((await runSedfs(['cat', '/ctrlc.txt'], as('bob'))).stdout, 'after');
    assert.doesNotMatch(proc.output(), /kept at/);
  });

  test('an edit that fails before the editor opens (no temporary folder) says so, ends, and releases its lock', async () => {
    assert.equal((await runSedfs(['write', '/stuck.txt', 'v1'], as('bob'))).code, 0);
    const res = await runSedfs(
      ['edit', '/stuck.txt'],
      as('bob', { TMPDIR: join(work, 'no-such-folder'), EDITOR: 'true' }),
    );
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^sedfs: ENOENT: no such file or directory, mkdtemp/);
    // Had the edit's 120 s lock stayed, locking for a second would keep its later expiry.
    const relocked = await runSedfs(['lock', '/stuck.txt', '--ttl', '1'], as('bob'));
    const until = Date.parse(/until (\S+)/.exec(relocked.stdout)?.[1] ?? '');
    assert.ok(until < Date.now() + 60_000, relocked.stdout);
  });

  test('a signal while the editor is open keeps a copy the editor saved, and says where; an unchanged one goes', async () => {
    assert.equal((await runSedfs(['write', '/gui.txt', 'before'], as('bob'))).code, 0);
    for (const saves of [true, false]) {
      const marks = mkdtempSync(join(work, 'gui-'));
      const editor = join(marks, 'editor.sh');
      // Like `code --wait`: it saves (or not), tells where its file is, and stays open,
      // outliving the terminal whose closing ends sedfs, until the test closes it.
      writeFileSync(
        editor,
        `${saves ? `printf 'saved in the editor' > "$1"\n` : ''}printf '%s' "$1" > "${marks}/at.tmp"\nmv "${marks}/at.tmp" "${marks}/at"\nwhile [ ! -e "${marks}/close" ]; do sleep 0.05; done\n`,
      );
      const proc = spawnSedfs(['edit', '/gui.txt'], as('bob', { EDITOR: `sh ${editor}` }));
      const at = join(marks, 'at');
      const copy = await waitFor(
        'the editor to open',
        () => existsSync(at) && readFileSync(at, 'utf8'),
        20_000,
      );
      const ended = new Promise((res) => proc.proc.once('exit', res));
      proc.proc.kill('SIGHUP');
      // Its output closes only with the editor, which shares it: the editor is closed once sedfs is gone.
      await ended;
      writeFileSync(join(marks, 'close'), '');
      await proc.exited;
      if (saves) {
        assert.ok(proc.output().includes(`your edited copy is kept at ${copy}\n`), proc.output());
        assert.equal(readFileSync(copy, 'utf8'), 'saved in the editor');
        rmSync(dirname(copy), { recursive: true, force: true });
      } else {
        assert.equal(existsSync(dirname(copy)), false, proc.output());
      }
    }
  });

  test('edit leaves a lock the user took by hand in place', async () => {
    assert.equal((await runSedfs(['write', '/locked.txt', 'v1'], as('bob'))).code, 0);
    assert.equal((await runSedfs(['lock', '/locked.txt', '--ttl', '3600'], as('bob'))).code, 0);
    const edited = await runSedfs(['edit', '/locked.txt'], as('bob', { EDITOR: 'sed -i s/v1/v2/' }));
    assert.equal(edited.code, 0, edited.stderr);
    // Renewing for a second keeps the later expiry: the hour bob asked for is still there.
    const renewed = await runSedfs(['lock', '/locked.txt', '--ttl', '1'], as('bob'));
    const until = Date.parse(/until (\S+)/.exec(renewed.stdout)?.[1] ?? '');
    assert.ok(until > Date.now() + 3000_000, renewed.stdout);
    assert.equal((await runSedfs(['unlock', '/locked.txt'], as('bob'))).code, 0);
  });

  test('put -r and get -r copy a folder tree both ways; tree draws it', async () => {
    const src = join(work, 'src');
    mkdirSync(join(src, 'sub', 'deeper'), { recursive: true });
    writeFileSync(join(src, 'a.txt'), 'A');
    writeFileSync(join(src, 'sub', 'b.txt'), 'B');
    writeFileSync(join(src, 'sub', 'deeper', 'c.txt'), 'C');
    const first = await runSedfs(['put', '-r', src, '/copy'], as('bob'));
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, 'uploaded 3 file(s) to /copy\n');
    // Run again into the folder it made (-T: not into /copy/src), with one more file and
    // one changed in place at the same size: only those two go up.
    writeFileSync(join(src, 'sub', 'e.txt'), 'E');
    writeFileSync(join(src, 'a.txt'), 'Z');
    const again = await runSedfs(['put', '-r', '--skip-existing', '-T', src, '/copy'], as('bob'));
    assert.equal(again.stdout, 'uploaded 2 file(s) to /copy; left 2 already there, unchanged\n');
    assert.equal((await runSedfs(['cat', '/copy/a.txt'], as('bob'))).stdout, 'Z');
    // A file whose time says it was not modified since is left, whatever it holds.
    writeFileSync(join(src, 'sub', 'b.txt'), 'Y');
    utimesSync(join(src, 'sub', 'b.txt'), new Date(2001, 0, 1), new Date(2001, 0, 1));
    const third = await runSedfs(['put', '-r', '--skip-existing', '-T', src, '/copy'], as('bob'));
    assert.equal(third.stdout, 'uploaded 0 file(s) to /copy; left 4 already there, unchanged\n');
    assert.equal((await runSedfs(['cat', '/copy/sub/b.txt'], as('bob'))).stdout, 'B');
    writeFileSync(join(src, 'sub', 'b.txt'), 'B');
    assert.match((await runSedfs(['put', '-r', '-T', src], as('bob'))).stderr, /-T needs REMOTE/);
    const tree = await runSedfs(['tree', '/copy'], as('bob'));
    assert.equal(
      tree.stdout,
      'copy/\n├── a.txt\n└── sub/\n    ├── b.txt\n    ├── deeper/\n    │   └── c.txt\n    └── e.txt\n',
    );
    const dst = join(work, 'dst');
    assert.equal((await runSedfs(['get', '-r', '/copy', dst], as('bob'))).code, 0);
    assert.equal(readFileSync(join(dst, 'sub', 'deeper', 'c.txt'), 'utf8'), 'C');
    assert.match((await runSedfs(['put', src, '/x'], as('bob'))).stderr, /is a folder \(use -r\)/);
  });

  test('put -r says which links it skips, and uploads the rest', async () => {
    const src = join(work, 'with-links');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'real.txt'), 'R');
    symlinkSync(join(src, 'real.txt'), join(src, 'link.txt'));
    symlinkSync(src, join(src, 'loop'));
    const put = await runSedfs(['put', '-r', src, '/links'], as('bob'));
    assert.equal(put.code, 0, put.stderr);
    for (const name of ['link.txt', 'loop'])
      assert.match(put.stderr, new RegExp(`skipped .*${name}: not a regular file or folder`));
    const ls = await runSedfs(['ls', '/links'], as('bob'));
    assert.match(ls.stdout, /real\.txt/);
    assert.doesNotMatch(ls.stdout, /link\.txt|loop/);
    // ls -l, typed from habit, lists the same.
    assert.equal((await runSedfs(['ls', '-l', '/links'], as('bob'))).stdout, ls.stdout);
  });

  test('put -r of more small files than one batch holds lands every file with its bytes', async () => {
    const src = join(work, 'many');
    mkdirSync(src);
    // 520 files: two batches of `put -r`, the second read while the first is sent.
    for (let i = 0; i < 520; i++) writeFileSync(join(src, `f${i}`), `file ${i}\n`);
    const put = await runSedfs(['put', '-r', src, '/many'], as('bob'));
    assert.equal(put.code, 0, put.stderr);
    const listed = JSON.parse((await runSedfs(['ls', '--json', '/many'], as('bob'))).stdout) as {
      entries: { name: string }[];
    };
    assert.equal(listed.entries.length, 520);
    for (const i of [0, 499, 500, 519])
      assert.equal((await runSedfs(['cat', `/many/f${i}`], as('bob'))).stdout, `file ${i}\n`);
  });

  test('the shell keeps a working folder and runs the same verbs', async () => {
    const proc = spawn(process.execPath, [CLI, 'shell'], { env: { ...process.env, ...as('bob') } });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    let err = '';
    proc.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    proc.stdin.end(
      [
        'mkdir notes',
        'cd notes',
        'write "a b.txt" hi',
        'pwd',
        'ls --json',
        'cat "a b.txt"',
        'cat nope',
        'cd /',
        'exit',
        '',
      ].join('\n'),
    );
    const code = await new Promise((res) => proc.on('close', res));
    assert.equal(code, 0);
    assert.match(out, /\/notes\n/);
    assert.match(out, /"name":"a b.txt"/);
    assert.match(out, /hi\n/);
    assert.match(err, /no such file or folder: \/notes\/nope/);
  });

  test('on a terminal, a passphrase typed at login in the shell is neither shown nor run as a command', async () => {
    const { SEDFS_PASSPHRASE: _typed, ...env } = { ...process.env, ...as('bob') };
    const shell = sedfsOnTerminal(['shell'], env);
    await waitFor('the prompt', () => shell.shown().includes('sedfs:/> '), 20_000);
    shell.type('login bob\r');
    await waitFor('the passphrase prompt', () => shell.shown().includes('Passphrase: '), 20_000);
    shell.type('bob-passphrase\r');
    await waitFor('the login', () => shell.shown().includes('logged in as bob'), 20_000);
    shell.type('pwd\r');
    await waitFor('pwd', () => /\r\n\/\r\n/.test(shell.shown()), 20_000);
    shell.type('exit\r');
    assert.equal(await shell.status, 0, shell.shown());
    assert.doesNotMatch(shell.shown(), /bob-passphrase/);
    assert.doesNotMatch(shell.shown(), /unknown command/);
  });

  test('on a terminal, Ctrl-C while a put runs in the shell ends the shell as Ctrl-C does (130) and commits nothing', async () => {
    const big = join(work, 'interrupted.bin');
    // Long enough to be under way when the progress bar first shows.
    writeFileSync(big, Buffer.alloc(256 * 1024 * 1024, 1));
    try {
      const shell = sedfsOnTerminal(['shell'], { ...process.env, ...as('bob') });
      await waitFor('the prompt', () => shell.shown().includes('sedfs:/> '), 20_000);
      shell.type(`put ${big} /interrupted.bin\r`);
      await waitFor('the put under way', () => /put interrupted\.bin .*MiB \//.test(shell.shown()), 20_000);
      shell.type('\x03');
      assert.equal(await shell.status, 130, shell.shown());
      assert.match((await runSedfs(['ls', '/interrupted.bin'], as('bob'))).stderr, /no such file or folder/);
    } finally {
      rmSync(big, { force: true });
    }
  });

  test('on a terminal, an editor started by edit in the shell gets every key typed, and what it saved is uploaded', async () => {
    assert.equal((await runSedfs(['write', '/typed.txt', 'before'], as('bob'))).code, 0);
    // An editor reading a line from its terminal, as a real one reads keys.
    const editor = join(work, 'terminal-editor.sh');
    writeFileSync(
      editor,
      `printf 'EDITOR READY\\n' > /dev/tty\nIFS= read -r line < /dev/tty\nprintf '%s' "$line" > "$1"\n`,
    );
    const shell = sedfsOnTerminal(['shell'], { ...process.env, ...as('bob', { EDITOR: `sh ${editor}` }) });
    await waitFor('the prompt', () => shell.shown().includes('sedfs:/> '), 20_000);
    shell.type('edit /typed.txt\r');
    await waitFor('the editor', () => shell.shown().includes('EDITOR READY'), 20_000);
    // Typed a key at a time: each must reach the editor, none the shell.
    for (const key of '0123456789') {
      shell.type(key);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    shell.type('\r');
    await waitFor('the upload', () => shell.shown().includes('saved 10 bytes'), 20_000);
    shell.type('exit\r');
    assert.equal(await shell.status, 0, shell.shown());
    assert.doesNotMatch(shell.shown(), /unknown command/);
    assert.equal((await runSedfs(['cat', '/typed.txt'], as('bob'))).stdout, '0123456789');
  });
});

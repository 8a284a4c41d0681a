import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  constants as fsConstants,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { CLI, runSedfs, spawnSedfs, TestCluster, waitFor } from '../helpers/cluster.js';
import { seededBytes } from '../helpers/seeded.js';
import { sedfsOnTerminal } from '../helpers/terminal.js';

describe('the sedfs CLI against a real cluster', () => {
  let cluster: TestCluster;
  let work: string;
  let env: Record<string, string>;
  const sedfs = (...args: string[]) => runSedfs(args, env);

  /** A failure is one clear line on stderr and a non-zero exit. */
  function assertOneLineError(res: { code: number | null; stderr: string }, pattern: RegExp): void {
    assert.notEqual(res.code, 0);
    const lines = res.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, res.stderr);
    assert.match(lines[0] as string, pattern);
  }

  /** Runs `sedfs ARGS` (with `stdin`), reading its stdout until `bytes` came, then closing it as `head` does. */
  async function readingOnly(
    bytes: number,
    args: string[],
    stdin?: string,
  ): Promise<{ code: number | null; stderr: string }> {
    const proc = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let got = 0;
    proc.stdout?.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= bytes) proc.stdout?.destroy();
    });
    let stderr = '';
    proc.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    proc.stdin?.end(stdin);
    const code = await new Promise<number | null>((res) => proc.on('close', (c) => res(c)));
    return { code, stderr };
  }

  before(async () => {
    cluster = await TestCluster.start({ servers: 2, replicas: 2 });
    work = mkdtempSync(join(tmpdir(), 'sedfs-cli-'));
    env = {
      SEDFS_HOME: join(work, 'profile'),
      SEDFS_MAIN: cluster.mainUrl,
      SEDFS_PASSPHRASE: 'correct horse',
    };
    const res = await sedfs('signup', 'carol');
    assert.equal(res.code, 0, res.stderr);
  });
  after(async () => {
    await cluster?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('put then get round-trips a file byte-identical, and ls --json (or sedfs --json ls) lists it', async () => {
    const data = seededBytes(11, 300_000);
    writeFileSync(join(work, 'in.bin'), data);
    assert.equal((await sedfs('mkdir', '-p', '/docs/x')).code, 0);
    assert.equal((await sedfs('put', join(work, 'in.bin'), '/docs/')).code, 0);
    const got = await sedfs('get', '/docs/in.bin', join(work, 'out.bin'));
    assert.equal(got.code, 0, got.stderr);
    assert.deepEqual(readFileSync(join(work, 'out.bin')), data);
    const ls = await sedfs('ls', '/docs', '--json');
    const names = (JSON.parse(ls.stdout).entries as { name: string; size: number }[]).map((e) => [
      e.name,
      e.size,
    ]);
    assert.deepEqual(names, [
      ['in.bin', 300_000],
      ['x', 0],
    ]);
    // --json is a global option too, before the verb, as the CLI contract has it.
    const before = await sedfs('--json', 'ls', '/docs');
    assert.equal(before.code, 0, before.stderr);
    assert.deepEqual(JSON.parse(before.stdout), JSON.parse(ls.stdout));
  });

  test('write and write --append make a message file that cat prints', async () => {
    assert.equal((await sedfs('write', '/note.txt', 'hello')).code, 0);
    assert.equal((await sedfs('write', '/note.txt', 'world', '--append')).code, 0);
    assert.equal((await sedfs('cat', '/note.txt')).stdout, 'hello\nworld\n');
  });

  test('appends running at once all land: none writes over another', async () => {
    assert.equal((await sedfs('write', '/log.txt', 'start')).code, 0);
    const lines = Array.from({ length: 6 }, (_, i) => `line ${i}`);
    const runs = await Promise.all(lines.map((l) => sedfs('write', '/log.txt', l, '--append')));
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    const got = (await sedfs('cat', '/log.txt')).stdout.trimEnd().split('\n');
    assert.equal(got[0], 'start');
    assert.deepEqual(got.slice(1).sort(), lines);
  });

  test('cat into a pipe whose reader stops early (| head) ends quietly, and in the shell the next line runs', async () => {
    const local = join(work, 'cat-big.bin');
    // Well over what a pipe holds: cat is still writing when the reader goes.
    writeFileSync(local, seededBytes(13, 4 * 1024 * 1024));
    assert.equal((await sedfs('put', local, '/cat-big.bin')).code, 0);
    const alone = await readingOnly(100_000, ['cat', '/cat-big.bin']);
    assert.deepEqual(alone, { code: 0, stderr: '' });
    const shell = await readingOnly(100_000, ['shell'], 'cat /cat-big.bin\nwrite /after-pipe.txt done\n');
    assert.deepEqual(shell, { code: 0, stderr: '' });
    assert.equal((await sedfs('cat', '/after-pipe.txt')).stdout, 'done\n');
  });

  test('any listing into a pipe whose reader stops early (ls | head) ends quietly', async () => {
    const many = join(work, 'many');
    mkdirSync(many);
    // Well over what a pipe holds, listed.
    for (let i = 0; i < 1500; i++)
      writeFileSync(
        join(many, `${'a-file-with-a-name-long-enough-that-a-listing-fills-a-pipe-'.repeat(2)}${i}.txt`),
        'x',
      );
    assert.equal((await sedfs('put', '-r', many, '/many')).code, 0);
    assert.deepEqual(await readingOnly(1000, ['ls', '/many']), { code: 0, stderr: '' });
  });

  test('cat onto a full disk fails with one clear line', async () => {
    const full = openSync('/dev/full', 'w');
    try {
      const proc = spawn(process.execPath, [CLI, 'cat', '/cat-big.bin'], {
        env: { ...process.env, ...env },
        stdio: ['ignore', full, 'pipe'],
      });
      let stderr = '';
      proc.stderr?.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      const code = await new Promise<number | null>((res) => proc.on('close', (c) => res(c)));
      assertOneLineError({ code, stderr }, /^sedfs: cannot write stdout: ENOSPC/);
    } finally {
      closeSync(full);
    }
  });

  test('an unknown path, a path through a file, and rm of a non-empty folder are one clear line each', async () => {
    assertOneLineError(await sedfs('cat', '/nope.txt'), /no such file or folder: \/nope.txt/);
    assertOneLineError(await sedfs('ls', '/note.txt/inside'), /is a file, not a folder/);
    assertOneLineError(await sedfs('rm', '/docs'), /not empty \(use -r\)/);
    assert.equal((await sedfs('rm', '-r', '/docs')).code, 0);
  });

  test('a remote path ending in / names a folder: a file is put or moved into it, never made a file of that name', async () => {
    writeFileSync(join(work, 'a.txt'), 'first');
    assertOneLineError(
      await sedfs('put', join(work, 'a.txt'), '/newdir/'),
      /no such folder: \/newdir \(SEDFS_ERR_NOT_FOUND\)$/,
    );
    assert.equal((await sedfs('write', '/plain.txt', 'x')).code, 0);
    assertOneLineError(
      await sedfs('mv', '/plain.txt', '/nodir/'),
      /no such folder: \/nodir \(SEDFS_ERR_NOT_FOUND\)$/,
    );
    assertOneLineError(
      await sedfs('put', join(work, 'a.txt'), '/plain.txt/'),
      /\/plain\.txt is a file, not a folder \(SEDFS_ERR_NOT_A_FOLDER\)$/,
    );
    assert.equal((await sedfs('cat', '/newdir')).code, 1, 'nothing was made at /newdir');
    assert.equal((await sedfs('cat', '/plain.txt')).stdout, 'x\n', 'nothing was moved or replaced');
    // Once it exists, into it; a folder may still be renamed with a trailing /.
    assert.equal((await sedfs('mkdir', '/newdir')).code, 0);
    assert.equal((await sedfs('put', join(work, 'a.txt'), '/newdir/')).code, 0);
    assert.equal((await sedfs('cat', '/newdir/a.txt')).stdout, 'first');
    assert.equal((await sedfs('mv', '/newdir', '/renamed/')).code, 0);
    assert.equal((await sedfs('cat', '/renamed/a.txt')).stdout, 'first');
    assert.equal((await sedfs('rm', '-r', '/renamed')).code, 0);
    assert.equal((await sedfs('rm', '/plain.txt')).code, 0);
  });

  test('get into a local path ending in / makes that folder and puts the file in it', async () => {
    assert.equal((await sedfs('write', '/into.txt', 'inside')).code, 0);
    const folder = join(work, 'made-by-get');
    const got = await sedfs('get', '/into.txt', `${folder}/`);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(readFileSync(join(folder, 'into.txt'), 'utf8'), 'inside\n');
  });

  test('a usage error (an unknown verb or option, a missing argument) is one clear line, not the whole help', async () => {
    assertOneLineError(
      await sedfs('put'),
      /^error: missing required argument 'local' \(sedfs --help, or sedfs VERB --help, shows the usage\)$/,
    );
    assertOneLineError(await sedfs('ls', '--bogus'), /^error: unknown option '--bogus' \(sedfs --help/);
    assertOneLineError(
      await sedfs('lx'),
      /^error: unknown command 'lx' \(Did you mean ls\?\) \(sedfs --help/,
    );
  });

  test('a failed get leaves no local file behind', async () => {
    const target = join(work, 'never.bin');
    assertOneLineError(await sedfs('get', '/missing.bin', target), /no such file/);
    assert.equal(existsSync(target), false);
  });

  test('a get whose local file cannot be made is one clear line, not a crash', async () => {
    assert.equal((await sedfs('write', '/small.txt', 'hello')).code, 0);
    // /proc takes no new files, even from root.
    assertOneLineError(
      await sedfs('get', '/small.txt', '/proc/small.txt'),
      /^sedfs: cannot write \/proc\/small\.txt: ENOENT/,
    );
  });

  test('a file with a 255-byte name downloads with get and with get -r', async () => {
    // As long as a name may be: a temporary name made from it would be longer still.
    const long = `${'n'.repeat(251)}.txt`;
    assert.equal((await sedfs('mkdir', '/long')).code, 0);
    for (const name of [long, 'a.txt', 'b.txt'])
      assert.equal((await sedfs('write', `/long/${name}`, name.slice(0, 5))).code, 0);
    const into = mkdtempSync(join(work, 'long-'));
    const one = await sedfs('get', `/long/${long}`, into);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(readFileSync(join(into, long), 'utf8'), 'nnnnn\n');
    const tree = await sedfs('get', '-r', '/long', join(into, 'tree'));
    assert.equal(tree.code, 0, tree.stderr);
    assert.deepEqual(readdirSync(join(into, 'tree')).sort(), ['a.txt', 'b.txt', long]);
    assert.equal(readFileSync(join(into, 'tree', 'b.txt'), 'utf8'), 'b.txt\n');
  });

  test('a get interrupted with Ctrl-C or SIGTERM leaves no partial plaintext behind', async () => {
    const big = join(work, 'interrupt.bin');
    writeFileSync(big, seededBytes(12, 256 * 1024 * 1024));
    assert.equal((await sedfs('put', big, '/interrupt.bin')).code, 0);
    rmSync(big);
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      const into = mkdtempSync(join(work, 'interrupted-'));
      const proc = spawnSedfs(['get', '/interrupt.bin', join(into, 'out.bin')], env);
      await waitFor(
        'the partial file',
        () => readdirSync(into).find((f) => f.endsWith('.sedfs-part')),
        20_000,
      ).catch(async (err: Error) => {
        await proc.exited;
        throw new Error(`${err.message}; the get printed: ${proc.output()}; left: ${readdirSync(into)}`);
      });
      proc.proc.kill(signal);
      await proc.exited;
      assert.equal(proc.proc.signalCode, signal, 'it ends as the signal ends it');
      assert.deepEqual(
        readdirSync(into),
        [],
        `nothing left after ${signal}; the get printed: ${proc.output()}`,
      );
    }
  });

  test('a put interrupted with Ctrl-C mid-transfer ends by the signal (status 130 in a shell) and commits nothing', async () => {
    // A FIFO the test holds open: the put reads what came and waits for more, mid-upload.
    const fifo = join(work, 'endless.fifo');
    execFileSync('mkfifo', [fifo]);
    const proc = spawnSedfs(['put', fifo, '/endless.bin'], env);
    // Opening a FIFO's writing end without blocking fails (ENXIO) until its reader has it open.
    const writer = await waitFor(
      'the put to open its source',
      () => {
        try {
          return openSync(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
        } catch {
          return undefined;
        }
      },
      20_000,
    );
    try {
      writeSync(writer, seededBytes(13, 4096));
      proc.proc.kill('SIGINT');
      await proc.exited;
    } finally {
      closeSync(writer);
    }
    assert.equal(
      proc.proc.signalCode,
      'SIGINT',
      `it ends as Ctrl-C ends a command; it printed: ${proc.output()}`,
    );
    assert.doesNotMatch((await sedfs('ls', '/')).stdout, /endless/);
  });

  test('Ctrl-C at the passphrase prompt ends the command as Ctrl-C does (status 130), not as a failure (1)', async () => {
    // The prompt needs a terminal. Ctrl-C is typed there as a key, as a user would.
    const { SEDFS_PASSPHRASE: _unset, ...withoutPassphrase } = { ...process.env, ...env };
    const signup = sedfsOnTerminal(['signup', 'zed', '--main', 'http://127.0.0.1:1'], {
      ...withoutPassphrase,
      SEDFS_HOME: join(work, 'prompt-profile'),
    });
    await waitFor('the passphrase prompt', () => signup.shown().includes('Passphrase: '), 20_000);
    signup.type('\x03');
    assert.equal(await signup.status, 130, signup.shown());
    const shown = signup.shown();
    assert.doesNotMatch(shown, /sedfs: /, 'no error line: the user asked for it');
  });

  test('names with terminal control sequences are listed with them shown as ?, never sent raw', async () => {
    // Anyone who can write to a folder shared with you can choose such a name.
    const name = 'evil\x1b]0;pwned\x07\x1b[2K\u202etxt.exe\npayroll.xlsx  file  9 B';
    assert.equal((await sedfs('write', `/${name}`, 'x')).code, 0);
    for (const args of [
      ['ls', '/'],
      ['tree', '/'],
      ['cat', `/${name}/inner`],
    ]) {
      const res = await sedfs(...args);
      const shown = res.stdout + res.stderr;
      for (const raw of ['\x1b', '\x07', '\u202e']) assert.ok(!shown.includes(raw), args.join(' '));
      assert.ok(
        shown.includes('evil?]0;pwned??[2K?txt.exe?payroll.xlsx  file  9 B'),
        `${args.join(' ')}: ${shown}`,
      );
      assert.ok(!/^payroll/m.test(shown), `${args.join(' ')}: no row of its own`);
    }
    // JSON keeps the real name, escaped as JSON escapes it.
    const json = await sedfs('ls', '--json', '/');
    assert.ok((JSON.parse(json.stdout).entries as { name: string }[]).some((e) => e.name === name));
    assert.equal((await sedfs('rm', `/${name}`)).code, 0);
  });

  test('a wrong passphrase is one clear error and changes nothing', async () => {
    const before = readFileSync(join(work, 'profile', 'session.json'));
    const res = await runSedfs(['login', 'carol'], { ...env, SEDFS_PASSPHRASE: 'wrong' });
    assertOneLineError(res, /wrong passphrase \(SEDFS_ERR_BAD_PASSPHRASE\)/);
    assert.deepEqual(readFileSync(join(work, 'profile', 'session.json')), before);
  });

  test('without a session, every verb is refused with a clear line', async () => {
    const other = { ...env, SEDFS_HOME: join(work, 'empty-profile') };
    assertOneLineError(await runSedfs(['ls'], other), /not logged in/);
    assertOneLineError(await runSedfs(['servers'], other), /not logged in/);
  });

  test('a session main has expired is refused with a clear line', async () => {
    assert.equal((await sedfs('login', 'carol')).code, 0);
    // Expire every session on main's side, as the clock would.
    const db = new Database(join(cluster.mainData, 'main.db'));
    db.prepare('UPDATE sessions SET expires_at = 1').run();
    db.close();
    assertOneLineError(await sedfs('ls'), /session has expired or ended: log in again/);
    assert.equal((await sedfs('login', 'carol')).code, 0);
    assert.equal((await sedfs('ls')).code, 0);
  });

  test('every verb has help with an example', async () => {
    const verbs = [
      'main',
      'fileserver',
      'dev',
      'servers',
      'signup',
      'login',
      'logout',
      'whoami',
      'invite',
      'ls',
      'tree',
    ]
      .concat([
        'mkdir',
        'put',
        'get',
        'cat',
        'write',
        'rm',
        'mv',
        'edit',
        'share',
        'unshare',
        'perms',
        'pin',
        'lock',
        'unlock',
        'check',
        'admin',
      ])
      .concat(['shell']);
    const results = await Promise.all(verbs.map((verb) => sedfs(verb, '--help')));
    results.forEach((res, i) => {
      assert.equal(res.code, 0, verbs[i]);
      assert.match(res.stdout, /Example/, verbs[i]);
    });
  });
});

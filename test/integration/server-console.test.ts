import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { CLI, waitFor } from '../helpers/cluster.js';

test('a server whose console nobody reads goes on serving, and its log file keeps every line', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sedfs-console-'));
  const data = join(root, 'main');
  // stdout is a pipe this test never reads: it is full after ~64 KiB of console lines.
  const main = spawn(
    process.execPath,
    [CLI, 'main', '--host', '127.0.0.1', '--port', '0', '--data', data, '--insecure-http'],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const agent = new Agent({ connections: 8 });
  try {
    const url = await waitFor('main to listen', () =>
      existsSync(join(data, 'main.addr')) ? readFileSync(join(data, 'main.addr'), 'utf8').trim() : undefined,
    );
    // Every refused request is a warning line, ~150 bytes on the console: 8,000 are ~1.2 MiB,
    // past what waits for the console before lines are dropped.
    const refused = 8000;
    for (let sent = 0; sent < refused; sent += 100) {
      await Promise.all(
        Array.from({ length: 100 }, async () => {
          const res = await request(`${url}/v1/me`, { dispatcher: agent, headersTimeout: 10_000 });
          await res.body.dump();
          assert.equal(res.statusCode, 401);
        }),
      );
    }
    const res = await request(`${url}/v1/me`, { dispatcher: agent, headersTimeout: 5_000 });
    await res.body.dump();
    assert.equal(res.statusCode, 401, 'main still answers once its console is full');

    const logged = await waitFor('every refusal in the log file', () => {
      const lines = readFileSync(join(data, 'main.log'), 'utf8').split('\n');
      const n = lines.filter((l) => l.includes('"request refused"')).length;
      return n >= refused + 1 ? n : undefined;
    });
    assert.equal(logged, refused + 1);

    // Stopping gives up on the full pipe instead of waiting for a reader.
    await agent.close();
    const exited = new Promise<number | null>((resolve) => main.once('exit', (code) => resolve(code)));
    main.kill('SIGTERM');
    const code = await Promise.race([exited, sleep(10_000, 'still running', { ref: false })]);
    assert.equal(code, 0, `main, asked to stop with its console full: ${code}`);
  } finally {
    await agent.destroy();
    main.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  }
});

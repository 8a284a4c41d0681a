import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { isStorableName } from '../client/paths.js';
import { lock, unlock } from '../client/sharing.js';
import { SedfsError } from '../protocol/errors.js';
import type { VerbEnv } from './env.js';
import { readSmall } from './transfer.js';

/** `$VISUAL`, `$EDITOR`, or the platform's plain editor; split into words, never run through a shell. */
export function editorCommand(env: NodeJS.ProcessEnv = process.env, platform = process.platform): string[] {
  const configured = (env.VISUAL || env.EDITOR || '').trim();
  if (configured) return configured.split(/\s+/);
  return platform === 'win32' ? ['notepad'] : ['vi'];
}

export function registerEditCommand(program: Command, env: VerbEnv): void {
  program
    .command('edit <remote>')
    .description('open a file in your editor; it is uploaded if you changed it')
    .addHelpText(
      'after',
      `
The file is locked, decrypted to a private temporary folder, opened with $VISUAL,
$EDITOR (%EDITOR% on Windows) or vi/notepad, uploaded as a new version if it changed;
then the temporary copy is deleted and the lock released.

Examples:
  sedfs edit /notes.txt
  EDITOR="code --wait" sedfs edit /todo.md`,
    )
    .action((remote: string, _opts: unknown, cmd: Command) =>
      env.run(async () => {
        const fs = await env.fileSystem(cmd);
        const existing = await fs.find(remote, env.cwd);
        if (existing?.entry.kind === 'dir')
          throw new SedfsError('SEDFS_ERR_IS_A_FOLDER', `${existing.path} is a folder`);
        // Hold the file's lock while the editor is open, renewing the lease as it runs.
        const LEASE_S = 120;
        if (existing) await lock(fs, existing.path, LEASE_S);
        const renew = existing
          ? setInterval(
              () => void lock(fs, existing.path, LEASE_S).catch(() => undefined),
              (LEASE_S / 3) * 1000,
            )
          : undefined;
        const before = existing ? await readSmall(fs, remote, env.cwd) : Buffer.alloc(0);
        const dir = await mkdtemp(join(tmpdir(), 'sedfs-edit-'));
        try {
          // The editor shows the file's own name, unless it cannot be a file name here.
          const name = existing?.name ?? remote.split('/').pop() ?? '';
          const file = join(dir, isStorableName(name) ? name : 'file');
          await writeFile(file, before, { mode: 0o600 });
          const [bin, ...args] = editorCommand();
          const code = await new Promise<number | null>((resolve, reject) => {
            const child = spawn(bin as string, [...args, file], { stdio: 'inherit' });
            child.on('error', reject);
            child.on('exit', resolve);
          });
          if (code !== 0)
            throw new SedfsError('SEDFS_ERR_BAD_REQUEST', `the editor exited with ${code}; nothing uploaded`);
          const after = await readFile(file);
          if (after.equals(before)) {
            env.out('no changes');
            return;
          }
          await fs.put([after], remote, {}, env.cwd);
          env.out(`saved ${after.length} bytes`);
        } finally {
          clearInterval(renew);
          if (existing) await unlock(fs, existing.path).catch(() => undefined);
          await rm(dir, { recursive: true, force: true });
        }
      }),
    );
}

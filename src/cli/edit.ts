import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import type { FileSystem } from '../client/file-system.js';
import { isStorableName } from '../client/paths.js';
import { lock, unlock } from '../client/sharing.js';
import { SedfsError } from '../protocol/errors.js';
import type { VerbEnv } from './env.js';
import { ignoringCtrlC, onInterrupt } from './interrupt.js';
import { isMintty, thisTerminal } from './prompt.js';
import { commandWord } from './shell-hints.js';
import { readSmall } from './transfer.js';

/**
 * How to start the editor on `file`: `$VISUAL`, `$EDITOR`, or the platform's plain
 * editor. Elsewhere than Windows the setting is split into words and run without a
 * shell, so nothing in it is interpreted. On Windows editors are often `.cmd` scripts
 * (`code`, `subl`), which only cmd.exe can start, and their paths hold spaces, so the
 * setting goes to cmd.exe as the user wrote it, with the file quoted after it; the
 * file's name is ours (see editFileName), so it holds nothing cmd.exe would act on.
 */
export function editorLaunch(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
): { command: string; args: string[]; windowsVerbatimArguments: boolean } {
  const configured = (env.VISUAL || env.EDITOR || '').trim();
  if (platform === 'win32') {
    if (!configured) return { command: 'notepad.exe', args: [file], windowsVerbatimArguments: false };
    return {
      command: env.ComSpec || 'cmd.exe',
      args: ['/d', '/s', '/c', `"${configured} "${file}""`],
      windowsVerbatimArguments: true,
    };
  }
  const [command, ...args] = configured ? configured.split(/\s+/) : ['vi'];
  return { command: command as string, args: [...args, file], windowsVerbatimArguments: false };
}

/**
 * The temporary copy's name: the file's own, so the editor shows it and picks its
 * syntax, unless it cannot be a file name here; on Windows only its extension, since
 * cmd.exe reads the command line the name is part of.
 */
export function editFileName(name: string, platform: NodeJS.Platform = process.platform): string {
  if (platform !== 'win32') return isStorableName(name, platform) ? name : 'file';
  return `file${/\.[A-Za-z0-9]{1,16}$/.exec(name)?.[0] ?? ''}`;
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
then the temporary copy is deleted and the lock released. An editor that returns at
once without a change (one that hands the file to a window already open) is waited
for on a terminal until you press Enter; elsewhere the copy is kept, and where it is said.

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
        // Hold the file's lock while the editor is open, renewing the lease as it runs. A
        // lock the user held already (`sedfs lock`) stays theirs when the edit ends.
        const LEASE_S = 120;
        const heldBefore = existing ? (await lock(fs, existing.path, LEASE_S)).renewed : true;
        let renew: NodeJS.Timeout | undefined;
        let dir: string | undefined;
        // The decrypted copy goes when sedfs does, unless it holds (or an editor still
        // open may yet save) edits not uploaded.
        let unsaved = false;
        let forget: () => void = () => undefined;
        // Everything after the lock is in here: whatever fails (a file too large to read,
        // no temporary folder), the renewals stop and the lock is released.
        try {
          if (existing) {
            renew = setInterval(
              () => void lock(fs, existing.path, LEASE_S).catch(() => undefined),
              (LEASE_S / 3) * 1000,
            );
            renew.unref();
          }
          // A new file must still not exist when it is saved (null).
          const { data: before, versionId } = existing
            ? await readSmall(fs, existing, env.cwd)
            : { data: Buffer.alloc(0), versionId: null };
          dir = await mkdtemp(join(tmpdir(), 'sedfs-edit-'));
          const copy = dir;
          const file = join(copy, editFileName(existing?.name ?? remote.split('/').pop() ?? ''));
          forget = onInterrupt(() => {
            // A GUI editor (`code --wait`) outlives its terminal: what it saved is kept.
            if (unsaved || changedFrom(file, before)) {
              process.stderr.write(`sedfs: interrupted; your edited copy is kept at ${file}\n`);
              return;
            }
            try {
              rmSync(copy, { recursive: true, force: true });
            } catch {
              // On Windows a file the editor holds open cannot be removed.
              process.stderr.write(`sedfs: interrupted; remove the decrypted copy at ${file}\n`);
            }
          });
          await writeFile(file, before, { mode: 0o600 });
          const { command, args, windowsVerbatimArguments } = editorLaunch(file);
          const opened = Date.now();
          // How the editor failed, or undefined if it did not.
          const failed = await ignoringCtrlC(
            () =>
              new Promise<string | undefined>((resolve, reject) => {
                const child = spawn(command, args, { stdio: 'inherit', windowsVerbatimArguments });
                child.on('error', reject);
                child.on('exit', (code, signal) =>
                  resolve(
                    code === 0 ? undefined : code === null ? `was ended by ${signal}` : `exited with ${code}`,
                  ),
                );
              }),
          );
          if (failed) {
            // An editor may fail after the user saved (vi after any error in the session,
            // one killed by a signal): what it saved is not uploaded, nor thrown away.
            if (!changedFrom(file, before))
              throw new SedfsError('SEDFS_ERR_BAD_REQUEST', `the editor ${failed}; nothing uploaded`);
            unsaved = true;
            throw new SedfsError(
              'SEDFS_ERR_BAD_REQUEST',
              `the editor ${failed}, so what it saved was not uploaded; your edited copy is kept at ${file} (check it, then upload it with: sedfs put ${commandWord(file)} ${commandWord(remote)})`,
            );
          }
          let after = await readFile(file);
          if (after.equals(before) && Date.now() - opened < QUICK_RETURN_MS) {
            // An editor that hands the file to a window already open returns at once
            // (`code` without --wait, Notepad++ without -multiInst): the user is still
            // editing, and the copy must outlive this return.
            const terminal = thisTerminal();
            const asked = terminal.isTTY || isMintty(terminal);
            if (asked)
              process.stderr.write(
                `sedfs: the editor returned at once, without a change. If it still has the file open, save it there, then press Enter here to upload it (Enter alone: no change). So that sedfs waits by itself, make the editor wait: ${WAITING_EDITORS}.\n`,
              );
            // No one to ask, or no answer (stdin ended): the copy may be open in a window
            // still. It is kept, and the command fails: "no changes" would tell a script
            // all was well, and the lock goes with this process, so the copy is to be
            // compared with what others saved meanwhile before it is uploaded.
            if (!asked || !(await enterPressed())) {
              unsaved = true;
              throw new SedfsError(
                'SEDFS_ERR_BAD_REQUEST',
                `the editor returned at once, without a change, and may still have the file open: nothing was uploaded, and the copy is kept at ${file}. Once it is saved there, see what others saved meanwhile (sedfs cat ${commandWord(remote)}), then upload it with: sedfs put ${commandWord(file)} ${commandWord(remote)}. So that sedfs waits by itself, make the editor wait: ${WAITING_EDITORS}`,
              );
            }
            after = await readFile(file);
          }
          if (after.equals(before)) {
            env.out('no changes');
            return;
          }
          unsaved = true;
          try {
            await saveOver(fs, after, remote, env.cwd, versionId);
          } catch (err) {
            throw keptCopy(err, file, remote);
          }
          unsaved = false;
          env.out(`saved ${after.length} bytes`);
        } finally {
          forget();
          clearInterval(renew);
          if (existing && !heldBefore) await unlock(fs, existing.path).catch(() => undefined);
          // On Windows the editor or a virus scanner may hold the copy a moment longer: tried
          // again, and a copy left behind is not worth failing an edit that was saved.
          if (!unsaved && dir)
            await rm(dir, { recursive: true, force: true, maxRetries: 5 }).catch(() => undefined);
        }
      }),
    );
}

/**
 * Sooner than this, an editor that changed nothing was most likely not where the user
 * edited: a person takes longer to open a file and quit. A fast one is asked about, never lost.
 */
const QUICK_RETURN_MS = 2000;
const WAITING_EDITORS = 'EDITOR="code --wait", "subl --wait", "notepad++ -multiInst -nosession"';

/**
 * True when a line (Enter) comes, false when stdin ends first (a script, `< /dev/null`):
 * no one answered. Ctrl-C stays a signal, as the terminal is left cooked.
 */
async function enterPressed(): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, terminal: false });
  try {
    return await new Promise<boolean>((resolve) => {
      rl.once('line', () => resolve(true));
      rl.once('close', () => resolve(false));
    });
  } finally {
    rl.close();
  }
}

/** Whether the copy on disk differs from what was written there (unreadable: nothing to keep). */
function changedFrom(file: string, before: Buffer): boolean {
  try {
    return !readFileSync(file).equals(before);
  } catch {
    return false;
  }
}

/**
 * Uploads an edit as the version after `versionId`, the one it started from (null: a
 * new file), and never over another. The lock guards the edit only while its renewals
 * reach main: after a laptop slept or the network went, another user may have locked,
 * saved and unlocked, and theirs would be lost without a trace (its chunks are freed).
 */
async function saveOver(
  fs: FileSystem,
  data: Buffer,
  remote: string,
  cwd: string,
  versionId: string | null,
): Promise<void> {
  try {
    await fs.put([data], remote, { expectVersionId: versionId }, cwd);
  } catch (err) {
    if (!(err instanceof SedfsError) || err.code !== 'SEDFS_ERR_VERSION_CONFLICT') throw err;
    const now = await fs.find(remote, cwd);
    const current = now?.entry.kind === 'file' ? now.entry.versionId : null;
    // Still the version read: what changed was its keys (an unshare above it meanwhile),
    // which the put opens afresh when it is made again.
    if (current === versionId && now?.entry.kind !== 'dir') {
      await fs.put([data], remote, { expectVersionId: versionId }, cwd);
      return;
    }
    throw new SedfsError(
      'SEDFS_ERR_VERSION_CONFLICT',
      `${now?.path ?? remote} was changed or removed while you edited it (by someone else after your lock lapsed, or from elsewhere), so your edit was not saved over it`,
    );
  }
}

/** A failed upload of an edit says where the edited copy is kept, and how to upload it. */
function keptCopy(err: unknown, file: string, remote: string): SedfsError {
  const base =
    err instanceof SedfsError
      ? err
      : new SedfsError('SEDFS_ERR_INTERNAL', (err as Error).message ?? String(err), undefined, {
          cause: err,
        });
  // Uploaded as it is, a copy that lost a race would replace the version that won it.
  const how =
    base.code === 'SEDFS_ERR_VERSION_CONFLICT'
      ? `compare it with sedfs cat ${commandWord(remote)}, then upload it with: sedfs put ${commandWord(file)} ${commandWord(remote)}`
      : `upload it with: sedfs put ${commandWord(file)} ${commandWord(remote)}`;
  return new SedfsError(
    base.code,
    `${base.message}; your edited copy is kept at ${file} (${how})`,
    base.details,
    { cause: err },
  );
}

import type { Command } from 'commander';
import { retryOnConflict } from '../common/retry.js';
import type { VerbEnv } from './env.js';
import { readSmall } from './transfer.js';

export function registerWriteCommand(program: Command, env: VerbEnv): void {
  program
    .command('write <remote> <text>')
    .description('write a short text message to a file (replacing it, or adding with --append)')
    .option('-a, --append', 'add the text at the end of the file instead of replacing it')
    .addHelpText(
      'after',
      '\nExamples:\n  sedfs write /todo.txt "buy milk"\n  sedfs write /log.txt "deployed v2" --append',
    )
    .action((remote: string, text: string, opts: { append?: boolean }, cmd: Command) =>
      env.run(async () => {
        const fs = await env.fileSystem(cmd);
        const line = Buffer.from(text.endsWith('\n') ? text : `${text}\n`, 'utf8');
        if (!opts.append) {
          await fs.put([line], remote, {}, env.cwd);
          return;
        }
        // Read, add, and write back only over the version read: another append landing
        // in between makes main refuse this one, which then reads again. Without the
        // check, appends running at once overwrote each other's lines.
        await retryOnConflict(APPEND_ATTEMPTS, async () => {
          const existing = await fs.find(remote, env.cwd);
          const before = existing ? await readSmall(fs, existing, env.cwd) : undefined;
          await fs.put(
            [before?.data ?? Buffer.alloc(0), line],
            remote,
            { expectVersionId: before?.versionId ?? null },
            env.cwd,
          );
        });
      }),
    );
}

/** Tries of one append while others land at once (each try reads the file again). */
const APPEND_ATTEMPTS = 20;

import type { Command } from 'commander';
import { globals, type VerbEnv } from './env.js';
import { formatBytes, localTimestamp, printableName, table } from './output.js';

export function registerLsCommand(program: Command, env: VerbEnv): void {
  program
    .command('ls [path]')
    .description('list a folder: name, kind, size, modified')
    .option('--json', 'print JSON')
    // Typed from habit: the listing has the long form's columns already.
    .option('-l', "the long form (the listing is one already; taken as the system's ls takes it)")
    .addHelpText(
      'after',
      "\nNames are sorted as the system's ls sorts them: in the collation of LC_ALL, LC_COLLATE\nor LANG, by code point in the C locale.\n\nExamples:\n  sedfs ls\n  sedfs ls /photos --json",
    )
    .action((path: string | undefined, _opts: unknown, cmd: Command) =>
      env.run(async () => {
        const fs = await env.fileSystem(cmd);
        const entries = await fs.list(path ?? '.', env.cwd);
        if (globals(cmd).json) {
          env.json({ entries });
          return;
        }
        if (entries.length === 0) return;
        const rows = entries.map((e) => [
          e.kind === 'dir' ? `${printableName(e.name)}/` : printableName(e.name),
          e.kind === 'dir' ? 'folder' : 'file',
          e.kind === 'dir' ? '-' : formatBytes(e.size),
          // The folders that gather what others share (/shared, /shared/USER) are made
          // up for the listing: they have no time of their own.
          e.modifiedAt > 0 ? localTimestamp(e.modifiedAt) : '-',
        ]);
        env.out(table(['NAME', 'KIND', 'SIZE', 'MODIFIED'], rows));
      }),
    );
}

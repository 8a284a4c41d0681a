import type { Command } from 'commander';
import type { VerbEnv } from './env.js';

export function registerCatCommand(program: Command, env: VerbEnv): void {
  program
    .command('cat <remote>')
    .description('print a file to stdout')
    .addHelpText('after', '\nExamples:\n  sedfs cat /notes.txt\n  sedfs cat /data.csv | head')
    .action((remote: string, _opts: unknown, cmd: Command) =>
      env.run(async () => {
        const fs = await env.fileSystem(cmd);
        await fs.get(remote, process.stdout, {}, env.cwd);
      }),
    );
}

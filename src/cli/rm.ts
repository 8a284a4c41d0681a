import type { Command } from 'commander';
import type { VerbEnv } from './env.js';

export function registerRmCommand(program: Command, env: VerbEnv): void {
  program
    .command('rm <path>')
    .description('remove a file, or a folder with -r; its storage is freed')
    .option('-r, --recursive', 'remove a folder and everything in it')
    .addHelpText('after', '\nExamples:\n  sedfs rm /notes.txt\n  sedfs rm -r /old-projects')
    .action((path: string, opts: { recursive?: boolean }, cmd: Command) =>
      env.run(async () => {
        const fs = await env.fileSystem(cmd);
        await fs.rm(path, { recursive: opts.recursive === true }, env.cwd);
      }),
    );
}

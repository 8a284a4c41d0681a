import type { Command } from 'commander';
import type { VerbEnv } from './env.js';

export function registerMkdirCommand(program: Command, env: VerbEnv): void {
  program
    .command('mkdir <path>')
    .description('make a folder')
    .option('-p, --parents', 'make missing parent folders too; no error if it exists')
    .addHelpText('after', '\nExamples:\n  sedfs mkdir /photos\n  sedfs mkdir -p /projects/2026/notes')
    .action((path: string, opts: { parents?: boolean }, cmd: Command) =>
      env.run(async () => {
        const fs = await env.fileSystem(cmd);
        await fs.mkdir(path, { parents: opts.parents === true }, env.cwd);
      }),
    );
}

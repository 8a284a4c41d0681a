import type { Command } from 'commander';
import type { VerbEnv } from './env.js';

export function registerMvCommand(program: Command, env: VerbEnv): void {
  program
    .command('mv <src> <dst>')
    .description('rename or move a file or folder, atomically; into an existing folder it keeps its name')
    .addHelpText('after', '\nExamples:\n  sedfs mv /draft.txt /final.txt\n  sedfs mv /final.txt /archive')
    .action((src: string, dst: string, _opts: unknown, cmd: Command) =>
      env.run(async () => {
        const fs = await env.fileSystem(cmd);
        await fs.mv(src, dst, env.cwd);
      }),
    );
}

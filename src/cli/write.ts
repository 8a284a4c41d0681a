import type { Command } from 'commander';
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
        let body = Buffer.from(text.endsWith('\n') ? text : `${text}\n`, 'utf8');
        if (opts.append && (await fs.find(remote, env.cwd))) {
          body = Buffer.concat([await readSmall(fs, remote, env.cwd), body]);
        }
        await fs.put([body], remote, {}, env.cwd);
      }),
    );
}

import type { Command } from 'commander';
import type { VerbEnv } from './env.js';
import { readerGone } from './output.js';
import { whileWritingTo } from './transfer.js';

export function registerCatCommand(program: Command, env: VerbEnv): void {
  program
    .command('cat <remote>')
    .description('print a file to stdout')
    .addHelpText('after', '\nExamples:\n  sedfs cat /notes.txt\n  sedfs cat /data.csv | head')
    .action((remote: string, _opts: unknown, cmd: Command) =>
      env.run(async () => {
        const fs = await env.fileSystem(cmd);
        const out = process.stdout;
        try {
          await whileWritingTo(out, 'stdout', async () => {
            await fs.get(remote, out, {}, env.cwd);
            // Until what was written has gone out (stdout may write in the background).
            await new Promise<void>((resolve, reject) =>
              out.write(Buffer.alloc(0), (err) => (err ? reject(err) : resolve())),
            );
          });
        } catch (err) {
          // The reader stopped reading (`sedfs cat FILE | head`): that ends cat, quietly
          // and without failing, as it ends any program writing into a pipe.
          if (readerGone(err)) return;
          throw err;
        }
      }),
    );
}

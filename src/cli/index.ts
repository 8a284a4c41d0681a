import { CliEnv } from './env.js';
import { readerGone } from './output.js';
import { buildProgram } from './program.js';
import { registerShellCommand } from './shell.js';

// A reader that stops early (`sedfs ls | head`): what is left to print has nowhere to go,
// and nothing is said, as of a program ended by SIGPIPE. Any other failure to print is
// one line and status 1. The shell stays up after either (see shell.ts).
if (process.argv[2] !== 'shell')
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (readerGone(err)) process.exit(process.exitCode ?? 0);
    process.stderr.write(`sedfs: cannot write stdout: ${err.message}\n`);
    process.exit(1);
  });

const program = buildProgram(new CliEnv(), { servers: true, shell: registerShellCommand });
await program.parseAsync(process.argv);

import { CliEnv } from './env.js';
import { buildProgram } from './program.js';
import { registerShellCommand } from './shell.js';

const program = buildProgram(new CliEnv(), { servers: true, shell: registerShellCommand });
await program.parseAsync(process.argv);

import { Command } from 'commander';
import { registerDevCommand } from './dev.js';
import { registerFileServerCommand } from './fileserver.js';
import { registerMainCommand } from './main.js';
import { registerServersCommand } from './servers.js';

const program = new Command()
  .name('sedfs')
  .description('SEDFS: a simple encrypted distributed file system')
  .version('0.1.0')
  .showHelpAfterError()
  .addHelpText(
    'after',
    `
Start a local cluster:  sedfs dev
Run a cluster by hand:  sedfs main --port 7000
                        sedfs fileserver --main http://HOST:7000 --join-token TOKEN
See the file servers:   sedfs servers --main http://HOST:7000`,
  );

registerMainCommand(program);
registerFileServerCommand(program);
registerDevCommand(program);
registerServersCommand(program);

await program.parseAsync(process.argv);

import { join } from 'node:path';
import { Command } from 'commander';
import { registerAdminCommand } from './admin.js';
import { registerBackupCommand } from './backup.js';
import { registerCatCommand } from './cat.js';
import { registerCheckCommand } from './check.js';
import { registerDevCommand } from './dev.js';
import { registerEditCommand } from './edit.js';
import type { VerbEnv } from './env.js';
import { registerFileServerCommand } from './fileserver.js';
import { registerGetCommand } from './get.js';
import { registerInviteCommand } from './invite.js';
import { registerLockCommands } from './lock.js';
import { registerLoginCommand } from './login.js';
import { registerLogoutCommand } from './logout.js';
import { registerLsCommand } from './ls.js';
import { registerMainCommand } from './main.js';
import { registerMkdirCommand } from './mkdir.js';
import { registerMvCommand } from './mv.js';
import { registerPasswdCommand } from './passwd.js';
import { registerPermsCommand } from './perms.js';
import { registerPinCommand } from './pin.js';
import { registerPutCommand } from './put.js';
import { registerRmCommand } from './rm.js';
import { registerServersCommand } from './servers.js';
import { registerShareCommand } from './share.js';
import { hintLines, startFileServer } from './shell-hints.js';
import { registerSignupCommand } from './signup.js';
import { registerTreeCommand } from './tree.js';
import { checkTypedRemotePaths } from './typed-paths.js';
import { registerUnshareCommand } from './unshare.js';
import { registerWhoamiCommand } from './whoami.js';
import { registerWriteCommand } from './write.js';

export const VERSION = '0.1.0';

/** The verbs that work on files and the session: the CLI and the shell both offer them. */
export function registerClientVerbs(program: Command, env: VerbEnv): void {
  for (const register of [
    registerSignupCommand,
    registerLoginCommand,
    registerLogoutCommand,
    registerPasswdCommand,
    registerWhoamiCommand,
    registerInviteCommand,
    registerServersCommand,
    registerLsCommand,
    registerTreeCommand,
    registerMkdirCommand,
    registerPutCommand,
    registerGetCommand,
    registerCatCommand,
    registerWriteCommand,
    registerRmCommand,
    registerMvCommand,
    registerEditCommand,
    registerShareCommand,
    registerUnshareCommand,
    registerPermsCommand,
    registerPinCommand,
    registerLockCommands,
    registerCheckCommand,
    registerAdminCommand,
  ]) {
    register(program, env);
  }
}

export function buildProgram(
  env: VerbEnv,
  opts: { servers: boolean; shell?: (program: Command) => void; throwOnExit?: boolean },
): Command {
  const program = new Command()
    .name('sedfs')
    .description('SEDFS: a simple encrypted distributed file system')
    .version(VERSION)
    .option('--profile <dir>', 'client profile folder: keys, session [env SEDFS_HOME]')
    .option('--main <url>', 'main server URL [env SEDFS_MAIN]')
    .option(
      '--ca-fingerprint <sha256>',
      'cluster CA fingerprint main printed; checked at signup and login [env SEDFS_CA_FINGERPRINT]',
    )
    // As the design's CLI contract has it: `sedfs --json ls` as well as `sedfs ls --json`.
    .option('--json', 'print JSON, for the verbs that print something')
    // A usage error is one line, as every failure is (the whole help after it was 60):
    // commander's own, with where the usage is.
    .configureOutput({
      outputError: (message, write) =>
        write(
          `${message.trim().replace(/\s*\n\s*/g, ' ')} (sedfs --help, or sedfs VERB --help, shows the usage)\n`,
        ),
    })
    .addHelpText(
      'after',
      `
Start a local cluster:  sedfs dev
Run a cluster by hand:  sedfs main --port 7000
${hintLines(' '.repeat(24), startFileServer(join('MAIN_DATA', 'join'))).join('\n')}
Use it:                 sedfs signup alice --main http://HOST:7000
                        sedfs put report.pdf && sedfs ls && sedfs get /report.pdf
                        sedfs shell`,
    );
  // Set before the verbs are added, so they inherit it: the shell must survive a usage error.
  if (opts.throwOnExit) program.exitOverride();
  program.hook('preAction', (_program, verb) => checkTypedRemotePaths(verb));
  if (opts.servers) {
    registerMainCommand(program);
    registerFileServerCommand(program);
    registerDevCommand(program);
    registerBackupCommand(program);
  }
  registerClientVerbs(program, env);
  opts.shell?.(program);
  return program;
}

import { createInterface } from 'node:readline/promises';
import { Writable } from 'node:stream';
import { SedfsError } from '../protocol/errors.js';
import { Interrupted } from './interrupt.js';

/** Where sedfs runs, as far as asking goes: a parameter so that tests can be Git Bash on Windows. */
export interface Terminal {
  isTTY: boolean;
  env: NodeJS.ProcessEnv;
  platform: NodeJS.Platform;
}

/** This process's terminal. */
export function thisTerminal(): Terminal {
  return { isTTY: process.stdin.isTTY === true, env: process.env, platform: process.platform };
}

/**
 * Whether stdin is a terminal that Node cannot use as one: mintty, the terminal of Git
 * Bash, MSYS2 and Cygwin, hands Windows programs a pipe, not a console. Someone types
 * there, but nothing typed can be hidden, so no secret may be asked for on it.
 */
export function isMintty({ isTTY, env, platform }: Terminal): boolean {
  return (
    platform === 'win32' &&
    !isTTY &&
    (env.TERM_PROGRAM === 'mintty' || (env.MSYSTEM !== undefined && env.TERM !== undefined))
  );
}

/** Why nothing could be asked, and what to set instead. */
function cannotAsk(question: string, howToSet: string, secret: boolean, terminal: Terminal): SedfsError {
  if (!isMintty(terminal))
    return new SedfsError('SEDFS_ERR_CONFIG', `missing setting: ${howToSet} (no terminal to ask on)`);
  // bash's own `read -s` can hide what is typed in mintty, where sedfs cannot: into the
  // variable named last in `howToSet` (SEDFS_PASSPHRASE, SEDFS_NEW_PASSPHRASE, …).
  const variable = howToSet.match(/SEDFS_[A-Z_]+/g)?.pop();
  const hidden =
    secret && variable
      ? ` (unseen: read -rsp '${question.trim().replace(/'/g, '')} ' ${variable} && export ${variable})`
      : '';
  return new SedfsError(
    'SEDFS_ERR_CONFIG',
    `missing setting: ${howToSet}. Git Bash's terminal (mintty) is not a console sedfs can ask on: set it before running sedfs${hidden}, or run sedfs in PowerShell, cmd or Windows Terminal`,
  );
}

/**
 * Asks on the terminal when there is one, as the original client did; a script with no
 * terminal gets a clear error naming the flag or variable to set instead.
 */
export async function askIfInteractive(
  question: string,
  howToSet: string,
  secret = false,
  terminal: Terminal = thisTerminal(),
): Promise<string> {
  if (!terminal.isTTY) throw cannotAsk(question, howToSet, secret, terminal);
  // For secrets, the question is shown but what is typed is not echoed.
  let muted = false;
  const output = new Writable({
    write(chunk, _enc, cb) {
      if (!muted) process.stderr.write(chunk);
      cb();
    },
  });
  const rl = createInterface({ input: process.stdin, output, terminal: true });
  try {
    const asked = new Promise<string>((resolve, reject) => {
      rl.question(question).then(resolve, reject);
      // The terminal is in raw mode: Ctrl-C comes as a key, which readline would take as
      // an error of its own (exit 1). It is an interrupt, ended as the signal ends one.
      rl.once('SIGINT', () => {
        process.stderr.write('\n');
        reject(new Interrupted('SIGINT'));
      });
    });
    muted = secret;
    // A secret is taken as typed, as SEDFS_PASSPHRASE is: trimmed here and not there,
    // one set from a script could not be typed (Profile.unlockKeys still opens keys locked
    // under a trimmed one).
    const typed = await asked;
    const answer = secret ? typed : typed.trim();
    if (secret) process.stderr.write('\n');
    if (!answer.trim()) throw new SedfsError('SEDFS_ERR_CONFIG', `missing setting: ${howToSet}`);
    return answer;
  } finally {
    rl.close();
  }
}

/** The main server URL from --main, SEDFS_MAIN, or the terminal. */
export async function resolveMainUrl(flag: string | undefined): Promise<string> {
  const value = flag ?? process.env.SEDFS_MAIN;
  if (value) return value.replace(/\/+$/, '');
  return askIfInteractive(
    'Main server address (for example http://192.168.1.10:41234): ',
    '--main URL or SEDFS_MAIN',
  );
}

/**
 * The passphrase from SEDFS_PASSPHRASE or a hidden prompt; `confirm` asks twice (signup).
 * `passwd` asks for a new one the same way, from SEDFS_NEW_PASSPHRASE.
 */
export async function askPassphrase(
  confirm = false,
  which: { variable: string; prompt: string } = { variable: 'SEDFS_PASSPHRASE', prompt: 'Passphrase' },
): Promise<string> {
  const fromEnv = process.env[which.variable];
  if (fromEnv) return fromEnv;
  const first = await askIfInteractive(`${which.prompt}: `, which.variable, true);
  if (confirm) {
    const again = await askIfInteractive(`${which.prompt} again: `, which.variable, true);
    if (again !== first) throw new SedfsError('SEDFS_ERR_CONFIG', 'the two passphrases differ');
  }
  return first;
}

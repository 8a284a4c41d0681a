import { createInterface } from 'node:readline/promises';
import { Writable } from 'node:stream';
import { SedfsError } from '../protocol/errors.js';
import { Interrupted } from './interrupt.js';

/**
 * Asks on the terminal when there is one, as the original client did; a script with no
 * terminal gets a clear error naming the flag or variable to set instead.
 */
export async function askIfInteractive(question: string, howToSet: string, secret = false): Promise<string> {
  if (!process.stdin.isTTY) throw new SedfsError('SEDFS_ERR_CONFIG', `missing setting: ${howToSet}`);
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
    const answer = (await asked).trim();
    if (secret) process.stderr.write('\n');
    if (!answer) throw new SedfsError('SEDFS_ERR_CONFIG', `missing setting: ${howToSet}`);
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

/** The passphrase from SEDFS_PASSPHRASE or a hidden prompt; `confirm` asks twice (signup). */
export async function askPassphrase(confirm = false): Promise<string> {
  const fromEnv = process.env.SEDFS_PASSPHRASE;
  if (fromEnv) return fromEnv;
  const how = 'SEDFS_PASSPHRASE (no terminal to ask on)';
  const first = await askIfInteractive('Passphrase: ', how, true);
  if (confirm) {
    const again = await askIfInteractive('Passphrase again: ', how, true);
    if (again !== first) throw new SedfsError('SEDFS_ERR_CONFIG', 'the two passphrases differ');
  }
  return first;
}

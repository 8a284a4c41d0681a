import { spawn } from 'node:child_process';
import { CLI } from './cluster.js';

export interface OnTerminal {
  /** everything it showed on the terminal so far */
  shown: () => string;
  /** types `keys` on the terminal, as a user would (`\x03` is Ctrl-C) */
  type: (keys: string) => void;
  /** its exit status; 128 + the signal's number if a signal ended it, as a shell says */
  status: Promise<number | null>;
}

/**
 * Runs `sedfs ARGS` on a terminal of its own, for what only a terminal gets (prompts,
 * keys read in raw mode): util-linux `script` gives it one and exits with its status.
 */
export function sedfsOnTerminal(args: string[], env: Record<string, string | undefined>): OnTerminal {
  const quoted = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;
  const line = [process.execPath, CLI, ...args].map(quoted).join(' ');
  const proc = spawn('script', ['-qfec', line, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let shown = '';
  proc.stdout.on('data', (d: Buffer) => {
    shown += d.toString();
  });
  return {
    shown: () => shown,
    type: (keys) => proc.stdin.write(keys),
    status: new Promise((res) => proc.on('close', (code) => res(code))),
  };
}

import { constants } from 'node:os';

/**
 * What a command must undo if it is interrupted (Ctrl-C, SIGTERM, its terminal closing;
 * Ctrl-Break on Windows): a download's hidden partial file holds plaintext, and its
 * random name means nothing would ever find it again. Clean-ups run synchronously in
 * the signal handler, then the process ends as the signal would have ended it.
 */
const cleanups = new Set<() => void>();
let listening = false;
let ctrlCIgnored = 0;
const SIGNALS: NodeJS.Signals[] =
  process.platform === 'win32'
    ? ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK']
    : ['SIGINT', 'SIGTERM', 'SIGHUP'];

function onSignal(signal: NodeJS.Signals): void {
  if (signal === 'SIGINT' && ctrlCIgnored > 0) return;
  for (const cleanup of cleanups) {
    try {
      cleanup();
    } catch {
      // The rest still run; the process is ending either way.
    }
  }
  cleanups.clear();
  for (const s of SIGNALS) process.removeListener(s, onSignal);
  listening = false;
  // Ended by the signal itself, so a shell sees 130 for Ctrl-C as with any command.
  // Windows can send itself only SIGINT and SIGTERM (libuv refuses SIGHUP and SIGBREAK).
  try {
    process.kill(process.pid, signal);
  } catch {
    process.exit(128 + (constants.signals[signal] ?? 1));
  }
}

/** Runs `cleanup` if the process is interrupted before the returned function is called. */
export function onInterrupt(cleanup: () => void): () => void {
  if (!listening) for (const s of SIGNALS) process.on(s, onSignal);
  listening = true;
  cleanups.add(cleanup);
  return () => {
    cleanups.delete(cleanup);
  };
}

/**
 * Ignores Ctrl-C while `body` runs, as git does while an editor is open: the terminal
 * sends it to the editor too, which handles it itself, and sedfs must still be there
 * to upload what the editor saves.
 */
export async function ignoringCtrlC<T>(body: () => Promise<T>): Promise<T> {
  // A listener of its own keeps Node's default (ending the process) away even when no
  // clean-up is pending; onSignal skips Ctrl-C meanwhile.
  const ignore = () => undefined;
  process.on('SIGINT', ignore);
  ctrlCIgnored++;
  try {
    return await body();
  } finally {
    ctrlCIgnored--;
    process.removeListener('SIGINT', ignore);
  }
}

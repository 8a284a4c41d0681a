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
  endInterrupted(signal);
}

/**
 * A command given up because the user interrupted it where no signal arrives: Ctrl-C at
 * a prompt reaches readline as a key (the terminal is in raw mode). The one-shot CLI
 * ends as the signal would have (endInterrupted); the shell just drops the command.
 */
export class Interrupted extends Error {
  constructor(readonly signal: NodeJS.Signals = 'SIGINT') {
    super('interrupted');
    this.name = 'Interrupted';
  }
}

/** Runs the pending clean-ups, then ends the process as `signal` would have. */
export function endInterrupted(signal: NodeJS.Signals): void {
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
  endAsSignal(signal);
}

/** The numbers shells add to 128; the same on Linux, macOS and Windows (SIGBREAK: Windows only). */
const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGTERM: 15,
  SIGBREAK: 21,
};

/**
 * Ends the process as `signal` ends a command, so that a shell sees 130 for Ctrl-C (143
 * for SIGTERM, 149 for Ctrl-Break) and a script's loop stops. Elsewhere than Windows it
 * is ended by the signal itself, which is what a shell looks for. Windows has no such
 * ending: libuv "kills" a process, itself too, with TerminateProcess and status 1 (and
 * refuses SIGHUP and SIGBREAK), so there it exits with the status itself.
 */
export function endAsSignal(
  signal: NodeJS.Signals,
  platform: NodeJS.Platform = process.platform,
  proc: Pick<NodeJS.Process, 'pid' | 'kill' | 'exit'> = process,
): void {
  const status = 128 + (SIGNAL_NUMBERS[signal] ?? constants.signals[signal] ?? 1);
  if (platform === 'win32') {
    proc.exit(status);
    return;
  }
  try {
    proc.kill(proc.pid, signal);
  } catch {
    proc.exit(status);
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
 * Held while a command runs. On Windows, Ctrl-C or Ctrl-Break that no one listens for
 * ends a process with Windows' own status (0xC000013A, shown as -1073741510 by cmd and
 * PowerShell); listened for, the command ends as 130 or 149, as elsewhere. Elsewhere
 * nothing is needed: unheard, the signal itself ends the process, at once even while
 * the event loop is busy.
 */
export function endAsSignalsOnWindows(platform: NodeJS.Platform = process.platform): () => void {
  return platform === 'win32' ? onInterrupt(() => undefined) : () => undefined;
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

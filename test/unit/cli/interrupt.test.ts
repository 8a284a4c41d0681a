import assert from 'node:assert/strict';
import { test } from 'node:test';
import { endAsSignal, endAsSignalsOnWindows } from '../../../src/cli/interrupt.js';

/** A process that records how it was asked to end, and does not. */
function recorder() {
  const asked: string[] = [];
  return {
    asked,
    proc: {
      pid: 4242,
      kill(pid: number, signal?: string | number) {
        asked.push(`kill ${pid} ${signal}`);
        return true;
      },
      exit(code?: number) {
        asked.push(`exit ${code}`);
      },
    } as Pick<NodeJS.Process, 'pid' | 'kill' | 'exit'>,
  };
}

test('an interrupted command on Windows exits with 128 + the signal (130 for Ctrl-C), never the 1 a self-kill gives there', () => {
  for (const [signal, status] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
    ['SIGBREAK', 149],
  ] as const) {
    const { asked, proc } = recorder();
    endAsSignal(signal, 'win32', proc);
    assert.deepEqual(asked, [`exit ${status}`], signal);
  }
});

test('an interrupted command elsewhere than Windows ends by the signal itself, which a shell shows as 130', () => {
  for (const platform of ['linux', 'darwin'] as const) {
    const { asked, proc } = recorder();
    endAsSignal('SIGINT', platform, proc);
    assert.deepEqual(asked, ['kill 4242 SIGINT'], platform);
  }
});

test('while a command runs on Windows, Ctrl-C is listened for, so that it ends as 130 and not with Windows own status', () => {
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  const before = signals.map((s) => process.listenerCount(s));
  endAsSignalsOnWindows('linux')();
  assert.equal(process.listenerCount('SIGINT'), before[0], 'elsewhere the signal is left to end the process');
  const release = endAsSignalsOnWindows('win32');
  try {
    assert.equal(process.listenerCount('SIGINT'), (before[0] ?? 0) + 1);
  } finally {
    release();
    // The listeners stay (as for every clean-up, until a signal comes): this test process must not keep them.
    signals.forEach((s, i) => {
      for (const l of process.listeners(s).slice(before[i])) process.removeListener(s, l);
    });
  }
});

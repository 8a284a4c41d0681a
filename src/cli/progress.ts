import { formatBytes, printableName } from './output.js';

export interface Progress {
  update(bytesDone: number): void;
  done(): void;
  /** The transfer failed: the bar's line is ended as it stands, so what follows starts a line of its own. */
  abort(): void;
}

const SILENT: Progress = { update: () => undefined, done: () => undefined, abort: () => undefined };

/**
 * A progress bar with rate and ETA on stderr, for transfers that last over a second
 * and only when stdout is a terminal: scripts and pipes see nothing.
 */
export function progressBar(
  label: string,
  total: number | undefined,
  enabled = process.stdout.isTTY === true,
): Progress {
  if (!enabled) return SILENT;
  const start = Date.now();
  let shown = false;
  /** done or aborted: a late update (a fetch still settling) draws nothing more */
  let ended = false;
  let last = 0;
  const draw = (n: number, final: boolean) => {
    const secs = (Date.now() - start) / 1000;
    const rate = n / Math.max(secs, 0.001);
    let line = `${printableName(label)}  ${formatBytes(n)}`;
    if (total !== undefined && total > 0) {
      const frac = Math.min(1, n / total);
      const width = 24;
      const filled = Math.round(frac * width);
      const eta = rate > 0 ? (total - n) / rate : 0;
      line += ` / ${formatBytes(total)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(frac * 100).toFixed(0)}%`;
      if (!final) line += `  ETA ${eta.toFixed(0)}s`;
    }
    line += `  ${formatBytes(rate)}/s`;
    process.stderr.write(`\r${line}\x1b[K${final ? '\n' : ''}`);
  };
  return {
    update(n) {
      const now = Date.now();
      if (ended || now - start < 1000 || now - last < 100) return;
      shown = true;
      last = now;
      draw(n, false);
    },
    done() {
      if (shown && !ended) draw(total ?? 0, true);
      ended = true;
    },
    abort() {
      if (shown && !ended) process.stderr.write('\n');
      ended = true;
    },
  };
}

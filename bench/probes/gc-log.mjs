// Loaded with `node --import bench/probes/gc-log.mjs ...`: logs every garbage collection
// of the process (kind, duration, ArrayBuffer memory, RSS, V8's young generation) and a
// line every 20 ms, into $GC_LOG_DIR/gc-<pid>.txt (default the temp folder) when the
// process exits. Kinds: 1 minor (scavenge), 2 major, 4 incremental, 8 weak callbacks.
// This is how the pile of dead TLS-record buffers between collections was found.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';

const MiB = 1024 * 1024;
const lines = [];
const memory = () => {
  const m = process.memoryUsage();
  return `ab=${(m.arrayBuffers / MiB).toFixed(1)} rss=${(m.rss / MiB).toFixed(0)}`;
};
const young = () => {
  const space = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  return `young=${((space?.space_size ?? 0) / MiB).toFixed(2)}`;
};
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    lines.push(
      `${e.startTime.toFixed(0)} gc ${e.detail.kind} ${e.duration.toFixed(2)}ms ${memory()} ${young()}`,
    );
  }
}).observe({ entryTypes: ['gc'] });
setInterval(() => lines.push(`${performance.now().toFixed(0)} tick ${memory()}`), 20).unref();
process.on('exit', () => {
  writeFileSync(join(process.env.GC_LOG_DIR ?? tmpdir(), `gc-${process.pid}.txt`), `${lines.join('\n')}\n`);
});
